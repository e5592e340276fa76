package proxy

import (
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/resp"
)

// Where the coordinator (xshard.go) sends cross-shard transaction messages.
//
// Under appendfsync always a node answers a TX.PREPARE, TX.DECIDE or
// TX.COMMIT after an fsync, off its event loop (shardnode/txexec.go); on
// the shared connection everything queued behind the message waited for
// that fsync, and the messages of concurrent transactions for one
// another's. So to such a node each message of a round goes on a
// transaction connection of its own (backend/txconn.go), and the
// connections are given back once the round is answered (txBarrier).
//
// Under everysec and no the node answers them on its loop as soon as they
// are written, like any write, and the shared connection, pipelined with
// everyone's traffic, is cheaper: measured with BenchmarkCrossShardMSet,
// the connections of their own gave 7,000-9,000 cross-shard transactions a
// second, the shared connection 13,000-24,000 (docs/BENCHMARKS.md).
//
// The proxy learns the node's policy in each new connection's handshake
// (noteTxSync); a CONFIG SET on the node itself is seen at the next one.

// noteTxSync reads the node's appendfsync (the handshake, after the
// assignment). A node that does not answer it is taken for "not always".
func noteTxSync(sh *shard, do func(args ...string) (resp.Value, error)) error {
	v, err := do("CONFIG", "GET", "appendfsync")
	if err != nil {
		return err
	}
	sh.txAlways.Store(!v.IsError() && len(v.Elems) == 2 && string(v.Elems[1].Str) == "always")
	return nil
}

// txConn is a transaction connection taken for the round in flight.
type txConn struct {
	cl   *backend.Client
	conn *backend.Conn
}

// sendTx sends r, a transaction message, to sh: on a transaction
// connection at once when sh's node syncs, else queued for the shared
// one. A message for the shard that holds the client's watched keys goes
// on the pinned connection, where the node has them (TX.PREPARE ...
// WATCH); when no transaction connection can be had, r takes the shared
// one.
func (c *client) sendTx(sh *shard, r *backend.Request) {
	if !sh.txAlways.Load() || c.pinnedTo(sh) {
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

// forgetTx sends TX.FORGET to the primary without waiting for its reply:
// the client's reply does not depend on it, and a FORGET that is lost
// leaves a decision record that no participant asks for
// (docs/TRANSACTIONS.md). It goes on the shared connection, where the
// node answers it on its loop (it waits for no fsync).
func (c *client) forgetTx(primary *shard, txid string) {
	r := &backend.Request{Cmd: resp.AppendCommandStrings(nil, "TX.FORGET", txid)}
	primary.backend(c.sess.Proto).Send(int(c.sess.ID), r)
}
