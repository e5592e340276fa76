package proxy

import (
	"errors"
	"time"

	"github.com/shardkv/shardkv/proxy/backend"
)

// Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP) through the proxy. The node blocks the client and
// enforces the timeout (shardnode/blocking.go); the proxy gives the command
// a node connection of its own for as long as it waits
// (backend.Client.Blocking), so that the other clients' requests on the
// shared pipelined connections never queue behind it. As with a big
// request (sendSolo), the client's order is kept: what its batch queued
// before the command is answered first, and what comes after is sent once
// it is answered, which is also what Redis does with a blocked client's
// pipeline.
//
// A client that leaves while blocked: its connection's hup watch
// (sockio.WatchHup) closes the node connection, the node sees it close and
// takes the waiter out without popping anything. A client connection
// without the watch (no descriptor) is seen leaving only when the command
// returns.
//
// A node connection lost while the client waits (the node restarted)
// answers TRYAGAIN: the node pops for a client only while its connection
// is open (it polls the socket before serving), so the command did not
// run, except in the window between the node committing a pop and its
// reply reaching the proxy, in which the node died or the connection was
// cut; the element is then popped and its reply lost, as with a Redis
// client whose connection drops at that moment. Inside MULTI a blocking
// command is queued and runs in EXEC as its non-blocking form, on the
// transaction's connection. Keys on several shards get CROSSSHARD (sameNode).

// errClientGone closes the node connection of a client that left while
// blocked.
var errClientGone = errors.New("client left while blocked")

// errShuttingDown closes the node connections of blocked clients when the
// proxy shuts down; they get TRYAGAIN (the node pops nothing for them).
var errShuttingDown = errors.New("the proxy is shutting down")

// forwardBlocking sends raw, a blocking command, to sh on a connection of
// its own and waits for its reply.
func (c *client) forwardBlocking(sh *shard, raw []byte) {
	r := c.newReq()
	r.Cmd = raw
	// readonly: a failure says TRYAGAIN (see above), never UNCERTAIN.
	c.slots = append(c.slots, slot{kind: slotForward, req: &r.Request, sh: sh, readonly: true})
	c.barrier()
	b := sh.backendDB(c.sess.Proto, c.sess.DB())
	conn, err := b.Blocking()
	if conn == nil {
		r.Err = &backend.NotSentError{Err: err}
		return
	}
	c.blockConn.Store(conn)
	switch {
	case c.peerClosed.Load():
		conn.Fail(errClientGone)
	case c.s.shutting.Load():
		conn.Fail(errShuttingDown)
	}
	c.s.blocked.Add(1)
	c.sess.SetBlocked(true)
	blockedAt := time.Now()
	conn.Send(&r.Request)
	c.barrier()
	// The time spent waiting is not the batch's latency (slow log,
	// LATENCY, INFO commandstats), as Redis leaves it out of a blocked
	// command's.
	c.obs.start = c.obs.start.Add(time.Since(blockedAt))
	c.sess.SetBlocked(false)
	c.s.blocked.Add(-1)
	c.blockConn.Store(nil)
	b.PutBlocking(conn)
}
