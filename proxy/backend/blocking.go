package backend

import "errors"

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
	return dial(cl.cfg.Addr, cl.cfg.Timeout, cl.cfg.Handshake, nil, false)
}

// PutBlocking gives back a connection from Blocking once its command was
// answered; a failed one, or one with a request still in flight, is closed.
func (cl *Client) PutBlocking(c *Conn) { cl.putIdle(&cl.idleBlocking, maxIdleBlocking, c) }

// closeBlocking closes the idle blocking connections (Client.Close).
func (cl *Client) closeBlocking() { cl.closeIdle(&cl.idleBlocking) }
