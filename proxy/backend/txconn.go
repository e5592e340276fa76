package backend

// Connections for cross-shard transaction messages (TX.PREPARE, TX.DECIDE,
// TX.COMMIT, TX.ABORT). A node runs each of them off its event loop and
// replies once its fsync is done (shardnode/txexec.go), but a connection
// answers in order: on the shared connection every request queued behind a
// message waited for that fsync, and the messages of concurrent
// transactions for one another's, one fsync after another. On connections
// of their own, one message each at a time, concurrent transactions reach
// the node together and share its fsyncs (group commit), and the shared
// connection's traffic never waits for them. The connections are taken
// from a pool of idle ones and given back once the message is answered, as
// solo connections are (solo.go), with the shared connections' watchdog.

// maxIdleTx is how many transaction connections a Client keeps open
// between messages: one per transaction in flight to the node, which the
// proxy's clients bound.
const maxIdleTx = 128

// Tx returns a connection for one round of transaction messages: an idle
// one, or a new one dialed and handshaken as the shared ones are. nil when
// the node is down or the dial fails: the caller then uses the shared
// connection. Give it back with PutTx once its requests completed.
func (cl *Client) Tx() *Conn {
	c := cl.idleOrDial(&cl.idleTx)
	if c != nil {
		// One caller at a time: nothing to wait for before writing.
		c.yield = false
	}
	return c
}

// PutTx gives back a connection from Tx.
func (cl *Client) PutTx(c *Conn) { cl.putIdle(&cl.idleTx, maxIdleTx, c) }

// closeTx closes the idle transaction connections (Client.Close).
func (cl *Client) closeTx() { cl.closeIdle(&cl.idleTx) }
