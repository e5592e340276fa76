package proxy

import (
	"strconv"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/zsetalg"
	"github.com/shardkv/shardkv/resp"
)

// ZUNION, ZINTER, ZDIFF and ZINTERCARD whose keys live on several shards:
// the proxy reads each set (ZUNION 1 key WITHSCORES from its owner, all
// sent at once: a sorted set's members and scores, a plain set's scored 1) and computes the result itself with the node's algebra
// (internal/zsetalg). The sets are read one by one, so the result is not
// one snapshot: a write between two reads may be seen in one set and not
// in another. The STORE forms stay atomic within one shard (CROSSSHARD
// otherwise), as the cmdtable rows say.

// zsetOp is a gathered command's parsed arguments.
type zsetOp struct {
	card bool // ZINTERCARD
	opts zsetalg.Options
	msg  string // an option's error, replied after the sets' own (WRONGTYPE first, as Redis)
}

// shardsOfKeys is shardsOf for a row whose keys a numkeys argument counts.
func (c *client) shardsOfKeys(args [][]byte, ci *cmdtable.Command) bool {
	c.shIdx = c.shIdx[:0]
	same := true
	for _, i := range ci.KeyIndexes(args) {
		idx := c.tbl.shardIdx(args[i])
		if len(c.shIdx) > 0 && c.tbl.shards[idx] != c.tbl.shards[c.shIdx[0]] {
			same = false
		}
		c.shIdx = append(c.shIdx, idx)
	}
	return same
}

// zsetGather sends a ZUNION of each key alone to its owner; the merge computes
// the reply (writeZSetOp).
func (c *client) zsetGather(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	n, msg := zsetalg.NumKeys(args, ci.KeyNum)
	if msg != "" {
		c.errorReply(msg)
		return
	}
	op := &zsetOp{card: ci.Name == "zintercard"}
	kind := zsetalg.Plain
	alg := zsetalg.Union
	switch ci.Name {
	case "zinter":
		alg = zsetalg.Inter
	case "zintercard":
		alg, kind = zsetalg.Inter, zsetalg.Card
	case "zdiff":
		alg = zsetalg.Diff
	}
	op.opts, op.msg = zsetalg.Parse(args[ci.KeyNum+1+n:], alg, kind, n)
	m := c.newMerge(ci, ci.Name)
	m.zop = op
	for _, key := range args[ci.KeyNum+1 : ci.KeyNum+1+n] {
		// ZUNION of the one key: its members and scores, and a plain
		// set's members scored 1, as Redis reads a set input.
		raw := resp.AppendCommand(nil, []byte("ZUNION"), []byte("1"), key, []byte("WITHSCORES"))
		c.addPart(m, c.tbl.locate(key), raw, 1)
	}
}

// writeZSetOp computes a gathered command's reply from the sets its parts
// read.
func (m *merge) writeZSetOp(c *client, b []byte) []byte {
	op := m.zop
	if op.msg != "" {
		return resp.AppendError(b, op.msg)
	}
	sets := make([][]zsetalg.Member, len(m.parts))
	for i, p := range m.parts {
		set, ok := parseWithScores(p.req.Reply)
		if !ok {
			return resp.AppendError(b, "ERR unexpected reply to '"+m.name+"' from shard "+p.sh.name)
		}
		sets[i] = set
	}
	if op.card {
		return resp.AppendInt(b, zsetalg.InterCard(sets, op.opts.Limit))
	}
	res := zsetalg.Compute(sets, &op.opts)
	proto := c.sess.Proto
	switch {
	case !op.opts.WithScores:
		b = resp.AppendArray(b, len(res))
		for _, e := range res {
			b = resp.AppendBulkString(b, e.Member)
		}
	case proto >= resp.RESP3:
		b = resp.AppendArray(b, len(res))
		for _, e := range res {
			b = resp.AppendArray(b, 2)
			b = resp.AppendBulkString(b, e.Member)
			b = resp.AppendDouble(b, proto, e.Score)
		}
	default:
		b = resp.AppendArray(b, 2*len(res))
		for _, e := range res {
			b = resp.AppendBulkString(b, e.Member)
			b = resp.AppendDouble(b, proto, e.Score)
		}
	}
	return b
}

// parseWithScores reads a ZUNION ... WITHSCORES reply: flat pairs in
// RESP2, nested ones in RESP3.
func parseWithScores(reply []byte) ([]zsetalg.Member, bool) {
	v, _, err := resp.Parse(reply)
	if err != nil || v.Type != '*' {
		return nil, false
	}
	var out []zsetalg.Member
	add := func(m, s resp.Value) bool {
		f, err := strconv.ParseFloat(string(s.Str), 64)
		if err != nil {
			return false
		}
		out = append(out, zsetalg.Member{Member: string(m.Str), Score: f})
		return true
	}
	for i := 0; i < len(v.Elems); i++ {
		e := v.Elems[i]
		if e.Type == '*' {
			if len(e.Elems) != 2 || !add(e.Elems[0], e.Elems[1]) {
				return nil, false
			}
			continue
		}
		if i+1 >= len(v.Elems) || !add(e, v.Elems[i+1]) {
			return nil, false
		}
		i++
	}
	return out, true
}
