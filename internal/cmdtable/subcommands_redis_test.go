package cmdtable

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// since72 are subcommands Redis added in 7.2, which a 7.0 server lacks.
var since72 = map[string]bool{"client|setinfo": true, "client|no-touch": true}

// TestSubcommandRowsAsRedis: every subcommand row, of every container, has
// the arity, flags and key positions redis-server's COMMAND INFO gives it.
func TestSubcommandRowsAsRedis(t *testing.T) {
	nc, err := net.DialTimeout("tcp", redistest.Start(t), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rr := resp.NewReplyReader(nc, 64<<10)
	for i := range Commands {
		c := &Commands[i]
		if c.Subcommands == nil {
			continue
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(resp.AppendCommandStrings(nil, "COMMAND", "INFO", c.Name)); err != nil {
			t.Fatal(err)
		}
		raw, err := rr.Next()
		if err != nil {
			t.Fatal(err)
		}
		v, _, err := resp.Parse(raw)
		if err != nil || len(v.Elems) != 1 || len(v.Elems[0].Elems) != 10 {
			t.Fatalf("COMMAND INFO %s: %q (%v)", c.Name, raw, err)
		}
		redis := map[string]resp.Value{}
		for _, e := range v.Elems[0].Elems[9].Elems {
			redis[e.Elems[0].Text()] = e
		}
		for _, sub := range c.Subcommands {
			e, ok := redis[sub.Name]
			if !ok {
				if !since72[sub.Name] {
					t.Errorf("%s: Redis has no such subcommand", sub.Name)
				}
				continue
			}
			var flags []string
			for _, f := range e.Elems[2].Elems {
				flags = append(flags, f.Text())
			}
			slices.Sort(flags)
			ours := sub.Flags.Names()
			slices.Sort(ours)
			if int64(sub.Arity) != e.Elems[1].Int || !slices.Equal(ours, flags) ||
				int64(sub.FirstKey) != e.Elems[3].Int || int64(sub.LastKey) != e.Elems[4].Int || int64(sub.Step) != e.Elems[5].Int {
				t.Errorf("%s: arity %d flags %v keys %d %d %d; Redis %d %v %d %d %d", sub.Name,
					sub.Arity, ours, sub.FirstKey, sub.LastKey, sub.Step,
					e.Elems[1].Int, flags, e.Elems[3].Int, e.Elems[4].Int, e.Elems[5].Int)
			}
		}
	}
}
