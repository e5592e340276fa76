package shardnode

import (
	"strconv"
	"sync"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// Stream references. A proxy multiplexes its clients on shared node
// connections, so a 512 MB GET reply streamed on one of them would hold up
// every other client's replies behind it for as long as its client takes
// to read, and the proxy would have to take it all in to get past it. So a
// proxy's connection that asked for them (SHARD.STREAMREFS) gets, for a GET
// of proxyStreamMin bytes or more, a reference instead of the value:
//
//	+STREAM <id> <length>
//
// The value is opened when the GET runs (bitcask.ValueStream: the value as
// of the GET, its file held), and the proxy fetches it on a connection of
// its own when the client's turn comes (SHARD.FETCH id), copying it to the
// client a buffer at a time: neither the node nor the proxy holds it, and
// the shared connection carries a line. A reference not fetched within
// refTTL (a proxy that died between) is closed, and so are the oldest
// once maxRefs are waiting.

const (
	proxyStreamMin = 4 << 20
	refTTL         = time.Minute
	maxRefs        = 1024
)

type streamRef struct {
	vs      *bitcask.ValueStream
	created time.Time
}

type streamRefs struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]streamRef
}

// add keeps vs under a new id, closing expired references (and the oldest
// when full).
func (r *streamRefs) add(vs *bitcask.ValueStream, now time.Time) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[uint64]streamRef)
	}
	var oldest uint64
	for id, ref := range r.m {
		if now.Sub(ref.created) > refTTL {
			ref.vs.Close()
			delete(r.m, id)
		} else if oldest == 0 || id < oldest {
			oldest = id
		}
	}
	if len(r.m) >= maxRefs {
		r.m[oldest].vs.Close()
		delete(r.m, oldest)
	}
	r.next++
	r.m[r.next] = streamRef{vs: vs, created: now}
	return r.next
}

// take removes and returns the reference id; nil when there is none (never
// made, fetched already, or expired).
func (r *streamRefs) take(id uint64, now time.Time) *bitcask.ValueStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.m[id]
	if !ok {
		return nil
	}
	delete(r.m, id)
	if now.Sub(ref.created) > refTTL {
		ref.vs.Close()
		return nil
	}
	return ref.vs
}

// closeAll closes every reference (the server is shutting down).
func (r *streamRefs) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, ref := range r.m {
		ref.vs.Close()
		delete(r.m, id)
	}
}

// streamReply replies vs, opened for a GET: a reference for a proxy that
// takes them, else the value itself, streamed a pass at a time.
func (c *client) streamReply(vs *bitcask.ValueStream) {
	if c.streamRefs && vs.Len() >= proxyStreamMin {
		id := c.srv.refs.add(vs, time.Now())
		c.out = append(c.out, "+STREAM "...)
		c.out = strconv.AppendUint(c.out, id, 10)
		c.out = append(c.out, ' ')
		c.out = strconv.AppendInt(c.out, vs.Len(), 10)
		c.out = append(c.out, '\r', '\n')
		return
	}
	c.out = resp.AppendBulkHeader(c.out, int(vs.Len()))
	c.stream = vs
}

// SHARD.STREAMREFS: this connection (a proxy's) takes stream references
// for big GET replies.
func cmdShardStreamRefs(c *client, _ [][]byte) {
	c.streamRefs = true
	c.ok()
}

// SHARD.FETCH id: the value of a stream reference, as a bulk reply
// streamed a pass at a time; the reference is gone afterwards.
func cmdShardFetch(c *client, args [][]byte) {
	id, err := strconv.ParseUint(string(args[1]), 10, 64)
	var vs *bitcask.ValueStream
	if err == nil {
		vs = c.srv.refs.take(id, time.Now())
	}
	if vs == nil {
		c.errReply("ERR no such stream reference (fetched already, or expired)")
		return
	}
	c.out = resp.AppendBulkHeader(c.out, int(vs.Len()))
	c.stream = vs
}
