package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// serverError is an error reply, as go-redis returns one.
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

var _ redis.Error = serverError("")

func TestRejects(t *testing.T) {
	noIndex := serverError("ERR no such index 'idx'")
	oom := serverError("OOM command not allowed when used memory > 'maxmemory'.")
	type rej struct {
		line int
		err  error
	}
	for _, tc := range []struct {
		name string
		raw  bool
		rows []rej
		want string
	}{
		{
			name: "one",
			rows: []rej{{3, errNoSeparator}},
			want: "line 3: no '|' separating key and value\n",
		},
		{
			name: "a run of 100,000 is three lines",
			rows: func() []rej {
				var r []rej
				for i := 1; i <= 100000; i++ {
					r = append(r, rej{i, noIndex})
				}
				return r
			}(),
			want: "line 1: ERR no such index 'idx'\n" +
				"lines 2-100000: 99999 more rows with the same error\n" +
				"hint: the nodes run with -strict-indexes and index 'idx' was never created: load with --create (shardkv load idx --create) or send INDEX.CREATE idx first\n",
		},
		{
			name: "a repeat of one is printed in full",
			rows: []rej{{1, noIndex}, {2, noIndex}, {3, errEmptyKey}},
			want: "line 1: ERR no such index 'idx'\n" +
				"line 2: ERR no such index 'idx'\n" +
				"line 3: empty key\n" +
				"hint: the nodes run with -strict-indexes and index 'idx' was never created: load with --create (shardkv load idx --create) or send INDEX.CREATE idx first\n",
		},
		{
			name: "stored rows between do not end a run; the count says how many failed",
			rows: []rej{{2, oom}, {5, oom}, {9, oom}, {10, oom}, {11, errEmptyKey}, {12, oom}},
			want: "line 2: " + oom.Error() + "\n" +
				"lines 3-10: 3 more rows with the same error\n" +
				"line 11: empty key\n" +
				"line 12: " + oom.Error() + "\n" +
				"hint: a shard is at its size limit (\"size\" in the range map): delete keys, or raise the size in the map and reload it (SHARD.RELOAD)\n",
		},
		{
			name: "bad escapes are one kind whatever their column",
			rows: []rej{{1, &badEscapeError{col: 3, next: 'q'}}, {2, &badEscapeError{col: 9, next: 'T'}}, {3, &badEscapeError{col: 1, end: true}}},
			want: "line 1: bad escape at column 3: \\q (escapes are \\\\ \\n \\r \\|; write \\\\ for a backslash)\n" +
				"lines 2-3: 2 more rows with a bad escape\n" +
				"hint: backslashes that are not escapes (Windows paths, pyshard's files) load byte for byte with --raw\n",
		},
		{
			name: "no --raw hint under --raw",
			raw:  true,
			rows: []rej{{1, errNoSeparator}},
			want: "line 1: no '|' separating key and value\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cleared := 0
			r := &rejects{w: &out, index: "idx", raw: tc.raw, before: func() { cleared++ }}
			for _, row := range tc.rows {
				r.add(row.line, row.err)
			}
			r.end()
			if out.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tc.want)
			}
			if lines := strings.Count(tc.want, "\n"); cleared != lines {
				t.Errorf("the progress line was cleared %d times for %d lines", cleared, lines)
			}
		})
	}
}

// TestProgress draws the progress line into a buffer: the index, the rows
// so far and the rate, and a clear at the end.
func TestProgress(t *testing.T) {
	var out bytes.Buffer
	p := newProgressTo(&out, "users")
	for i := 0; i < 5; i++ {
		p.add(1000)
	}
	p.finish()
	got := out.String()
	for _, want := range []string{"loading users: 1000 rows", " rows/s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress output %q lacks %q", got, want)
		}
	}
	if !strings.HasSuffix(got, "\r") {
		t.Errorf("progress output %q does not end by clearing its line", got)
	}

	// Not a terminal: nothing at all.
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{&out, f} {
		p := newProgress(w, "x")
		if p != nil {
			t.Errorf("newProgress(%T) draws on something that is not a terminal", w)
		}
		p.add(1) // a nil progress is quiet
		p.clear()
		p.finish()
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("a nil progress wrote %d bytes", fi.Size())
	}
}

// TestConnectError: a proxy that cannot be reached is one message that
// names the address tried.
func TestConnectError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, tc := range []struct {
		addr string
		want string
	}{
		{addr, "cannot connect to the proxy at " + addr + ": connect: connection refused (is it running?"},
	} {
		g := &globals{addr: tc.addr}
		rdb, err := g.connect(context.Background())
		if err == nil {
			rdb.Close()
			t.Fatalf("connect to %s succeeded", tc.addr)
		}
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 1 || !strings.HasPrefix(ee.msg, tc.want) {
			t.Errorf("connect to %s: %v; want %q...", tc.addr, err, tc.want)
		}
		if strings.Count(err.Error(), tc.addr) != 1 {
			t.Errorf("connect to %s: %q names the address %d times", tc.addr, err, strings.Count(err.Error(), tc.addr))
		}
	}
	g := &globals{addr: "127.0.0.1:6380"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{serverError("NOAUTH Authentication required."), "the proxy at 127.0.0.1:6380 requires a password: give it with -password"},
		{serverError("WRONGPASS invalid username-password pair or user is disabled."), "the proxy at 127.0.0.1:6380 refused the -password given"},
		{fmt.Errorf("dial: %w", serverError("ERR something")), "the proxy at 127.0.0.1:6380: dial: ERR something"},
	} {
		if got := g.connectError(tc.err).Error(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("connectError(%v) = %q; want %q...", tc.err, got, tc.want)
		}
	}
}
