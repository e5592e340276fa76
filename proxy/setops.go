package proxy

import (
	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// Set operations over keys on several shards (SINTER, SUNION, SDIFF,
// SINTERCARD). Keys on one shard go to it unchanged, and the node
// computes the result from one state. Otherwise the proxy sends SMEMBERS
// of every key to its shard, in the same batch, and computes the result
// itself: each set is read as its node has it, but the sets are not read
// at one instant (not one snapshot across shards). An error of any key
// (WRONGTYPE) is the reply, the first in key order, as Redis checks every
// key's type. The atomic forms (the *STORE commands, SMOVE) are
// RouteSameNode and get CROSSSHARD instead.

func isSetOp(m cmdtable.Merge) bool {
	return m == cmdtable.MergeSInter || m == cmdtable.MergeSUnion || m == cmdtable.MergeSDiff || m == cmdtable.MergeSInterCard
}

// setOp routes a set operation: to the keys' shard, or to every key's
// shard as SMEMBERS, merged by writeSetOp.
func (c *client) setOp(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	var limit int64
	if ci.Merge == cmdtable.MergeSInterCard {
		var msg string
		if _, limit, msg = cmdtable.ParseSInterCard(args); msg != "" {
			c.errorReply(msg)
			return
		}
	}
	if c.shardsOf(args, ci.FirstKey, ci.LastKeyIndex(args), ci.Step) {
		c.forward(c.tbl.shards[c.shIdx[0]], cmd.Raw)
		return
	}
	m := c.newMerge(ci, ci.Name)
	m.limit = limit
	for k, idx := range c.shIdx {
		r := c.newReq()
		r.buf = resp.AppendArray(r.buf[:0], 2)
		r.buf = resp.AppendBulkString(r.buf, "SMEMBERS")
		r.buf = resp.AppendBulk(r.buf, args[ci.FirstKey+k])
		r.Cmd = r.buf
		sh := c.tbl.shards[idx]
		c.send(sh, &r.Request)
		m.parts = append(m.parts, part{sh: sh, req: &r.Request})
	}
}

// writeSetOp computes the operation over the parts' SMEMBERS replies, one
// per key in key order. Members are compared in their reply encoding,
// which is one bulk string per member whatever the protocol.
func (m *merge) writeSetOp(c *client, b []byte) []byte {
	sets := make([][][]byte, len(m.parts))
	for i, p := range m.parts {
		es, err := resp.Elements(nil, p.req.Reply)
		if err != nil {
			return resp.AppendError(b, "ERR unexpected reply to 'smembers' from shard "+p.sh.name)
		}
		sets[i] = es
	}
	var out [][]byte
	switch m.kind {
	case cmdtable.MergeSUnion:
		seen := make(map[string]bool)
		for _, s := range sets {
			for _, e := range s {
				if !seen[string(e)] {
					seen[string(e)] = true
					out = append(out, e)
				}
			}
		}
	case cmdtable.MergeSDiff:
		drop := make(map[string]bool)
		for _, s := range sets[1:] {
			for _, e := range s {
				drop[string(e)] = true
			}
		}
		for _, e := range sets[0] {
			if !drop[string(e)] {
				out = append(out, e)
			}
		}
	default: // SINTER, SINTERCARD: the smallest set probed in the others
		small := 0
		for i, s := range sets {
			if len(s) < len(sets[small]) {
				small = i
			}
		}
		in := make([]map[string]bool, len(sets))
		for i, s := range sets {
			if i == small {
				continue
			}
			in[i] = make(map[string]bool, len(s))
			for _, e := range s {
				in[i][string(e)] = true
			}
		}
	next:
		for _, e := range sets[small] {
			for i := range sets {
				if i != small && !in[i][string(e)] {
					continue next
				}
			}
			out = append(out, e)
			if m.limit > 0 && int64(len(out)) >= m.limit {
				break
			}
		}
	}
	if m.kind == cmdtable.MergeSInterCard {
		return resp.AppendInt(b, int64(len(out)))
	}
	b = m.appendHeader(b, c.sess.Proto, len(out))
	for _, e := range out {
		b = append(b, e...)
	}
	return b
}
