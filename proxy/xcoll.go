package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/cmdtable"
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
	dst := role.dst
	if name == "copy" {
		var ok bool
		if args, ok = c.copyOwnDB(args); !ok {
			c.errorReply(crossShard(name, c.tbl.locate(args[1]).name, c.tbl.locate(args[2]).name) + " (COPY ... DB into another database)")
			return
		}
	}
	home := c.tbl.locate(args[dst])
	// The keys of other shards, once each, by shard in order of first
	// appearance.
	type foreign struct {
		key   []byte
		sh    *shard
		dump  []byte // its state, from round 1
		write bool
	}
	var keys []*foreign
	seen := make(map[string]bool)
	var round1 xParts
	for _, i := range ci.KeyIndexes(args) {
		k := args[i]
		sh := c.tbl.locate(k)
		if sh == home || seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		f := &foreign{key: k, sh: sh, write: role.writesOthers}
		keys = append(keys, f)
		op := "TX.DUMP"
		if f.write {
			op = "TX.DUMPX"
		}
		round1.add(sh, [][]byte{[]byte(op), k})
	}
	var cmdReply []byte
	next := func(round int, all xParts) (xParts, string) {
		switch round {
		case 1:
			// Round 1's replies: the states, in the order they were
			// asked for on each shard.
			for _, p := range all {
				j := 0
				for _, f := range keys {
					if f.sh != p.sh {
						continue
					}
					v, _, err := resp.Parse(p.replies[j])
					if err != nil || v.IsError() {
						return nil, "ERR cross-shard " + name + ": reading " + strconv.Quote(string(f.key)) + " failed: " + strings.TrimSpace(string(p.replies[j]))
					}
					f.dump = append([]byte(nil), v.Str...)
					j++
				}
			}
			home := &xPart{sh: home}
			for _, f := range keys {
				home.cmds = append(home.cmds, [][]byte{[]byte("TX.LOAD"), f.key, f.dump})
			}
			home.cmds = append(home.cmds, args)
			for _, f := range keys {
				if f.write {
					home.cmds = append(home.cmds, [][]byte{[]byte("TX.DUMP"), f.key})
				}
			}
			return xParts{home}, ""
		case 2:
			p := all[len(all)-1]
			cmdReply = p.replies[len(keys)]
			if len(cmdReply) > 0 && (cmdReply[0] == '-' || cmdReply[0] == '!') {
				v, _, err := resp.Parse(cmdReply)
				if err != nil {
					return nil, "ERR malformed prepare reply from the shard node"
				}
				return nil, string(v.Str)
			}
			var back xParts
			at := len(keys) + 1
			for _, f := range keys {
				if !f.write {
					continue
				}
				v, _, err := resp.Parse(p.replies[at])
				at++
				if err != nil || v.IsError() {
					return nil, "ERR malformed prepare reply from the shard node"
				}
				if !bytes.Equal(v.Str, f.dump) {
					back.add(f.sh, [][]byte{[]byte("TX.PUT"), f.key, append([]byte(nil), v.Str...)})
				}
			}
			return back, ""
		}
		return nil, ""
	}
	res := c.runXTx(round1, next, nil)
	if res.err != "" {
		c.errorReply(res.err)
		return
	}
	mark := len(c.out)
	c.out = append(c.out, cmdReply...)
	c.reply(mark)
}

// copyOwnDB returns COPY's arguments without a DB option naming the
// connection's own database (go-redis always sends one), or false when
// DB names another.
func (c *client) copyOwnDB(args [][]byte) ([][]byte, bool) {
	out := args[:3:3]
	for i := 3; i < len(args); i++ {
		if strings.EqualFold(string(args[i]), "db") && i+1 < len(args) {
			n, err := strconv.Atoi(string(args[i+1]))
			if err != nil {
				// The node replies Redis's error for it.
				out = append(out, args[i], args[i+1])
				i++
				continue
			}
			if n != c.sess.DB() {
				return args, false
			}
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out, true
}
