package shardnode

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/rangemap"
)

// SHARD.ASSIGN name start end size [RANGE name start end size]... [FORCE]
// [STRICT 0|1] [HASHTAGS 0|1] [EPOCH n]
//
// The node's ranges: the first, and one RANGE per further shard of the
// map the node serves (adjacent or not; rangemap.Map.NodeAssignArgs builds
// the command). The same assignment again is +OK (the proxy pushes it on
// every new connection). A different one needs FORCE. STRICT, when given,
// turns strict indexes on or off and is kept with the assignment. HASHTAGS
// is the map's placement mode (0, whole-key positions, when not given),
// kept with the assignment; changing it is a different assignment, so it
// needs FORCE too: keys with a tag would change owners.
//
// EPOCH n is the etcd map's epoch of the assignment (docs/RESHARDING.md):
// an epoch older than the node's is refused with "ERR stale epoch"; a newer
// one replaces different ranges or sizes without FORCE (the placement
// mode still needs FORCE); the node keeps the highest epoch it was given.
// Without EPOCH (a static map) the rules above are today's.
func cmdShardAssign(c *client, args [][]byte) {
	a := &Assignment{}
	// rangeAt reads "name start end size" at args[i:i+4].
	rangeAt := func(i int) bool {
		r := Range{Name: string(args[i])}
		var err1, err2 error
		r.Start, err1 = strconv.ParseFloat(string(args[i+1]), 64)
		r.End, err2 = strconv.ParseFloat(string(args[i+2]), 64)
		if err1 != nil || err2 != nil || math.IsInf(r.Start, 0) || math.IsInf(r.End, 0) {
			c.errReply("ERR start and end must be numbers in [0,1]")
			return false
		}
		size, ok := parseInt(args[i+3])
		if !ok {
			c.errReply(errNotInteger)
			return false
		}
		r.Size = size
		a.Ranges = append(a.Ranges, r)
		return true
	}
	if !rangeAt(1) {
		return
	}
	force := false
	for i := 5; i < len(args); i++ {
		switch {
		case eqFold(args[i], "force"):
			force = true
		case eqFold(args[i], "range") && i+4 < len(args):
			if !rangeAt(i + 1) {
				return
			}
			i += 4
		case eqFold(args[i], "strict") && i+1 < len(args):
			v := string(args[i+1])
			if v != "0" && v != "1" {
				c.errReply(errSyntax)
				return
			}
			strict := v == "1"
			a.Strict = &strict
			i++
		case eqFold(args[i], "hashtags") && i+1 < len(args):
			v := string(args[i+1])
			if v != "0" && v != "1" {
				c.errReply(errSyntax)
				return
			}
			a.HashTags = v == "1"
			i++
		case eqFold(args[i], "epoch") && i+1 < len(args):
			e, err := strconv.ParseUint(string(args[i+1]), 10, 64)
			if err != nil {
				c.errReply(errNotInteger)
				return
			}
			a.Epoch = e
			i++
		default:
			c.errReply(errSyntax)
			return
		}
	}
	a.normalize()
	if err := a.validate(); err != nil {
		c.errReply("ERR invalid assignment: " + err.Error())
		return
	}
	s := c.srv
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	cur := s.assign.Load()
	if cur != nil && a.Epoch > 0 && a.Epoch < cur.Epoch {
		c.errReply(fmt.Sprintf("%s%d: shard node is at epoch %d (%s)", staleEpochPrefix, a.Epoch, cur.Epoch, cur.describe()))
		return
	}
	if cur != nil && a.Epoch == 0 {
		// A proxy with a static map: the node keeps the epoch it has.
		a.Epoch = cur.Epoch
	}
	// A newer map decides the ranges and sizes. A node not yet at an
	// epoch keeps the mismatch protection: its first etcd assignment must
	// match what it holds, or be forced.
	newer := cur != nil && cur.Epoch > 0 && a.Epoch > cur.Epoch && cur.HashTags == a.HashTags
	if cur != nil && !cur.sameRange(a) && !force && !newer {
		c.errReply("ERR shard node already assigned " + cur.describe() + "; add FORCE to replace it")
		return
	}
	if a.Strict == nil && cur != nil {
		a.Strict = cur.Strict
	}
	if cur != nil && cur.sameRange(a) && cur.Epoch == a.Epoch && equalStrict(cur.Strict, a.Strict) {
		c.becomeProxy()
		c.ok()
		return
	}
	if err := s.saveAssignment(a); err != nil {
		s.log.Error("persisting the assignment failed", "error", err)
		c.errReply("ERR could not persist the assignment: " + err.Error())
		return
	}
	s.assign.Store(a)
	s.dropFencesOutside(a)
	if cur == nil || cur.sizeLimit() != a.sizeLimit() {
		s.sizeLimit.Store(a.sizeLimit())
	}
	if a.Strict != nil {
		s.strict.Store(*a.Strict)
	}
	switch {
	case cur != nil && cur.sameRange(a) && cur.Epoch != a.Epoch:
		// A new map epoch that keeps this node's ranges: routine.
		s.log.Info("assignment epoch advanced", "name", a.Name, "from", cur.Epoch, "to", a.Epoch)
	case cur == nil:
		s.log.Info("assignment accepted", "ranges", a.describe(), "strict_indexes", s.strict.Load())
	case newer && !force:
		s.log.Info("assignment changed by a newer epoch", "old", cur.describe(), "new", a.describe(),
			"strict_indexes", s.strict.Load())
	default:
		s.log.Warn("assignment replaced", "old", cur.describe(), "new", a.describe(),
			"strict_indexes", s.strict.Load(), "forced", force)
	}
	c.becomeProxy()
	c.ok()
}

// staleEpochPrefix starts the refusal of an assignment at an epoch older
// than the node's; the proxy reads it (proxy/shards.go).
const staleEpochPrefix = "ERR stale epoch "

func equalStrict(a, b *bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// INDEX.CREATE name: the index exists from now on, also under strict
// indexes; creating it again is +OK.
func cmdIndexCreate(c *client, args [][]byte) {
	name := args[1]
	if bytes.IndexByte(name, ':') >= 0 {
		c.errReply("ERR index names cannot contain ':'")
		return
	}
	if len(name) == 0 {
		c.ok() // the unnamed index always exists
		return
	}
	s := c.srv
	s.stateMu.Lock()
	err := s.setIndex(string(name), true)
	s.stateMu.Unlock()
	if err != nil {
		s.log.Error("persisting the index list failed", "error", err)
		c.errReply("ERR could not persist the index list: " + err.Error())
		return
	}
	c.ok()
}

// INDEX.DROP name deletes every key of the index on this node, in the
// command's transaction, forgets the index and replies the count.
func cmdIndexDrop(c *client, args [][]byte) {
	name := args[1]
	if bytes.IndexByte(name, ':') >= 0 {
		c.intReply(0)
		return
	}
	var keys [][]byte
	c.db().Range(func(key []byte, _ bitcask.Meta) bool {
		if bytes.Equal(rangemap.Index(key), name) {
			keys = append(keys, append([]byte(nil), key...))
		}
		return true
	})
	var n int64
	for _, k := range keys {
		ok, err := c.st.del(k)
		if err != nil {
			c.storeErr(err)
			return
		}
		if ok {
			n++
		}
	}
	if len(name) > 0 {
		s := c.srv
		s.stateMu.Lock()
		err := s.setIndex(string(name), false)
		s.stateMu.Unlock()
		if err != nil {
			s.log.Error("persisting the index list failed", "error", err)
		}
	}
	c.intReply(n)
}

// INDEX.LIST: each index (created, or holding keys) with its key count, as
// a flat array in RESP2 and a map in RESP3.
func cmdIndexList(c *client, args [][]byte) {
	stats := c.db().NamespaceStats()
	counts := make(map[string]int64, len(stats)+1)
	counts[""] = 0
	for n, st := range stats {
		counts[n] = st.Keys
	}
	for n := range *c.srv.indexes.Load() {
		if _, ok := counts[n]; !ok {
			counts[n] = 0
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	slices.Sort(names)
	c.mapHeader(len(names))
	for _, n := range names {
		c.bulkStr(n)
		c.intReply(counts[n])
	}
}
