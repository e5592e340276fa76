package cmdtable

import (
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
	wantPing := "*10\r\n$4\r\nping\r\n:-1\r\n~2\r\n+fast\r\n+stale\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@connection\r\n+@fast\r\n~0\r\n*0\r\n*0\r\n"
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
