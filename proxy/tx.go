package proxy

import (
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/resp"
	"github.com/tidwall/redcon"
)

// Transactions. MULTI starts queueing in the proxy; each command is checked
// as Redis checks it at queue time (unknown command, arity, commands not
// allowed in a transaction), answered +QUEUED, and kept. EXEC finds the one
// shard every queued key lives on and sends MULTI, the commands and EXEC to
// it in one write on one connection, so they run there as one Redis
// transaction and nothing interleaves; EXEC's reply is the node's. Keys on
// several shards make it a cross-shard transaction (xshard.go, xcoll.go).
//
// WATCH is state a node keeps per connection, and the proxy's connections
// to a node are shared by all its clients, so the node keeps each client's
// watched keys under the client's id instead (shardnode's cmd_tx.go):
// WATCH k becomes SHARD.WATCH <id> k on one of the shared connections, the
// one the client's requests to that node use, and the client's commands for
// that node stay on that connection until EXEC, DISCARD, UNWATCH or RESET,
// so they reach the node in order after the WATCH. EXEC sends MULTI, the
// commands and SHARD.EXEC <id> there, and the node checks the keys; DISCARD,
// UNWATCH, RESET, an aborted EXEC and a client that leaves send SHARD.UNWATCH
// <id>. A WATCH costs no connection of its own: 10,000 watching clients use
// the proxy's 2 x -conns-per-node connections to the node, as others do.
// Keys watched on several shards are held on each, and the transaction is
// then a cross-shard one, as is one on another shard than the watched keys. A connection that fails between WATCH and
// EXEC took the node's record of the keys with it: EXEC replies nil, as
// for a change. So does a HELLO that switches protocol in between (the
// keys are on a connection of the old protocol).

const (
	multiCmd = "*1\r\n$5\r\nMULTI\r\n"
	execCmd  = "*1\r\n$4\r\nEXEC\r\n"
)

// appendForClient appends cmd <id> args... in RESP: SHARD.WATCH,
// SHARD.UNWATCH and SHARD.EXEC name the client they act for.
func appendForClient(b []byte, cmd string, id int64, args [][]byte) []byte {
	b = resp.AppendArray(b, 2+len(args))
	b = resp.AppendBulkString(b, cmd)
	b = resp.AppendBulkString(b, itoa(id))
	for _, a := range args {
		b = resp.AppendBulk(b, a)
	}
	return b
}

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
	case ci.Route == cmdtable.RouteFanout && len(c.tbl.nodes) > 1:
		c.reject("CROSSSHARD '" + ci.Name + "' runs on every shard and cannot be part of a transaction")
		return
	case !ci.PairsOK(len(cmd.Args)):
		c.reject(cmdtable.ErrWrongArity(ci.Name))
		return
	}
	if msg := conncmd.RefuseInMulti(ci, cmd.Args, c.sess.DB()); msg != "" {
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
		c.releaseWatch()
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
		c.releaseWatch()
		c.unpinAfter = c.pin != nil
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
		c.releaseWatch()
		c.errorReply("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	var target *shard
	if c.pin != nil {
		target = c.pin.sh
		if c.pin.next != nil {
			// Keys watched on several shards: a cross-shard transaction.
			if c.pinsLost() {
				c.releaseWatch()
				c.nullExec()
				return
			}
			c.xExec(queued)
			return
		}
	}
	for _, q := range queued {
		ci := cmdtable.Lookup(q.Args[0])
		idx := ci.KeyIndexes(q.Args)
		if ci.Name == "publish" {
			// A channel lives on the node that owns its name as a key
			// (pubsub.go): a PUBLISH queued runs there, in the
			// transaction, and its count is in EXEC's reply.
			idx = []int{1}
		}
		for _, i := range idx {
			sh := c.tbl.locate(q.Args[i])
			if target == nil {
				target = sh
			} else if sh != target {
				if c.pin != nil && c.pinsLost() {
					c.releaseWatch()
					c.nullExec()
					return
				}
				// Keys on several shards: a cross-shard transaction
				// (xshard.go).
				c.xExec(queued)
				return
			}
		}
	}
	if target == nil {
		target = c.tbl.shards[0]
	}
	if c.pin != nil && c.pinsLost() {
		// The node no longer has the keys: they may have changed.
		c.releaseWatch()
		c.nullExec()
		return
	}
	r := c.newReq()
	r.buf = c.scriptLoads(r.buf[:0], queued)
	loads := len(r.buf) > 0
	r.buf = append(r.buf, multiCmd...)
	for _, q := range queued {
		r.buf = append(r.buf, q.Raw...)
	}
	if c.pin != nil && c.pin.held {
		r.buf = appendForClient(r.buf, "SHARD.EXEC", c.sess.ID, nil)
		c.pin.held = false // SHARD.EXEC forgets them
	} else {
		r.buf = append(r.buf, execCmd...)
	}
	r.Cmd = r.buf
	r.N = len(queued) + 2
	if loads {
		r.N += c.countLoads(queued)
	}
	c.send(target, &r.Request)
	c.slots = append(c.slots, slot{kind: slotExec, req: &r.Request, sh: target})
}

// watch sends SHARD.WATCH for the client to the shards of its keys, each
// on the shared connection its requests to that shard use, and pins them
// there (a chain of pins when they are several: xwatch.go).
func (c *client) watch(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	c.shardsOf(args, 1, len(args)-1, 1)
	var shards []*shard
	keys := make(map[*shard][][]byte)
	for j, i := range c.shIdx {
		sh := c.tbl.shards[i]
		if _, ok := keys[sh]; !ok {
			shards = append(shards, sh)
		}
		keys[sh] = append(keys[sh], args[1+j])
	}
	c.unpinAfter = false
	if c.pin != nil && c.pinsLost() {
		c.ok() // EXEC aborts whatever these keys do
		return
	}
	for _, sh := range shards {
		if msg := c.pinShard(sh); msg != "" {
			c.errorReply(msg)
			return
		}
	}
	pins := make([]*pinned, len(shards))
	for n, sh := range shards {
		if pins[n] = c.pinOf(sh); pins[n] == nil {
			// The connection failed since it was pinned: the pin is
			// lost, so EXEC aborts whatever these keys do.
			c.ok()
			return
		}
	}
	for n, sh := range shards {
		p := pins[n]
		p.held = true
		r := c.newReq()
		r.buf = appendForClient(r.buf[:0], "SHARD.WATCH", c.sess.ID, keys[sh])
		r.Cmd = r.buf
		c.send(sh, &r.Request)
		if n == 0 {
			// WATCH writes nothing: a failure is TRYAGAIN, never
			// UNCERTAIN. The other shards' +OK is nobody's reply: a
			// failure there fails their connection, and EXEC aborts.
			c.slots = append(c.slots, slot{kind: slotForward, req: &r.Request, sh: sh, readonly: true})
		}
	}
}

// releaseWatch tells the nodes to forget the client's keys, on the
// connections that hold them, after what the batch sent there before.
func (c *client) releaseWatch() {
	for p := c.pin; p != nil; p = p.next {
		if !p.held {
			continue
		}
		p.held = false
		r := c.newReq()
		r.buf = appendForClient(r.buf[:0], "SHARD.UNWATCH", c.sess.ID, nil)
		r.Cmd = r.buf
		p.queue = append(p.queue, &r.Request) // its +OK is nobody's reply
	}
}

// unpin ends the pins once the batch is answered, or when the client
// leaves; a client that leaves while a node holds its keys has them
// forgotten, with no one waiting for the reply.
func (c *client) unpin() {
	if c.pin == nil {
		return
	}
	for p := c.pin; p != nil; p = p.next {
		if p.held {
			p.conn.Send(&backend.Request{Cmd: appendForClient(nil, "SHARD.UNWATCH", c.sess.ID, nil)})
		}
	}
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
