package proxy

import "github.com/shardkv/shardkv/proxy/backend"

// Cross-shard transaction messages on connections of their own
// (backend/txconn.go): a node answers a TX.PREPARE, TX.DECIDE or TX.COMMIT
// after an fsync, and on the shared connection everything queued behind it
// waited for that fsync. The coordinator (xshard.go) sends each message of
// a round on a transaction connection of the shard, and gives the
// connections back once the round is answered (txBarrier).

// txConn is a transaction connection taken for the round in flight.
type txConn struct {
	cl   *backend.Client
	conn *backend.Conn
}

// sendTx sends r, a transaction message, to sh now. A message for the
// shard that holds the client's watched keys goes on the pinned
// connection, where the node has them (TX.PREPARE ... WATCH); when no
// transaction connection can be had, r takes the shared one.
func (c *client) sendTx(sh *shard, r *backend.Request) {
	if c.pinnedTo(sh) {
		c.send(sh, r)
		return
	}
	cl := sh.backend(c.sess.Proto)
	conn := cl.Tx()
	if conn == nil {
		c.send(sh, r)
		return
	}
	conn.Send(r)
	c.txHeld = append(c.txHeld, txConn{cl, conn})
}

// txBarrier is barrier for a round of transaction messages: it waits for
// every reply, then gives the round's connections back.
func (c *client) txBarrier() {
	c.barrier()
	for _, h := range c.txHeld {
		h.cl.PutTx(h.conn)
	}
	clear(c.txHeld)
	c.txHeld = c.txHeld[:0]
}
