package proxy

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/memfree"
	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/resp"
)

// A client connection is served by its goroutine (conn.go), one pipelined
// batch at a time (every complete command in the read buffer):
//
//  1. each command is answered locally or turned into requests, which are
//     queued per shard node;
//  2. the queues are sent, one write per node connection, so a batch
//     reaches every node before the proxy waits for the first reply;
//  3. the goroutine waits once for every reply of the batch;
//  4. the replies are written in the client's order, in one write:
//     forwarded ones as the node wrote them, merged ones (fan-out, split)
//     assembled from the nodes' raw elements.
//
// A command whose handling must wait for earlier ones (a WATCH after
// commands of the batch for the same node, HELLO that switches protocol,
// SHARD.RELOAD) first sends and waits for what is queued: a barrier.

// slot is the reply to one command of a batch, in order.
type slot struct {
	kind slotKind
	a, b int              // slotLocal: c.out[a:b]
	req  *backend.Request // slotForward, slotExec
	sh   *shard           // the shard req went to, for the error
	m    *merge           // slotMerge
	// silent: CLIENT REPLY OFF or SKIP; the reply is dropped
	silent bool
	// readonly: the command cannot change data, so a retry is harmless
	// even when its outcome is unknown (shard.failed)
	readonly bool
	// sha: an EVALSHA's digest, retried behind SCRIPT LOAD on NOSCRIPT
	// (script.go)
	sha string
}

type slotKind uint8

const (
	slotLocal   slotKind = iota // bytes already in c.out
	slotForward                 // the node's reply, as it is
	slotExec                    // the last reply of MULTI ... EXEC
	slotMerge                   // assembled from several requests
)

// preq is a pooled request with its own buffer for commands the proxy
// encodes (the parts of a split command).
type preq struct {
	backend.Request
	buf []byte
}

// pinned is a client's WATCH, between WATCH and EXEC/DISCARD/UNWATCH: the
// node of the watched keys holds them under the client's id on conn, one of
// the proxy's shared connections, so the client's commands for that node
// are pinned to conn (tx.go). Keys watched on several shards make a chain,
// one pin a shard (next; xwatch.go).
type pinned struct {
	sh   *shard
	conn *backend.Conn
	next *pinned
	// queue: the batch's requests for conn
	queue []*backend.Request
	// held: the node holds keys for the client (SHARD.WATCH was sent, and
	// no SHARD.UNWATCH or SHARD.EXEC since).
	held bool
	// lost: the client switched protocol, whose replies conn cannot carry;
	// the node was told to forget the keys, and EXEC aborts.
	lost bool
}

// client is the state of one client connection. Fields without a comment
// on synchronization belong to the connection's goroutine.
type client struct {
	s  *Server
	nc net.Conn
	rc syscall.RawConn // nc's descriptor, when it has one (conn.go)
	// sess is the state the connection commands share with the shard
	// node's connections (internal/conncmd): id, addresses, protocol, AUTH,
	// name, QUIT (sess.Quit: close after this batch's replies), CLIENT
	// REPLY's flags.
	sess conncmd.Session

	// readonly: the command being routed cannot change data (see
	// slot.readonly)
	readonly bool
	// retries: the batch has an EVALSHA to retry on NOSCRIPT (script.go)
	retries bool

	// skipNext drops the next command's reply (CLIENT REPLY SKIP, see
	// received, conn.go).
	skipNext bool

	// MULTI state
	inMulti    bool
	dirty      bool             // an error while queueing: EXEC aborts
	queued     []redcon.Command // commands between MULTI and EXEC
	pin        *pinned          // the first of the chain
	unpinAfter bool             // release pin once this batch is answered

	// batch state, reused
	tbl    *table
	w      *backend.Waiter
	slots  []slot
	out    []byte // local replies
	pool   []*preq
	npool  int
	merges []*merge
	nmerge int
	lists  [2][][]*backend.Request // per protocol (0: RESP2, 1: RESP3), per shard index
	txHeld []txConn                // transaction connections of the round in flight (txsend.go)
	shIdx  []int32                 // scratch: the shard of each key
	elems  [][]byte
	batchN int // commands in the batch
	// bigBytes: the big requests the batch sent, whose buffers are
	// released (memfree) once the batch is done.
	bigBytes int
	// obs is what observe.go records of the batch
	obs clientObs
	// the last command looked up, by the name as the client spelled it
	lastName []byte
	lastCI   *cmdtable.Command

	// the connection (conn.go)
	rd       resp.RequestReader // requests read and not yet served
	wout     []byte             // the batch's replies
	readable func(uintptr) bool
	sw       sockio.Writer // flush's writes through rc
	rerr     error         // the connection failed
	perr     error         // a protocol error: answered after the batch, then close
	// hupKey is the connection's key for sockio.WatchHup, 0 when not
	// watched; peerClosed is set by the watch when the client's FIN came.
	hupKey     uint32
	peerClosed atomic.Bool
	// blockConn is the node connection of the blocking command the client
	// waits in, closed when the client leaves (blocking.go).
	blockConn atomic.Pointer[backend.Conn]

	// Rounds and the output buffer limit (replymem.go): window is the
	// commands a round sends at most; roundN and roundBytes are this
	// round's commands and reply bytes. obufPending is the reply bytes
	// delivered for the round and not yet written, added by the node
	// connections' readers (sink); obufOver is set once the client went
	// over its limit; obufSoftSince (under obufMu) is when it was first
	// seen over the soft limit.
	window        int
	roundN        int
	roundBytes    int64
	sink          func(int) bool
	obufPending   atomic.Int64
	obufOver      atomic.Bool
	obufMu        sync.Mutex
	obufSoftSince int64

	// Pub/Sub (pubsub.go): ps is the client's subscriptions, nil before
	// its first (un)subscribe; stream its output from then on; psProto
	// its protocol, which the links' readers encode messages in.
	ps      *psState
	stream  *psStream
	psProto atomic.Int32
}

func newClient(s *Server, nc net.Conn) *client {
	c := &client{s: s, nc: nc, w: backend.NewWaiter(), window: startWindow}
	c.sink = c.onReply
	c.sess.Init(s.nextID.Add(1), nc.RemoteAddr().String(), nc.LocalAddr().String(), s.cfg.RequirePass)
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			_ = rc.Control(func(fd uintptr) {
				c.sess.SetFD(int(fd))
				if key, ok := sockio.WatchHup(fd, c.onPeerClosed); ok {
					c.hupKey = key
				}
			})
		}
	}
	return c
}

// beginBatch starts a batch: exec each of its commands, then endBatch.
func (c *client) beginBatch() {
	c.s.inBatch.Add(1)
	c.tbl = c.s.table.Load()
	c.w.Begin()
	c.batchN = 0
	c.obsBegin()
}

// endBatch sends the batch's requests, waits for their replies and puts
// every reply in c.wout, in order.
func (c *client) endBatch() {
	c.s.commands.Add(int64(c.batchN))
	c.sendQueued()
	c.w.Wait()
	c.retryMoved()
	c.retryNoScript()
	c.retryLocked()
	c.observe()
	c.writeReplies()
	c.afterReplies()
}

// barrier sends what is queued and waits for it; the replies stay in their
// slots.
func (c *client) barrier() {
	c.sendQueued()
	c.w.Wait()
	c.w.Begin()
	c.tbl = c.s.table.Load()
}

func (c *client) sendQueued() {
	db := c.sess.DB()
	for p := range c.lists {
		lists := c.lists[p]
		for i, l := range lists {
			if len(l) == 0 {
				continue
			}
			proto := resp.RESP2
			if p == 1 {
				proto = resp.RESP3
			}
			c.tbl.nodes[i].backendDB(proto, db).Send(int(c.sess.ID), l...)
			clear(l)
			lists[i] = l[:0]
		}
	}
	for p := c.pin; p != nil; p = p.next {
		if len(p.queue) > 0 {
			p.conn.Send(p.queue...)
			clear(p.queue)
			p.queue = p.queue[:0]
		}
	}
}

// newReq returns a pooled request tied to the batch's waiter.
func (c *client) newReq() *preq {
	if c.npool == len(c.pool) {
		c.pool = append(c.pool, &preq{Request: backend.Request{W: c.w, Sink: c.sink}})
	}
	r := c.pool[c.npool]
	c.npool++
	r.N = 0
	r.Cmd = nil
	return r
}

// send queues r for sh: on the connection that holds the client's watched
// keys when it watches keys of sh (tx.go), else on the shared connection
// the client's id picks.
func (c *client) send(sh *shard, r *backend.Request) {
	if p := c.pinOf(sh); p != nil {
		p.queue = append(p.queue, r)
		return
	}
	if len(r.Cmd) >= backend.BigRequest && c.sendSolo(sh, r) {
		return
	}
	p := 0
	if c.sess.Proto == resp.RESP3 {
		p = 1
	}
	lists := c.lists[p]
	if len(lists) < len(c.tbl.nodes) {
		lists = append(lists, make([][]*backend.Request, len(c.tbl.nodes)-len(lists))...)
		c.lists[p] = lists
	}
	lists[sh.idx] = append(lists[sh.idx], r)
}

// sendSolo sends a big request on a connection of its own (see
// backend.BigRequest), so that the shared connection's other requests do
// not wait behind it. The client's order is kept: what the batch queued
// before it is answered first (a barrier), and what comes after is sent
// once it is answered. False when no solo connection could be had: the
// request goes on the shared connection.
func (c *client) sendSolo(sh *shard, r *backend.Request) bool {
	b := sh.backend(c.sess.Proto)
	c.barrier()
	conn := b.Solo(len(r.Cmd))
	if conn == nil {
		return false
	}
	conn.Send(r)
	c.barrier()
	b.PutSolo(conn)
	c.bigBytes += len(r.Cmd)
	return true
}

// forward sends raw to sh and answers with the node's reply as it is.
func (c *client) forward(sh *shard, raw []byte) {
	r := c.newReq()
	r.Cmd = raw
	c.send(sh, &r.Request)
	c.slots = append(c.slots, slot{kind: slotForward, req: &r.Request, sh: sh, readonly: c.readonly})
}

// reply is a local reply: the bytes appended to c.out since mark.
func (c *client) reply(mark int) {
	c.slots = append(c.slots, slot{kind: slotLocal, a: mark, b: len(c.out)})
}

func (c *client) errorReply(msg string) {
	mark := len(c.out)
	c.out = resp.AppendError(c.out, msg)
	c.reply(mark)
}

func (c *client) simple(s string) {
	mark := len(c.out)
	c.out = resp.AppendSimple(c.out, s)
	c.reply(mark)
}

func (c *client) ok() {
	mark := len(c.out)
	c.out = resp.AppendOK(c.out)
	c.reply(mark)
}

func (c *client) integer(n int64) {
	mark := len(c.out)
	c.out = resp.AppendInt(c.out, n)
	c.reply(mark)
}

func (c *client) bulk(b []byte) {
	mark := len(c.out)
	c.out = resp.AppendBulk(c.out, b)
	c.reply(mark)
}

func (c *client) null() {
	mark := len(c.out)
	c.out = resp.AppendNull(c.out, c.sess.Proto)
	c.reply(mark)
}

// writeReplies appends the batch's replies to c.wout in order and resets
// the batch.
func (c *client) writeReplies() {
	out := c.wout
	c.roundN += len(c.slots)
	for i := range c.slots {
		sl := &c.slots[i]
		switch {
		case sl.silent: // CLIENT REPLY OFF or SKIP: dropped
		case sl.kind == slotLocal:
			out = append(out, c.out[sl.a:sl.b]...)
		case sl.kind == slotForward:
			switch {
			case sl.req.Err != nil:
				out = resp.AppendError(out, sl.sh.failed(sl.req.Err, !sl.readonly))
			case isWrongShard(sl.req.Reply):
				out = resp.AppendError(out, c.s.wrongShardReply(sl.sh, sl.req.Reply))
			case len(sl.req.Reply) > len(streamRefPrefix) && sl.req.Reply[0] == '+':
				if id, n, ok := parseStreamRef(sl.req.Reply); ok {
					out = c.emitStream(out, sl.sh, id, n)
				} else {
					out = c.emit(out, sl.req.Reply, true)
				}
			default:
				out = c.emit(out, sl.req.Reply, true)
			}
		case sl.kind == slotExec:
			if sl.req.Err != nil {
				out = resp.AppendError(out, sl.sh.failed(sl.req.Err, true))
			} else if ws := execWrongShard(sl.req.Reply, sl.req.N); ws != nil {
				out = resp.AppendError(out, c.s.wrongShardReply(sl.sh, ws))
			} else {
				out = append(out, lastReply(sl.req.Reply, sl.req.N)...)
			}
		case sl.kind == slotMerge:
			out = sl.m.write(c, out)
		}
		sl.req, sl.sh, sl.m = nil, nil, nil
	}
	c.wout = out
	c.slots = c.slots[:0]
	if cap(c.out) > 1<<20 {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	for _, r := range c.pool[:c.npool] {
		if n := cap(r.Reply); n > 64<<10 {
			r.Reply = nil
			memfree.Released(n)
		}
		if cap(r.buf) > 64<<10 {
			r.buf = nil
		}
		r.Cmd = nil
	}
	c.npool = 0
	for _, m := range c.merges[:c.nmerge] {
		m.reset()
	}
	c.nmerge = 0
}

// lastReply returns the last of the n replies in b.
func lastReply(b []byte, n int) []byte {
	for i := 0; i < n-1; i++ {
		l, err := resp.ReplyLen(b)
		if err != nil || l == 0 {
			return resp.AppendError(nil, "ERR malformed transaction reply from the shard node")
		}
		b = b[l:]
	}
	return b
}

// exec handles one command of a batch. cmd.Raw and cmd.Args alias the read
// buffer, and Args is reused for the next command: keep neither beyond the
// call except Raw as a request's Cmd (valid until the batch is answered).
func (c *client) exec(cmd redcon.Command) {
	args := cmd.Args
	ci := c.lookup(args[0])
	if ci == nil || ci.Route == cmdtable.RouteNodeOnly {
		c.sess.SetLastCommand(nil, nil, cmdtable.SideProxy)
		c.reject(cmdtable.ErrUnknownCommand(args[0], args[1:]))
		return
	}
	c.sess.SetLastCommand(ci, args, cmdtable.SideProxy)
	c.readonly = ci.Flags&cmdtable.FlagWrite == 0
	if c.obsNote(ci, args) {
		return
	}
	if _, msg := ci.Resolve(args, cmdtable.SideProxy); msg != "" {
		c.reject(msg)
		return
	}
	if !c.sess.Authed && ci.Flags&cmdtable.FlagNoAuth == 0 {
		c.reject("NOAUTH Authentication required.")
		return
	}
	if c.sess.Proto == resp.RESP2 && c.sess.Subscribed() {
		name := ci.Name
		if row, _ := ci.Resolve(args, cmdtable.SideProxy); row != nil {
			name = row.Name
		}
		if msg := conncmd.SubscribedModeError(name); msg != "" {
			c.reject(msg)
			return
		}
	}
	if c.inMulti && ci.Multi != cmdtable.MultiNow {
		c.queue(ci, cmd)
		return
	}
	switch {
	case ci.Group == "scripting" && ci.Route == cmdtable.RouteSameNode:
		c.eval(ci, cmd)
		return
	case ci.Merge == cmdtable.MergeScript:
		c.script(ci, cmd)
		return
	}
	switch ci.Route {
	case cmdtable.RouteKey:
		if ci.FirstKey >= len(args) {
			c.forward(c.tbl.shards[0], cmd.Raw) // e.g. OBJECT HELP: any node answers
			return
		}
		sh := c.tbl.locate(args[ci.FirstKey])
		if rc := c.pickReplica(sh, ci); rc != nil {
			c.forwardReplica(sh, rc, cmd.Raw)
			return
		}
		c.forward(sh, cmd.Raw)
	case cmdtable.RouteSplit:
		c.split(ci, cmd)
	case cmdtable.RouteSameNode:
		c.sameNode(ci, cmd)
	case cmdtable.RouteFanout:
		c.fanout(ci, cmd)
	case cmdtable.RouteTx:
		c.tx(ci, cmd)
	case cmdtable.RouteLocal, cmdtable.RouteProxyOnly:
		c.local(ci, cmd)
	default:
		c.reject(cmdtable.ErrUnknownCommand(args[0], args[1:]))
	}
}

// lookup is cmdtable.Lookup with a one-entry cache: clients mostly repeat a
// command, and spelled in upper case it costs Lookup two map probes.
func (c *client) lookup(name []byte) *cmdtable.Command {
	if c.lastCI != nil && string(name) == string(c.lastName) {
		return c.lastCI
	}
	ci := cmdtable.Lookup(name)
	if ci != nil && len(name) <= 32 {
		c.lastName = append(c.lastName[:0], name...)
		c.lastCI = ci
	}
	return ci
}

// reject answers with an error; inside MULTI it also makes EXEC abort, as
// Redis flags a transaction whose commands failed to queue.
func (c *client) reject(msg string) {
	if c.inMulti {
		c.dirty = true
	}
	c.errorReply(msg)
}

// shardsOf fills c.shIdx with the map entry of each key at positions
// first, first+step, ... of args, and reports whether one node serves them
// all (entries of one node are one shard: the node owns all their keys).
func (c *client) shardsOf(args [][]byte, first, last, step int) bool {
	c.shIdx = c.shIdx[:0]
	same := true
	for i := first; i <= last; i += step {
		idx := c.tbl.shardIdx(args[i])
		if len(c.shIdx) > 0 && c.tbl.shards[idx] != c.tbl.shards[c.shIdx[0]] {
			same = false
		}
		c.shIdx = append(c.shIdx, idx)
	}
	return same
}

// crossShard is the error for an atomic command whose keys live on two
// shards.
func crossShard(cmd, a, b string) string {
	return "CROSSSHARD keys of '" + cmd + "' live on different shards (" + a + ", " + b + "); " + cmd + " is atomic only within one shard"
}

// sameNode forwards MSETNX, RENAME, RENAMENX and COPY when their keys share
// a shard and refuses them otherwise: they are atomic, and across nodes
// they could not be.
func (c *client) sameNode(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	if !ci.PairsOK(len(args)) {
		c.reject(cmdtable.ErrWrongArity(ci.Name))
		return
	}
	same := false
	if ci.KeyNum > 0 || ci.MoreKeys != nil {
		same = c.shardsOfKeys(args, ci)
		if !same && ci.Merge == cmdtable.MergeZSetOp {
			c.zsetGather(ci, cmd)
			return
		}
	} else {
		same = c.shardsOf(args, ci.FirstKey, ci.LastKeyIndex(args), ci.Step)
	}
	if len(c.shIdx) == 0 {
		c.forward(c.tbl.shards[0], cmd.Raw) // a key count that is not one: the node replies the error
		return
	}
	if !same && ci.Name == "msetnx" {
		c.xWrite(ci.Name, args, ci.Step)
		return
	}
	if !same && xCollCommand(ci.Name) {
		c.xColl(ci, args)
		return
	}
	if !same {
		a := c.tbl.shards[c.shIdx[0]].name
		for _, i := range c.shIdx {
			if b := c.tbl.shards[i].name; b != a {
				c.errorReply(crossShard(ci.Name, a, b))
				return
			}
		}
	}
	if ci.Flags&cmdtable.FlagBlocking != 0 {
		c.forwardBlocking(c.tbl.shards[c.shIdx[0]], cmd.Raw)
		return
	}
	c.forward(c.tbl.shards[c.shIdx[0]], cmd.Raw)
}

// lower returns the lower-case form of a command argument.
func lower(b []byte) string { return strings.ToLower(string(b)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
