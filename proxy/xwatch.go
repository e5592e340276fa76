package proxy

import "github.com/shardkv/shardkv/resp"

// WATCH over keys of several shards: each shard holds its keys under the
// client's id on one of the proxy's shared connections, the client's pin
// to that shard (client.go's pinned), and the pins make a chain from
// c.pin. EXEC is then a cross-shard transaction whose prepare checks each
// shard's keys there (xshard.go, xcoll.go).

// pinOf returns the client's pin to sh when its requests for sh must take
// the connection that holds its watched keys, nil otherwise. Once that
// connection has failed the keys are gone with it (EXEC aborts) and the
// requests take the shared connections again.
func (c *client) pinOf(sh *shard) *pinned {
	for p := c.pin; p != nil; p = p.next {
		if p.sh != sh {
			continue
		}
		if p.lost {
			return nil
		}
		if p.conn.Failed() {
			p.lost, p.held = true, false
			return nil
		}
		return p
	}
	return nil
}

// pinnedTo reports whether the client's requests for sh take a pin.
func (c *client) pinnedTo(sh *shard) bool { return c.pinOf(sh) != nil }

// pinShard pins the client to sh unless it is, and returns the error
// reply when no connection to sh can be had.
func (c *client) pinShard(sh *shard) string {
	last := c.pin
	for p := c.pin; p != nil; p = p.next {
		if p.sh == sh {
			return ""
		}
		last = p
	}
	proto := 0
	if c.sess.Proto == resp.RESP3 {
		proto = 1
	}
	if l := c.lists[proto]; sh.idx < len(l) && len(l[sh.idx]) > 0 {
		// Earlier commands of the batch for this shard reach the node
		// before the WATCH, whichever connection they take.
		c.barrier()
	}
	cl := sh.backendDB(c.sess.Proto, c.sess.DB())
	conn := cl.Conn(int(c.sess.ID))
	if conn == nil {
		return sh.unavailable(cl.Err())
	}
	p := &pinned{sh: sh, conn: conn}
	if last == nil {
		c.pin = p
		c.sess.SetWatching(true)
	} else {
		last.next = p
	}
	return ""
}

// pinsLost reports whether a node no longer holds some of the client's
// watched keys (a failed connection, a protocol or database switch).
func (c *client) pinsLost() bool {
	for p := c.pin; p != nil; p = p.next {
		if p.lost || c.pinOf(p.sh) == nil {
			return true
		}
	}
	return false
}

// losePins marks every pin lost: EXEC aborts.
func (c *client) losePins() {
	for p := c.pin; p != nil; p = p.next {
		p.lost = true
	}
}

// watchedShards are the shards holding keys the client watches.
func (c *client) watchedShards() []*shard {
	var out []*shard
	for p := c.pin; p != nil; p = p.next {
		if p.held {
			out = append(out, p.sh)
		}
	}
	return out
}

// releasePins marks that the prepares take the nodes' records of the
// watched keys.
func (c *client) releasePins() {
	for p := c.pin; p != nil; p = p.next {
		p.held = false
	}
}

// nullExec is EXEC's nil reply: a watched key may have changed.
func (c *client) nullExec() {
	mark := len(c.out)
	c.out = resp.AppendNullArray(c.out, c.sess.Proto)
	c.reply(mark)
}
