package proxy

import (
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/tidwall/redcon"
)

// Transactions. MULTI starts queueing in the proxy; each command is checked
// as Redis checks it at queue time (unknown command, arity, commands not
// allowed in a transaction), answered +QUEUED, and kept. EXEC finds the one
// shard every queued key lives on and sends MULTI, the commands and EXEC to
// it in one write on one connection, so they run there as one Redis
// transaction and nothing interleaves; EXEC's reply is the node's. Keys on
// two shards make EXEC reply -CROSSSHARD and nothing runs.
//
// WATCH is state on a node's connection, which a shared connection cannot
// hold for one client. WATCH opens a connection dedicated to the client, to
// the shard of the watched keys, and sends WATCH there; until EXEC, DISCARD
// or UNWATCH, the client's commands for that shard use it, and EXEC runs
// the transaction on it, so the node itself checks the watched keys. Keys
// watched on two shards, or a transaction on another shard than the watched
// keys, get -CROSSSHARD.

const (
	multiCmd = "*1\r\n$5\r\nMULTI\r\n"
	execCmd  = "*1\r\n$4\r\nEXEC\r\n"
)

// queue answers a command given inside MULTI.
func (c *client) queue(ci *cmdtable.Command, cmd redcon.Command) {
	switch {
	case ci.Flags&cmdtable.FlagNoMulti != 0, ci.Route == cmdtable.RouteProxyOnly:
		c.reject("ERR Command not allowed inside a transaction")
		return
	case ci.Multi == cmdtable.MultiProxyState:
		// Connection state lives in the proxy, not in the node's
		// transaction.
		c.reject("ERR Command not allowed inside a transaction")
		return
	case ci.Route == cmdtable.RouteFanout && len(c.tbl.shards) > 1:
		c.reject("CROSSSHARD '" + ci.Name + "' runs on every shard and cannot be part of a transaction")
		return
	case !ci.PairsOK(len(cmd.Args)):
		c.reject(cmdtable.ErrWrongArity(ci.Name))
		return
	}
	if msg := conncmd.RefuseInMulti(ci, cmd.Args); msg != "" {
		c.reject(msg)
		return
	}
	c.queued = append(c.queued, cloneCommand(cmd))
	c.setMulti(len(c.queued))
	c.simple("QUEUED")
}

func (c *client) setMulti(n int) {
	c.sess.SetMulti(n)
}

func (c *client) tx(ci *cmdtable.Command, cmd redcon.Command) {
	switch ci.Name {
	case "multi":
		if c.inMulti {
			c.errorReply("ERR MULTI calls can not be nested")
			return
		}
		c.inMulti, c.dirty = true, false
		c.queued = c.queued[:0]
		c.setMulti(0)
		c.ok()
	case "discard":
		if !c.inMulti {
			c.errorReply("ERR DISCARD without MULTI")
			return
		}
		c.endMulti()
		c.unpinAfter = c.pin != nil
		c.ok()
	case "exec":
		if !c.inMulti {
			c.errorReply("ERR EXEC without MULTI")
			return
		}
		c.execTx()
	case "watch":
		if c.inMulti {
			c.errorReply("ERR WATCH inside MULTI is not allowed")
			return
		}
		c.watch(ci, cmd)
	case "unwatch": // outside MULTI; inside, it is queued as Redis queues it
		if c.pin != nil {
			c.unpinAfter = true
		}
		c.ok()
	}
}

func (c *client) endMulti() {
	c.inMulti, c.dirty = false, false
	clear(c.queued)
	c.queued = c.queued[:0]
	c.setMulti(-1)
}

func (c *client) execTx() {
	dirty := c.dirty
	queued := c.queued
	defer c.endMulti()
	if c.pin != nil {
		c.unpinAfter = true // EXEC unwatches, whatever happens
	}
	if dirty {
		c.errorReply("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	var target *shard
	if c.pin != nil {
		target = c.pin.sh
	}
	for _, q := range queued {
		ci := cmdtable.Lookup(q.Args[0])
		for _, i := range ci.KeyIndexes(len(q.Args)) {
			sh := c.tbl.locate(q.Args[i])
			if target == nil {
				target = sh
			} else if sh != target {
				c.errorReply("CROSSSHARD transaction keys live on different shards (" + target.name + ", " + sh.name + ")")
				return
			}
		}
	}
	if target == nil {
		target = c.tbl.shards[0]
	}
	r := c.newReq()
	r.buf = append(r.buf[:0], multiCmd...)
	for _, q := range queued {
		r.buf = append(r.buf, q.Raw...)
	}
	r.buf = append(r.buf, execCmd...)
	r.Cmd = r.buf
	r.N = len(queued) + 2
	c.send(target, &r.Request)
	c.slots = append(c.slots, slot{kind: slotExec, req: &r.Request, sh: target})
}

// watch forwards WATCH on the client's dedicated connection to the shard of
// its keys, opening it first.
func (c *client) watch(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	if !c.shardsOf(args, 1, len(args)-1, 1) {
		a := c.tbl.shards[c.shIdx[0]].name
		for _, i := range c.shIdx {
			if b := c.tbl.shards[i].name; b != a {
				c.errorReply(crossShard("watch", a, b))
				return
			}
		}
	}
	sh := c.tbl.shards[c.shIdx[0]]
	if c.pin != nil && c.pin.sh != sh {
		c.errorReply(crossShard("watch", c.pin.sh.name, sh.name))
		return
	}
	c.unpinAfter = false
	if c.pin == nil {
		// Earlier commands of the batch reach the node first.
		c.barrier()
		conn, err := backend.Dial(sh.addr, c.s.cfg.Timeout, c.s.handshake(sh, c.sess.Proto))
		if err != nil {
			c.errorReply(sh.unavailable(err))
			return
		}
		c.pin = &pinned{sh: sh, conn: conn}
		c.sess.SetWatching(true)
	}
	c.forward(sh, cmd.Raw)
}

// unpin closes the dedicated connection, which forgets the watched keys.
func (c *client) unpin() {
	if c.pin == nil {
		return
	}
	c.pin.conn.Close()
	c.pin = nil
	c.sess.SetWatching(false)
}

// cloneCommand copies a command out of the read buffer, which the next
// batch reuses: queued commands live until EXEC.
func cloneCommand(cmd redcon.Command) redcon.Command {
	raw := append([]byte(nil), cmd.Raw...)
	args := make([][]byte, len(cmd.Args))
	for i, a := range cmd.Args {
		args[i] = append([]byte(nil), a...)
	}
	return redcon.Command{Raw: raw, Args: args}
}
