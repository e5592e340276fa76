package proxy

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// part is one node's share of a split or fan-out command.
type part struct {
	sh  *shard
	req *backend.Request
}

// merge is a command answered from several requests once all have replied.
type merge struct {
	kind    cmdtable.Merge // the command table's rule; INFO's merge has info set instead
	reply   cmdtable.Reply
	name    string // the command, for errors
	writes  bool   // the command modifies data (changes the partial-failure text)
	parts   []part
	keyPart []int32              // MergeByKey: the part holding each key, in client order
	next    uint64               // MergeScan: the cursor to reply when the node is done
	tagScan int                  // MergeScan under hash tags: the shard index plus one (TagCursor), 0 when off
	limit   int64                // MergeSInterCard: LIMIT, 0 for none
	info    *conncmd.InfoRequest // INFO: the proxy's INFO with the nodes' sections
	zop     *zsetOp              // MergeZSetOp: the parsed command (zsetops.go)
}

func (m *merge) reset() {
	clear(m.parts)
	m.parts = m.parts[:0]
	m.keyPart = m.keyPart[:0]
	m.info, m.zop = nil, nil
	m.tagScan = 0
}

// newMerge starts the merged reply of command ci (nil for INFO, whose merge
// is the proxy's own).
func (c *client) newMerge(ci *cmdtable.Command, name string) *merge {
	if c.nmerge == len(c.merges) {
		c.merges = append(c.merges, &merge{})
	}
	m := c.merges[c.nmerge]
	c.nmerge++
	m.kind, m.reply, m.name, m.writes = cmdtable.MergeNone, cmdtable.ReplyAsNode, name, false
	if ci != nil {
		m.kind, m.reply, m.writes = ci.Merge, ci.Reply, ci.Flags&cmdtable.FlagWrite != 0
	}
	c.slots = append(c.slots, slot{kind: slotMerge, m: m})
	return m
}

// addPart sends raw to sh as a part of m.
func (c *client) addPart(m *merge, sh *shard, raw []byte, n int) *preq {
	r := c.newReq()
	r.Cmd = raw
	r.N = n
	c.send(sh, &r.Request)
	m.parts = append(m.parts, part{sh: sh, req: &r.Request})
	return r
}

// split sends MGET, MSET, DEL, UNLINK, EXISTS and TOUCH to the nodes that
// own their keys, one command per node, all in the same batch.
func (c *client) split(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	if !ci.PairsOK(len(args)) {
		c.reject(cmdtable.ErrWrongArity(ci.Name))
		return
	}
	if isSetOp(ci.Merge) {
		c.setOp(ci, cmd)
		return
	}
	if c.shardsOf(args, ci.FirstKey, ci.LastKeyIndex(args), ci.Step) {
		c.forward(c.tbl.shards[c.shIdx[0]], cmd.Raw)
		return
	}
	if ci.Name == "mset" || ci.Name == "del" || ci.Name == "unlink" {
		// Atomic across shards: a cross-shard transaction (xshard.go).
		c.xWrite(ci.Name, args, ci.Step)
		return
	}
	m := c.newMerge(ci, ci.Name)
	// One part per shard, in order of first appearance.
	var shardOf, counts []int
	for _, idx := range c.shIdx {
		p := -1
		for j, s := range shardOf {
			if s == int(idx) {
				p = j
				break
			}
		}
		if p < 0 {
			p = len(shardOf)
			shardOf = append(shardOf, int(idx))
			counts = append(counts, 0)
		}
		counts[p]++
		m.keyPart = append(m.keyPart, int32(p))
	}
	reqs := make([]*preq, len(shardOf))
	for p := range reqs {
		r := c.newReq()
		r.buf = resp.AppendArray(r.buf[:0], 1+counts[p]*ci.Step)
		r.buf = resp.AppendBulk(r.buf, args[0])
		reqs[p] = r
	}
	for k, p := range m.keyPart {
		i := ci.FirstKey + k*ci.Step
		for j := 0; j < ci.Step; j++ {
			reqs[p].buf = resp.AppendBulk(reqs[p].buf, args[i+j])
		}
	}
	for p, r := range reqs {
		r.Cmd = r.buf
		sh := c.tbl.shards[shardOf[p]]
		c.send(sh, &r.Request)
		m.parts = append(m.parts, part{sh: sh, req: &r.Request})
	}
}

// fanout sends a command that concerns every key to every node.
func (c *client) fanout(ci *cmdtable.Command, cmd redcon.Command) {
	switch ci.Merge {
	case cmdtable.MergeScan:
		c.scan(ci, cmd)
	case cmdtable.MergeNone:
		c.reject(cmdtable.ErrUnknownCommand(cmd.Args[0], cmd.Args[1:]))
	default:
		if ci.Flags&cmdtable.FlagWrite != 0 {
			// FLUSHALL, FLUSHDB, INDEX.*: never wipe some shards and then
			// report an error. Every shard must answer first.
			if msg := c.allShardsAnswer(); msg != "" {
				c.reject(msg)
				return
			}
		}
		m := c.newMerge(ci, ci.Name)
		for _, sh := range c.tbl.nodes {
			c.addPart(m, sh, cmd.Raw, 1)
		}
	}
}

const pingCmd = "*1\r\n$4\r\nPING\r\n"

// allShardsAnswer sends PING to every shard, after the batch's earlier
// commands, and waits: it returns the TRYAGAIN error of the first shard
// that does not answer (down, or stalled past -timeout), "" when all do. A
// node can still fail between this check and the command; the reply then
// names the shards that failed (merge.failure).
func (c *client) allShardsAnswer() string {
	for _, sh := range c.tbl.nodes {
		if cl := sh.backendDB(c.sess.Proto, c.sess.DB()); !cl.Up() {
			return sh.unavailable(cl.Err())
		}
	}
	pings := make([]*preq, len(c.tbl.nodes))
	for i, sh := range c.tbl.nodes {
		r := c.newReq()
		r.Cmd = []byte(pingCmd)
		c.send(sh, &r.Request)
		pings[i] = r
	}
	c.barrier()
	for i, r := range pings {
		sh := c.tbl.nodes[i]
		if r.Err != nil {
			return sh.unavailable(r.Err)
		}
		if len(r.Reply) == 0 || r.Reply[0] == '-' {
			return sh.unavailable(errors.New(strings.TrimSpace(string(r.Reply))))
		}
	}
	return ""
}

// scan runs SCAN on the node that owns the cursor. The proxy's cursor is a
// 64-bit key hash, and so is a node's (docs/INTERNALS.md): the command goes
// to the node unchanged, and only a node's final 0 becomes the first hash of
// the next shard.
func (c *client) scan(ci *cmdtable.Command, cmd redcon.Command) {
	cursor, ok := rangemap.ParseCursor(cmd.Args[1])
	if !ok {
		c.errorReply("ERR invalid cursor")
		return
	}
	if c.tbl.m.HashTags {
		c.tagScan(ci, cmd, cursor)
		return
	}
	sh, next := c.tbl.scanRun(cursor)
	m := c.newMerge(ci, "scan")
	m.next = next
	c.addPart(m, sh, cmd.Raw, 1)
}

// tagScan is scan under hash tags. A shard's keys are placed by their
// tags but its key directory is ordered by whole-key hashes, so a node's
// keys are spread over every hash, and a global hash could not say which
// shard a cursor is in: the proxy's cursor is the shard index and the
// node's own cursor (rangemap.TagCursor). Each node walks its whole key
// directory, showing only the keys it owns, so every shard's walk is
// complete and the shards are walked one after the other.
func (c *client) tagScan(ci *cmdtable.Command, cmd redcon.Command, cursor uint64) {
	idx, node := rangemap.SplitTagCursor(cursor)
	if idx >= len(c.tbl.nodes) {
		// Past the last shard: nothing left, as Redis answers a cursor
		// beyond its table.
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, 2)
		c.out = resp.AppendBulkString(c.out, "0")
		c.out = resp.AppendArray(c.out, 0)
		c.reply(mark)
		return
	}
	sh := c.tbl.nodes[idx]
	m := c.newMerge(ci, "scan")
	m.tagScan = idx + 1
	m.next = 0
	if idx+1 < len(c.tbl.nodes) {
		m.next = rangemap.TagCursor(idx+1, 0)
	}
	r := c.newReq()
	args := cmd.Args
	r.buf = resp.AppendArray(r.buf[:0], len(args))
	r.buf = resp.AppendBulk(r.buf, args[0])
	var num [20]byte
	r.buf = resp.AppendBulk(r.buf, strconv.AppendUint(num[:0], node, 10))
	for _, a := range args[2:] {
		r.buf = resp.AppendBulk(r.buf, a)
	}
	r.Cmd = r.buf
	r.N = 1
	c.send(sh, &r.Request)
	m.parts = append(m.parts, part{sh: sh, req: &r.Request})
}

// failure returns the error for a merge whose parts did not all answer
// or were refused with WRONGSHARD (mismatch.go), naming the first shard
// that failed, or "" if all answered.
func (m *merge) failure(s *Server) string {
	failed, first := 0, -1
	for i, p := range m.parts {
		if p.req.Err != nil || isWrongShard(p.req.Reply) {
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	if failed == 0 {
		return ""
	}
	p := m.parts[first]
	var msg string
	if p.req.Err != nil {
		msg = p.sh.failed(p.req.Err, m.writes)
	} else {
		msg = s.wrongShardReply(p.sh, p.req.Reply)
	}
	if len(m.parts) > 1 {
		msg += " (" + strconv.Itoa(failed) + " of " + strconv.Itoa(len(m.parts)) + " shards failed"
		if m.writes {
			msg += "; '" + m.name + "' was applied on the others)"
		} else {
			msg += "; '" + m.name + "' needs every shard)"
		}
	}
	return msg
}

// anyFailed reports whether some part got no reply.
func (m *merge) anyFailed() bool {
	for _, p := range m.parts {
		if p.req.Err != nil {
			return true
		}
	}
	return false
}

// appendHeader starts an aggregate reply of n elements (pairs for a map) in
// the shape the command table gives the merged reply.
func (m *merge) appendHeader(b []byte, proto resp.Proto, n int) []byte {
	switch m.reply {
	case cmdtable.ReplyMap:
		return resp.AppendMap(b, proto, n)
	case cmdtable.ReplySet:
		return resp.AppendSet(b, proto, n)
	}
	return resp.AppendArray(b, n)
}

// errorReply returns the first error a node replied, raw, or nil.
func (m *merge) errorReply() []byte {
	for _, p := range m.parts {
		if r := p.req.Reply; len(r) > 0 && (r[0] == '-' || r[0] == '!') {
			return r
		}
	}
	return nil
}

// write appends the merged reply to b.
func (m *merge) write(c *client, b []byte) []byte {
	if m.info != nil {
		return c.writeInfo(m, b)
	}
	if m.kind == cmdtable.MergeScript {
		return m.writeScript(c, b)
	}
	if msg := m.failure(c.s); msg != "" {
		return resp.AppendError(b, msg)
	}
	if e := m.errorReply(); e != nil {
		return append(b, e...)
	}
	switch m.kind {
	case cmdtable.MergeByKey:
		return m.writeMget(c, b)
	case cmdtable.MergeOK:
		return resp.AppendOK(b)
	case cmdtable.MergeSum:
		var sum int64
		for _, p := range m.parts {
			v, _, err := resp.Parse(p.req.Reply)
			n, ok := v.Integer()
			if err != nil || !ok {
				return resp.AppendError(b, "ERR unexpected reply to '"+m.name+"' from shard "+p.sh.name)
			}
			sum += n
		}
		return resp.AppendInt(b, sum)
	case cmdtable.MergeConcat:
		elems := c.elems[:0]
		var err error
		for _, p := range m.parts {
			if elems, err = resp.Elements(elems, p.req.Reply); err != nil {
				return resp.AppendError(b, "ERR unexpected reply to '"+m.name+"' from shard "+p.sh.name)
			}
		}
		b = m.appendHeader(b, c.sess.Proto, len(elems))
		for _, e := range elems {
			b = append(b, e...)
		}
		clear(elems)
		c.elems = elems[:0]
		return b
	case cmdtable.MergeRandom:
		var found [][]byte
		for _, p := range m.parts {
			if v, _, err := resp.Parse(p.req.Reply); err == nil && !v.Null {
				found = append(found, p.req.Reply)
			}
		}
		if len(found) == 0 {
			return resp.AppendNull(b, c.sess.Proto)
		}
		return append(b, found[rand.IntN(len(found))]...)
	case cmdtable.MergeIndexList:
		return m.writeIndexList(c, b)
	case cmdtable.MergeScan:
		return m.writeScan(b)
	case cmdtable.MergeSInter, cmdtable.MergeSUnion, cmdtable.MergeSDiff, cmdtable.MergeSInterCard:
		return m.writeSetOp(c, b)
	case cmdtable.MergeZSetOp:
		return m.writeZSetOp(c, b)
	}
	return resp.AppendError(b, "ERR internal error: unknown merge")
}

func (m *merge) writeMget(c *client, b []byte) []byte {
	// Each part's elements, then a cursor per part walking them in order.
	elems := c.elems[:0]
	starts := make([]int, len(m.parts)+1)
	var err error
	for i, p := range m.parts {
		starts[i] = len(elems)
		if elems, err = resp.Elements(elems, p.req.Reply); err != nil {
			return resp.AppendError(b, "ERR unexpected reply to 'mget' from shard "+p.sh.name)
		}
	}
	starts[len(m.parts)] = len(elems)
	next := starts[:len(m.parts)]
	mark := len(b)
	b = resp.AppendArray(b, len(m.keyPart))
	for _, p := range m.keyPart {
		if next[p] >= starts[p+1] {
			return resp.AppendError(b[:mark], "ERR short reply to 'mget' from shard "+m.parts[p].sh.name)
		}
		b = append(b, elems[next[p]]...)
		next[p]++
	}
	clear(elems)
	c.elems = elems[:0]
	return b
}

func (m *merge) writeScan(b []byte) []byte {
	reply := m.parts[0].req.Reply
	elems, err := resp.Elements(nil, reply)
	if err != nil || len(elems) != 2 {
		return resp.AppendError(b, "ERR unexpected reply to 'scan' from shard "+m.parts[0].sh.name)
	}
	v, _, err := resp.Parse(elems[0])
	if err != nil {
		return resp.AppendError(b, "ERR unexpected reply to 'scan' from shard "+m.parts[0].sh.name)
	}
	next := m.next
	switch {
	case string(v.Str) != "0" && m.tagScan > 0:
		node, ok := rangemap.ParseCursor(v.Str)
		if !ok {
			return resp.AppendError(b, "ERR unexpected reply to 'scan' from shard "+m.parts[0].sh.name)
		}
		next = rangemap.TagCursor(m.tagScan-1, node)
	case string(v.Str) != "0" && m.tagScan == 0 && m.next != 0:
		// A node's walk goes on over its whole key directory, past the
		// entry the cursor was in (its other ranges, keys it does not
		// own): the next entry belongs to another node, whose keys
		// below the node's cursor would be skipped.
		node, ok := rangemap.ParseCursor(v.Str)
		if !ok {
			return resp.AppendError(b, "ERR unexpected reply to 'scan' from shard "+m.parts[0].sh.name)
		}
		if node < m.next {
			return append(b, reply...)
		}
	case string(v.Str) != "0" || m.next == 0:
		return append(b, reply...)
	}
	b = resp.AppendArray(b, 2)
	var num [20]byte
	b = resp.AppendBulk(b, strconv.AppendUint(num[:0], next, 10))
	return append(b, elems[1]...)
}

// writeIndexList sums each index's key count over the nodes. A node replies
// a flat array (RESP2) or a map (RESP3); the proxy replies likewise, sorted
// by name.
func (m *merge) writeIndexList(c *client, b []byte) []byte {
	counts := map[string]int64{}
	for _, p := range m.parts {
		v, _, err := resp.Parse(p.req.Reply)
		if err != nil || !v.IsAggregate() || len(v.Elems)%2 != 0 {
			return resp.AppendError(b, "ERR unexpected reply to 'index.list' from shard "+p.sh.name)
		}
		for i := 0; i < len(v.Elems); i += 2 {
			n, _ := v.Elems[i+1].Integer()
			counts[string(v.Elems[i].Str)] += n
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	b = m.appendHeader(b, c.sess.Proto, len(names))
	for _, n := range names {
		b = resp.AppendBulkString(b, n)
		b = resp.AppendInt(b, counts[n])
	}
	return b
}
