package shardnode

import (
	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// MULTI/EXEC on a shard node: commands queue per connection; EXEC runs the
// queue inside one bitcask Update, so it is atomic on this node and
// serialized with every other writer. WATCH registers its keys with the
// node (watch.go); EXEC checks them inside the same Update before running
// anything.
//
// A proxy serves many clients over each of its connections to a node, so
// it cannot give each of them a connection's own WATCH. It names the client
// instead: SHARD.WATCH <id> key [key ...] watches keys for client <id> of
// the connection, SHARD.UNWATCH <id> forgets them, and SHARD.EXEC <id> ends
// a MULTI as EXEC does, checking <id>'s keys. What a proxy keeps for its
// clients lives as long as the connection, like a connection's own WATCH.

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

// DISCARD also unwatches, as in Redis.
func cmdDiscard(c *client, args [][]byte) {
	if !c.inMulti {
		c.errReply("ERR DISCARD without MULTI")
		return
	}
	c.endMulti()
	c.srv.watches.unwatch(&c.watch)
	c.ok()
}

// endMulti leaves MULTI and forgets the queue.
func (c *client) endMulti() {
	c.inMulti, c.multiDirty = false, false
	clear(c.queue) // drop references to the queued arguments
	c.queue = c.queue[:0]
	c.sess.SetMulti(-1)
}

func cmdWatch(c *client, args [][]byte) {
	if c.inMulti {
		c.errReply("ERR WATCH inside MULTI is not allowed")
		return
	}
	c.watchKeys(&c.watch, args[1:])
	c.ok()
}

// watchKeys adds keys to w, each with what the database holds now.
func (c *client) watchKeys(w *watcher, keys [][]byte) {
	db := c.db()
	for _, key := range keys {
		c.srv.watches.watch(w, db.Num(), key, func(key []byte) (bool, uint64) {
			m, ok := db.MetaOf(key)
			return ok, m.Seq
		})
	}
}

func cmdUnwatch(c *client, args [][]byte) {
	c.srv.watches.unwatch(&c.watch)
	c.ok()
}

func cmdExec(c *client, args [][]byte) {
	c.exec(&c.watch)
}

// SHARD.WATCH id key [key ...]: WATCH for the proxy's client id.
func cmdShardWatch(c *client, args [][]byte) {
	if c.inMulti {
		c.errReply("ERR WATCH inside MULTI is not allowed")
		return
	}
	id := string(args[1])
	w := c.owners[id]
	if w == nil {
		if c.owners == nil {
			c.owners = make(map[string]*watcher)
		}
		w = &watcher{}
		c.owners[id] = w
	}
	c.watchKeys(w, args[2:])
	c.ok()
}

// SHARD.UNWATCH id: UNWATCH for the proxy's client id.
func cmdShardUnwatch(c *client, args [][]byte) {
	if w := c.owners[string(args[1])]; w != nil {
		c.srv.watches.unwatch(w)
		delete(c.owners, string(args[1]))
	}
	c.ok()
}

// SHARD.EXEC id: EXEC checking the keys watched for the proxy's client id.
// An id the connection does not know watches nothing (its SHARD.WATCH was
// refused, WRONGSHARD say): the transaction runs, as EXEC does after a
// WATCH that failed.
func cmdShardExec(c *client, args [][]byte) {
	id := string(args[1])
	w := c.owners[id]
	if w == nil {
		w = &watcher{}
	}
	if c.inMulti {
		delete(c.owners, id)
	}
	c.exec(w)
}

// exec ends MULTI: nothing runs when a command was refused while queueing
// (EXECABORT) or w's keys changed (a nil reply); else the queue runs in one
// Update. Either way w stops watching.
func (c *client) exec(w *watcher) {
	if !c.inMulti {
		c.errReply("ERR EXEC without MULTI")
		return
	}
	if c.multiDirty {
		c.endMulti()
		c.srv.watches.unwatch(w)
		c.errReply(errExecAbort)
		return
	}
	queue := c.queue
	c.inMulti = false
	c.sess.SetMulti(-1)
	mark := len(c.out)
	aborted, locked := false, false
	var served []*waiter
	err := c.srv.db.Update(func(tx *bitcask.Tx) error {
		c.txs.tx = tx.Select(c.sess.DB())
		c.st = &c.txs
		// Unwatch before the queue runs: its own writes must not count.
		keys, dirty := c.srv.watches.release(w)
		aborted = dirty
		for i := 0; i < len(keys) && !aborted; i++ {
			m, ok := tx.Select(keys[i].db()).Meta(keys[i].name())
			aborted = ok != keys[i].exists || ok && m.Seq != keys[i].seq
		}
		watched := len(keys) > 0
		clear(keys)
		w.keys = keys[:0]
		if aborted {
			return nil
		}
		// A key locked by a cross-shard transaction: nothing runs. Without
		// WATCH the proxy retries the EXEC (xshard.go); a WATCH is gone
		// once EXEC ran, so that transaction fails as if a watched key
		// changed, and its client retries it as it retries any.
		for _, q := range queue {
			if q.spec.kind == kindKeyed && c.txLockedKeys(q.spec, q.args) {
				aborted, locked = watched, !watched
				return nil
			}
		}
		c.array(len(queue))
		c.inExec = true // a blocking pop does not block (blocking.go)
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
		c.inExec = false
		// Blocked clients are served once the whole transaction ran.
		c.srv.serveReady(tx)
		served = c.srv.blocks.takeServed()
		return nil
	})
	c.inExec = false
	c.srv.handBack(served, err)
	c.txs.tx, c.st = nil, nil
	c.endMulti()
	switch {
	case err != nil:
		c.out = resp.AppendError(c.out[:mark], c.srv.storageError(err))
	case aborted:
		c.out = resp.AppendNullArray(c.out[:mark], c.sess.Proto)
	case locked:
		c.out = resp.AppendError(c.out[:mark], errTxLocked)
	}
}
