package cmdtable

import (
	"strings"
	"testing"

	"github.com/shardkv/shardkv/resp"
)

func TestAppendCommandInfoGolden(t *testing.T) {
	mset := Lookup([]byte("mset"))
	want := "*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n" +
		"*3\r\n+@write\r\n+@string\r\n+@slow\r\n*0\r\n" +
		"*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RW\r\n+update\r\n" +
		"$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n" +
		"$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n" +
		"*0\r\n"
	if got := string(AppendCommandInfo(nil, resp.RESP2, mset, SideProxy)); got != want {
		t.Fatalf("COMMAND INFO mset (RESP2):\n got %q\nwant %q", got, want)
	}
	ping := Lookup([]byte("ping"))
	got3 := string(AppendCommandInfo(nil, resp.RESP3, ping, SideProxy))
	// Flags in Redis's order (server.c addReplyCommandFlags): stale before fast.
	wantPing := "*10\r\n$4\r\nping\r\n:-1\r\n~2\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@connection\r\n+@fast\r\n~0\r\n*0\r\n*0\r\n"
	if got3 != wantPing {
		t.Fatalf("COMMAND INFO ping (RESP3):\n got %q\nwant %q", got3, wantPing)
	}
}

func TestAppendCommandDocs(t *testing.T) {
	got := string(AppendCommandDocs(nil, resp.RESP3, Lookup([]byte("get"))))
	want := "$3\r\nget\r\n%2\r\n$7\r\nsummary\r\n$34\r\nReturns the string value of a key.\r\n$5\r\ngroup\r\n$6\r\nstring\r\n"
	if got != want {
		t.Fatalf("COMMAND DOCS get:\n got %q\nwant %q", got, want)
	}
}

// TestBlockingCommandInfo: the blocking pops' flags, keys and categories as
// Redis 7.0.15's COMMAND INFO has them.
func TestBlockingCommandInfo(t *testing.T) {
	for _, tc := range []struct {
		name, flags, cats string
		first, last, step int
	}{
		{"bzpopmin", "write noscript blocking fast", "@write @sortedset @fast @blocking", 1, -2, 1},
		{"bzpopmax", "write noscript blocking fast", "@write @sortedset @fast @blocking", 1, -2, 1},
		{"bzmpop", "write blocking movablekeys", "@write @sortedset @slow @blocking", 0, 0, 0},
		{"blpop", "write noscript blocking", "@write @list @slow @blocking", 1, -2, 1},
		{"brpop", "write noscript blocking", "@write @list @slow @blocking", 1, -2, 1},
		{"blmove", "write denyoom noscript blocking", "@write @list @slow @blocking", 1, 2, 1},
		{"brpoplpush", "write denyoom noscript blocking", "@write @list @slow @blocking", 1, 2, 1},
		{"blmpop", "write blocking movablekeys", "@write @list @slow @blocking", 0, 0, 0},
	} {
		c := Lookup([]byte(tc.name))
		if c == nil {
			t.Fatalf("%s: no row", tc.name)
		}
		v, _, err := resp.Parse(AppendCommandInfo(nil, resp.RESP2, c, SideNode))
		if err != nil {
			t.Fatal(err)
		}
		words := func(e resp.Value) string {
			var s []string
			for _, x := range e.Elems {
				s = append(s, string(x.Str))
			}
			return strings.Join(s, " ")
		}
		if got := words(v.Elems[2]); got != tc.flags {
			t.Errorf("%s flags: %q, want %q", tc.name, got, tc.flags)
		}
		if got := words(v.Elems[6]); got != tc.cats {
			t.Errorf("%s categories: %q, want %q", tc.name, got, tc.cats)
		}
		if f, l, s := v.Elems[3].Int, v.Elems[4].Int, v.Elems[5].Int; f != int64(tc.first) || l != int64(tc.last) || s != int64(tc.step) {
			t.Errorf("%s keys: %d %d %d", tc.name, f, l, s)
		}
	}
}
