package shardnode

import (
	"slices"
	"testing"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// since72 are subcommands Redis added in 7.2, which a 7.0 server lacks.
var since72 = map[string]bool{"client|setinfo": true, "client|no-touch": true}

// infoEntry is what TestSubcommandsMatchRedis compares of a COMMAND INFO
// entry: arity, flags and key positions.
type infoEntry struct {
	arity, first, last, step int64
	flags                    []string
}

// subcommandInfos reads the subcommands element of COMMAND INFO <name>.
func subcommandInfos(t *testing.T, c *rawConn, name string) map[string]infoEntry {
	t.Helper()
	raw := c.do("COMMAND", "INFO", name)
	v, _, err := resp.Parse([]byte(raw))
	if err != nil || len(v.Elems) != 1 || len(v.Elems[0].Elems) != 10 {
		t.Fatalf("COMMAND INFO %s: %q (%v)", name, raw, err)
	}
	out := map[string]infoEntry{}
	for _, sub := range v.Elems[0].Elems[9].Elems {
		e := infoEntry{arity: sub.Elems[1].Int, first: sub.Elems[3].Int, last: sub.Elems[4].Int, step: sub.Elems[5].Int}
		for _, f := range sub.Elems[2].Elems {
			e.flags = append(e.flags, f.Text())
		}
		slices.Sort(e.flags)
		out[sub.Elems[0].Text()] = e
	}
	return out
}

// TestSubcommandsMatchRedis: every subcommand the node's COMMAND INFO
// lists is one Redis has, with Redis's arity, flags and key positions, and
// the node lists exactly the table's subcommands it serves.
func TestSubcommandsMatchRedis(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ours, theirs := n.raw(), dialRaw(t, startRedis(t))
	for i := range cmdtable.Commands {
		ci := &cmdtable.Commands[i]
		if ci.Subcommands == nil || !ci.ServedOn(cmdtable.SideNode) {
			continue // CLUSTER is the proxy's: cmdtable's test compares its rows
		}
		got := subcommandInfos(t, ours, ci.Name)
		want := subcommandInfos(t, theirs, ci.Name)
		served := 0
		for _, sub := range ci.Subcommands {
			if sub.ServedOn(cmdtable.SideNode) {
				served++
				if _, ok := got[sub.Name]; !ok {
					t.Errorf("%s: not in the node's COMMAND INFO", sub.Name)
				}
			}
		}
		if len(got) != served {
			t.Errorf("%s: the node lists %d subcommands, serves %d", ci.Name, len(got), served)
		}
		for name, g := range got {
			w, ok := want[name]
			switch {
			case !ok && since72[name]:
			case !ok:
				t.Errorf("%s: Redis has no such subcommand", name)
			case g.arity != w.arity || g.first != w.first || g.last != w.last || g.step != w.step:
				t.Errorf("%s: arity and keys %d %d %d %d, Redis %d %d %d %d", name,
					g.arity, g.first, g.last, g.step, w.arity, w.first, w.last, w.step)
			case !slices.Equal(g.flags, w.flags):
				t.Errorf("%s: flags %v, Redis %v", name, g.flags, w.flags)
			}
		}
	}
}
