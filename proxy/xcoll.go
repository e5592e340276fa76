package proxy

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/resp"
)

// Commands that move values between shards (docs/TRANSACTIONS.md,
// "Commands that move values between shards"): SMOVE, LMOVE, RPOPLPUSH,
// RENAME, RENAMENX, COPY, the *STORE commands, SORT ... STORE, BITOP and
// LCS whose keys span shards run as one cross-shard transaction in rounds.
// The shards of the keys other than the destination lock and dump them
// (TX.DUMP, or TX.DUMPX for a key the command writes); the destination's
// shard loads those states (TX.LOAD) and runs the client's command itself,
// so its reply and the destination's state are a node's own; the sources it
// changed go back to their shards (TX.PUT).

// xCollDest is, for each command this path runs, the position of the key
// whose shard computes it (the destination, mostly) and whether the
// command writes its other keys (SMOVE's source) or only reads them.
var xCollDest = map[string]struct {
	dst          int
	writesOthers bool
}{
	"smove": {2, true}, "lmove": {2, true}, "rpoplpush": {2, true},
	"rename": {2, true}, "renamenx": {2, true}, "copy": {2, false},
	"sinterstore": {1, false}, "sunionstore": {1, false}, "sdiffstore": {1, false},
	"zunionstore": {1, false}, "zinterstore": {1, false}, "zdiffstore": {1, false},
	"zrangestore": {1, false}, "bitop": {2, false}, "lcs": {1, false},
	// SORT ... STORE runs on the sorted key's shard, where the keys of its
	// BY and GET patterns must be (as on one shard); STORE's destination
	// goes back to its own.
	"sort": {1, true},
	// The pops of several keys: the first key's shard pops from the first
	// that holds elements, which may be another shard's.
	"lmpop": {2, true}, "zmpop": {2, true},
}

// xCollCommand reports whether the command runs across shards on this path.
func xCollCommand(name string) bool {
	_, ok := xCollDest[name]
	return ok
}

// xColl runs a command of xCollDest whose keys span shards.
func (c *client) xColl(ci *cmdtable.Command, args [][]byte) {
	name := ci.Name
	role := xCollDest[name]
	if name == "copy" {
		var db int
		switch args, db = c.copyOwnDB(args); {
		case db == errDBNotInt:
			c.errorReply("ERR value is not an integer or out of range")
			return
		case db < 0 || db >= conncmd.Databases:
			c.errorReply("ERR DB index is out of range")
			return
		case db != c.sess.DB():
			c.xCopyDB(args, db)
			return
		}
	}
	home := c.tbl.locate(args[role.dst])
	var keys xKeys
	for _, i := range ci.KeyIndexes(args) {
		keys.add(c, home, args[i], role.writesOthers)
	}
	replies, res := c.xCompute(home, [][][]byte{args}, keys, nil, true)
	if res.err != "" {
		c.errorReply(res.err)
		return
	}
	mark := len(c.out)
	c.out = append(c.out, replies[0]...)
	c.reply(mark)
}

// xKey is a key of another shard than the computing one.
type xKey struct {
	key   []byte
	sh    *shard
	dump  []byte // its state, read in round 1
	write bool   // the commands may write it
}

type xKeys []*xKey

// add records key unless it lives on home; write says whether the
// commands may write it.
func (ks *xKeys) add(c *client, home *shard, key []byte, write bool) {
	sh := c.tbl.locate(key)
	if sh == home {
		return
	}
	for _, k := range *ks {
		if bytes.Equal(k.key, key) {
			k.write = k.write || write
			return
		}
	}
	*ks = append(*ks, &xKey{key: key, sh: sh, write: write})
}

// xCompute runs cmds on home as one cross-shard transaction in rounds:
// the keys of other shards are locked and dumped on their shards, loaded
// on home, and put back where the commands changed them. watch are the
// shards whose prepares check the client's WATCH. With
// abortOnError an error reply of a command aborts the transaction and is
// res.err. It returns the commands' replies.
func (c *client) xCompute(home *shard, cmds [][][]byte, keys xKeys, watch []*shard, abortOnError bool) (replies [][]byte, res xResult) {
	var round1 xParts
	for _, sh := range watch {
		if sh != home {
			round1 = append(round1, &xPart{sh: sh, watch: itoa(c.sess.ID)})
		}
	}
	for _, k := range keys {
		op := "TX.DUMP"
		if k.write {
			op = "TX.DUMPX"
		}
		round1.add(k.sh, [][]byte{[]byte(op), k.key})
	}
	next := func(round int, all xParts) (xParts, string) {
		switch round {
		case 1:
			// The states, in the order each shard was asked for them.
			for _, p := range all {
				j := 0
				for _, k := range keys {
					if k.sh != p.sh {
						continue
					}
					v, _, err := resp.Parse(p.replies[j])
					if err != nil || v.IsError() {
						return nil, "ERR cross-shard transaction: reading " + strconv.Quote(string(k.key)) + " failed: " + strings.TrimSpace(string(p.replies[j]))
					}
					k.dump = append([]byte(nil), v.Str...)
					j++
				}
			}
			hp := &xPart{sh: home}
			if slices.Contains(watch, home) {
				hp.watch = itoa(c.sess.ID)
			}
			for _, k := range keys {
				hp.cmds = append(hp.cmds, [][]byte{[]byte("TX.LOAD"), k.key, k.dump})
			}
			hp.cmds = append(hp.cmds, cmds...)
			for _, k := range keys {
				if k.write {
					hp.cmds = append(hp.cmds, [][]byte{[]byte("TX.DUMP"), k.key})
				}
			}
			return xParts{hp}, ""
		case 2:
			p := all[len(all)-1]
			replies = p.replies[len(keys) : len(keys)+len(cmds)]
			for _, r := range replies {
				if abortOnError && len(r) > 0 && (r[0] == '-' || r[0] == '!') {
					v, _, err := resp.Parse(r)
					if err != nil {
						return nil, "ERR malformed prepare reply from the shard node"
					}
					return nil, string(v.Str)
				}
			}
			var back xParts
			at := len(keys) + len(cmds)
			for _, k := range keys {
				if !k.write {
					continue
				}
				v, _, err := resp.Parse(p.replies[at])
				at++
				if err != nil || v.IsError() {
					return nil, "ERR malformed prepare reply from the shard node"
				}
				if !bytes.Equal(v.Str, k.dump) {
					back.add(k.sh, [][]byte{[]byte("TX.PUT"), k.key, append([]byte(nil), v.Str...)})
				}
			}
			return back, ""
		}
		return nil, ""
	}
	res = c.runXTx(round1, next, nil)
	return replies, res
}

// xExecOnOne runs a cross-shard MULTI in which a command's own keys span
// shards (SMOVE a b, MSET a b): every key of another shard than the one
// holding most of the transaction's keys is loaded there, and the whole
// transaction runs there, in order, with the node's own code; the keys it
// changed go back to their shards. The keys of a write command may be
// written; the others are only read.
func (c *client) xExecOnOne(queued []redcon.Command) {
	count := make(map[*shard]int)
	var home *shard
	for _, q := range queued {
		ci := cmdtable.Lookup(q.Args[0])
		for _, i := range ci.KeyIndexes(q.Args) {
			sh := c.tbl.locate(q.Args[i])
			count[sh]++
			if home == nil || count[sh] > count[home] {
				home = sh
			}
		}
	}
	var keys xKeys
	cmds := make([][][]byte, len(queued))
	for qi, q := range queued {
		ci := cmdtable.Lookup(q.Args[0])
		for _, i := range ci.KeyIndexes(q.Args) {
			keys.add(c, home, q.Args[i], ci.Flags&cmdtable.FlagWrite != 0)
		}
		cmds[qi] = q.Args
	}
	watch := c.watchedShards()
	c.releasePins() // the prepares take the nodes' records of the keys
	replies, res := c.xCompute(home, cmds, keys, watch, false)
	c.execReply(res, len(queued), func(i int) []byte { return replies[i] })
}

// errDBNotInt is copyOwnDB's database for a DB option that is no number.
const errDBNotInt = math.MinInt

// copyOwnDB returns COPY's arguments without a DB option naming the
// connection's own database (go-redis always sends one) and that
// database, or when DB names another, the arguments and that database
// (errDBNotInt for no number).
func (c *client) copyOwnDB(args [][]byte) ([][]byte, int) {
	out := args[:3:3]
	for i := 3; i < len(args); i++ {
		if strings.EqualFold(string(args[i]), "db") && i+1 < len(args) {
			n, err := strconv.ParseInt(string(args[i+1]), 10, 32)
			if err != nil {
				return args, errDBNotInt
			}
			if int(n) != c.sess.DB() {
				return args, int(n)
			}
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out, c.sess.DB()
}

// copySource is the name COPY ... DB's source is loaded under on the
// destination's shard: a key of another database may have the
// destination's name. A real key of that name, if any, is shadowed in the
// prepare's dry run only, never written.
const copySource = "\x00shardkv:copy-source"

// sendDB sends r to sh on a connection of database db: the node's
// commands run in their connection's database.
func (c *client) sendDB(sh *shard, db string, r *backend.Request) {
	n, _ := strconv.Atoi(db)
	sh.backendDB(c.sess.Proto, n).Send(int(c.sess.ID), r)
}

// xCopyDB runs COPY src dst [REPLACE] DB n whose keys live on different
// shards: the source's state is read on its shard, loaded under
// copySource on the destination's in database n, and copied there with
// the node's COPY.
func (c *client) xCopyDB(args [][]byte, db int) {
	src := c.tbl.locate(args[1])
	cmd := [][]byte{[]byte("COPY"), []byte(copySource), args[2]}
	for i := 3; i < len(args); i++ {
		if strings.EqualFold(string(args[i]), "db") && i+1 < len(args) {
			i++
			continue
		}
		cmd = append(cmd, args[i]) // REPLACE, or what the node refuses as Redis does
	}
	var reply []byte
	next := func(round int, all xParts) (xParts, string) {
		switch round {
		case 1:
			v, _, err := resp.Parse(all[0].replies[0])
			if err != nil || v.IsError() {
				return nil, "ERR cross-shard copy: reading the source failed: " + strings.TrimSpace(string(all[0].replies[0]))
			}
			load := [][]byte{[]byte("TX.LOAD"), []byte(copySource), append([]byte(nil), v.Str...)}
			return xParts{{sh: c.tbl.locate(args[2]), db: strconv.Itoa(db), cmds: [][][]byte{load, cmd}}}, ""
		case 2:
			reply = all[1].replies[1]
			if len(reply) > 0 && (reply[0] == '-' || reply[0] == '!') {
				v, _, _ := resp.Parse(reply)
				return nil, string(v.Str)
			}
		}
		return nil, ""
	}
	res := c.runXTx(xParts{{sh: src, cmds: [][][]byte{{[]byte("TX.DUMP"), args[1]}}}}, next, nil)
	if res.err != "" {
		c.errorReply(res.err)
		return
	}
	mark := len(c.out)
	c.out = append(c.out, reply...)
	c.reply(mark)
}
