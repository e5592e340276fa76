package backend

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/shardkv/shardkv/resp"
)

// Connections for blocking commands (BLPOP, BZPOPMIN, ...). A blocking
// command's reply comes when the node serves it or its timeout passes,
// which may be never: on a shared connection every request queued behind
// it would wait as long, and the watchdog would close the connection (and
// fail everyone's requests) for a reply that is late only because the
// client asked to wait. So each blocking command gets a connection of its
// own for as long as it waits, without a watchdog (the command's timeout
// is the node's to enforce), taken from a small pool of idle ones and
// given back once answered. A caller whose client leaves while it waits
// closes the connection (Fail): the node sees the connection close and
// takes the client's waiter out, popping nothing for it.

// maxIdleBlocking is how many blocking connections a Client keeps open
// between blocking commands.
const maxIdleBlocking = 8

// ErrNoConnection is the failure of a blocking command that got no
// connection: the node is down, or the dial failed.
var ErrNoConnection = errors.New("no connection to the node")

// Blocking returns a connection for one blocking command: an idle one, or
// a new one dialed and handshaken as the shared ones are. nil with the
// reason when none could be had. Give it back with PutBlocking.
func (cl *Client) Blocking() (*Conn, error) {
	if !cl.Up() {
		if err := cl.Err(); err != nil {
			return nil, err
		}
		return nil, ErrNoConnection
	}
	if c := cl.takeIdle(&cl.idleBlocking); c != nil {
		return c, nil
	}
	select {
	case <-cl.closed:
		return nil, ErrClosed
	default:
	}
	// The node's id of the connection, for CLIENT UNBLOCK (Unblock): the
	// proxy's clients have ids of their own.
	var id int64
	hs := func(do func(args ...string) (resp.Value, error)) error {
		if cl.cfg.Handshake != nil {
			if err := cl.cfg.Handshake(do); err != nil {
				return err
			}
		}
		v, err := do("CLIENT", "ID")
		if err != nil {
			return err
		}
		if v.Type == ':' {
			id = v.Int // else 0: no CLIENT UNBLOCK on this connection
		}
		return nil
	}
	c, err := dial(cl.cfg.Addr, cl.cfg.Timeout, hs, nil, false)
	if c != nil {
		c.nodeID, c.owner = id, cl
	}
	return c, err
}

// Unblock ends the blocking command c, a connection from Blocking, waits
// for on the node, as CLIENT UNBLOCK does (asErr: with the UNBLOCKED
// error, else as at its timeout), asked on one of the shared connections:
// the node's reply, 1 when the command was blocked there, 0 when not (it
// was served, or has not reached the node yet).
func (c *Conn) Unblock(asErr bool) (int64, error) {
	if c.owner == nil || c.nodeID == 0 {
		return 0, nil
	}
	reason := "TIMEOUT"
	if asErr {
		reason = "ERROR"
	}
	v, err := c.owner.Do("CLIENT", "UNBLOCK", strconv.FormatInt(c.nodeID, 10), reason)
	switch {
	case err != nil:
		return 0, err
	case v.Type != ':':
		return 0, fmt.Errorf("CLIENT UNBLOCK: %s", v.Str)
	}
	return v.Int, nil
}

// PutBlocking gives back a connection from Blocking once its command was
// answered; a failed one, or one with a request still in flight, is closed.
func (cl *Client) PutBlocking(c *Conn) { cl.putIdle(&cl.idleBlocking, maxIdleBlocking, c) }

// closeBlocking closes the idle blocking connections (Client.Close).
func (cl *Client) closeBlocking() { cl.closeIdle(&cl.idleBlocking) }
