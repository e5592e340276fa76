package shardnode

import (
	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// MULTI/EXEC on a shard node: commands queue per connection; EXEC runs the
// queue inside one bitcask Update, so it is atomic on this node and
// serialized with every other writer. WATCH remembers each key's sequence
// number (bitcask.Meta.Seq, which changes on every write of the key); EXEC
// compares them inside the same Update before running anything.

func cmdMulti(c *client, args [][]byte) {
	if c.inMulti {
		c.errReply("ERR MULTI calls can not be nested")
		return
	}
	c.inMulti, c.multiDirty = true, false
	c.queue = c.queue[:0]
	c.sess.SetMulti(0)
	c.ok()
}

func cmdDiscard(c *client, args [][]byte) {
	if !c.inMulti {
		c.errReply("ERR DISCARD without MULTI")
		return
	}
	c.endMulti()
	c.ok()
}

// endMulti leaves MULTI and forgets the queue and the watched keys.
func (c *client) endMulti() {
	c.inMulti, c.multiDirty = false, false
	clear(c.queue) // drop references to the queued arguments
	c.queue = c.queue[:0]
	c.watches = c.watches[:0]
	c.sess.SetMulti(-1)
}

func cmdWatch(c *client, args [][]byte) {
	if c.inMulti {
		c.errReply("ERR WATCH inside MULTI is not allowed")
		return
	}
outer:
	for _, key := range args[1:] {
		for _, w := range c.watches {
			if w.key == string(key) {
				continue outer
			}
		}
		m, ok := c.srv.db.MetaOf(key)
		c.watches = append(c.watches, watchedKey{key: string(key), exists: ok, seq: m.Seq})
	}
	c.ok()
}

func cmdUnwatch(c *client, args [][]byte) {
	c.watches = c.watches[:0]
	c.ok()
}

func cmdExec(c *client, args [][]byte) {
	if !c.inMulti {
		c.errReply("ERR EXEC without MULTI")
		return
	}
	if c.multiDirty {
		c.endMulti()
		c.errReply(errExecAbort)
		return
	}
	queue, watches := c.queue, c.watches
	c.inMulti = false
	c.sess.SetMulti(-1)
	mark := len(c.out)
	aborted := false
	err := c.srv.db.Update(func(tx *bitcask.Tx) error {
		c.txs.tx = tx
		c.st = &c.txs
		for _, w := range watches {
			m, ok := c.st.meta([]byte(w.key))
			if ok != w.exists || ok && m.Seq != w.seq {
				aborted = true
				return nil
			}
		}
		c.array(len(queue))
		for _, q := range queue {
			// The assignment may have changed since the command queued.
			if q.spec.kind == kindKeyed || q.spec.kind == kindKeyless {
				if msg := c.checkKeys(q.spec, q.args); msg != "" {
					c.errReply(msg)
					continue
				}
			}
			q.spec.fn(c, q.args)
		}
		return nil
	})
	c.txs.tx, c.st = nil, nil
	c.endMulti()
	switch {
	case err != nil:
		c.out = resp.AppendError(c.out[:mark], c.srv.storageError(err))
	case aborted:
		c.out = resp.AppendNullArray(c.out[:mark], c.sess.Proto)
	}
}
