package backend

import (
	"sync/atomic"
	"time"
)

// BigRequest is the request size from which the proxy sends a request on
// a connection of its own (Client.Solo) instead of a shared one. On a
// shared connection every request queued behind it waited for its bytes
// to be written and for its reply (a 500 MiB SET kept the other clients
// of the shard waiting for seconds, long enough for the timeout to close
// the connection and fail all of them).
const BigRequest = 1 << 20

// bigBytesPerSecond is the slowest a node may take in a big request (its
// transfer and its execution) on top of the timeout: a node that is alive
// takes a 512 MiB request in well under a minute, even on a loaded machine
// where the kernel throttles its dirty pages (4-8 s measured for 500 MB on
// two loaded cores, a 64 MiB one over 4 s in a race build).
const bigBytesPerSecond = 8 << 20

// allowance is the time a big request of size bytes may take beyond the
// timeout.
func allowance(size int) time.Duration {
	return time.Duration(size) * time.Second / bigBytesPerSecond
}

// Busy is what a node's big requests in flight allow its connections
// beyond their timeout. A node executes a big request in one go (a 500 MB
// SET is a pwrite of 500 MB): meanwhile it answers no other connection,
// and a watchdog that gave up on the shared connections then failed every
// other client's request for being slow behind it. So while a big request
// is in flight on a solo connection, the watchdogs of all the node's
// connections wait the timeout plus its allowance. The proxy's two
// Clients for a node (RESP2 and RESP3) share one.
type Busy struct {
	extra atomic.Int64 // nanoseconds: the allowances of the big requests in flight
}

// maxIdleSolo is how many solo connections a Client keeps open between
// big requests.
const maxIdleSolo = 2

// Solo returns a connection that carries no one else's requests: an idle
// one kept from an earlier big request, or a new one, dialed and
// handshaken as the shared ones are. The caller sends on it, waits for its
// requests, and gives it back with PutSolo. nil when the dial fails; the
// caller then uses the shared connection. size is the request's length:
// the connection waits for its reply the timeout plus the time size takes
// at soloBytesPerSecond.
func (cl *Client) Solo(size int) *Conn {
	c := cl.solo()
	if c != nil {
		c.soloExtra = int64(allowance(size))
		cl.busy.extra.Add(c.soloExtra)
	}
	return c
}

func (cl *Client) solo() *Conn { return cl.idleOrDial(&cl.idleSolo) }

// PutSolo gives back a connection from Solo once its requests completed.
func (cl *Client) PutSolo(c *Conn) {
	cl.busy.extra.Add(-c.soloExtra)
	c.soloExtra = 0
	cl.putIdle(&cl.idleSolo, maxIdleSolo, c)
}

// closeSolo closes the idle solo connections (Client.Close).
func (cl *Client) closeSolo() { cl.closeIdle(&cl.idleSolo) }

type soloError string

func (e soloError) Error() string { return string(e) }

const errSoloDropped = soloError("solo connection not reused")
