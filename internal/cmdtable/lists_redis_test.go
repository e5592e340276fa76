package cmdtable

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// TestListRowsAsRedis: the list rows' (and SORT's) COMMAND INFO name,
// arity, flags, legacy key range and ACL categories are redis-server's.
func TestListRowsAsRedis(t *testing.T) {
	nc, err := net.DialTimeout("tcp", redistest.Start(t), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rr := resp.NewReplyReader(nc, 64<<10)
	texts := func(v resp.Value) []string {
		var out []string
		for _, e := range v.Elems {
			out = append(out, e.Text())
		}
		slices.Sort(out)
		return out
	}
	n := 0
	for i := range Commands {
		c := &Commands[i]
		if c.Group != "list" && c.Name != "sort" && c.Name != "sort_ro" {
			continue
		}
		n++
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
		theirs := v.Elems[0].Elems
		ov, _, err := resp.Parse(AppendCommandInfo(nil, resp.RESP2, c, SideNode))
		if err != nil {
			t.Fatal(err)
		}
		ours := ov.Elems
		if ours[0].Text() != theirs[0].Text() || ours[1].Int != theirs[1].Int ||
			!slices.Equal(texts(ours[2]), texts(theirs[2])) ||
			ours[3].Int != theirs[3].Int || ours[4].Int != theirs[4].Int || ours[5].Int != theirs[5].Int ||
			!slices.Equal(texts(ours[6]), texts(theirs[6])) {
			t.Errorf("%s:\n ours  %q %d %v %d %d %d %v\n redis %q %d %v %d %d %d %v", c.Name,
				ours[0].Text(), ours[1].Int, texts(ours[2]), ours[3].Int, ours[4].Int, ours[5].Int, texts(ours[6]),
				theirs[0].Text(), theirs[1].Int, texts(theirs[2]), theirs[3].Int, theirs[4].Int, theirs[5].Int, texts(theirs[6]))
		}
	}
	if n < 17 {
		t.Fatalf("%d list rows", n)
	}
}
