package shardnode

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/rangemap"
)

// execAfter runs WATCH keys on w, then change on other in one pipeline (so
// that consecutive writes form one run and commit together), then an empty
// transaction on w, and returns EXEC's reply.
func execAfter(w, other *rawConn, keys []string, change ...[]string) string {
	w.t.Helper()
	if got := w.do(append([]string{"WATCH"}, keys...)...); got != ok {
		w.t.Fatalf("WATCH: %q", got)
	}
	for _, args := range change {
		other.send(args...)
	}
	for range change {
		other.next()
	}
	w.do("MULTI")
	return w.do("EXEC")
}

// TestWatchWritePaths: every way a node writes marks the watchers of the
// keys it modifies, in each serve mode: a pipelined run of writes (the
// event loops' grouped commit, or the leader's with a goroutine per
// connection), a command on its own, MULTI/EXEC, FLUSHALL, INDEX.DROP and
// the expiry sweep.
func TestWatchWritePaths(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) {
				c.EventLoops = m.loops
				c.Storage = func(o *bitcask.Options) {
					o.MergeCheckInterval = time.Hour
					o.ExpirySweepInterval = 5 * time.Millisecond
				}
			}, m.wrap)
			n.assignAll()
			w, other := n.raw(), n.raw()
			for _, tc := range []struct {
				name   string
				setup  [][]string
				keys   []string
				change [][]string
				want   string
			}{
				{"pipelined SET and DEL of a missing key", nil, []string{"x"},
					[][]string{{"SET", "x", "1"}, {"DEL", "x"}}, nilArr},
				{"MULTI on another connection", nil, []string{"x"},
					[][]string{{"MULTI"}, {"SET", "x", "1"}, {"DEL", "x"}, {"EXEC"}}, nilArr},
				{"FLUSHALL of a present key", [][]string{{"SET", "x", "1"}}, []string{"x"},
					[][]string{{"FLUSHALL"}}, nilArr},
				{"FLUSHALL, watched key missing", nil, []string{"x"},
					[][]string{{"SET", "y", "1"}, {"FLUSHALL"}}, "*0\r\n"},
				{"INDEX.DROP of a watched key", [][]string{{"SET", "idx:a", "1"}}, []string{"idx:a"},
					[][]string{{"INDEX.DROP", "idx"}}, nilArr},
				{"INDEX.DROP, watched key missing", [][]string{{"SET", "idx:b", "1"}}, []string{"idx:a"},
					[][]string{{"INDEX.DROP", "idx"}}, "*0\r\n"},
				{"RENAME onto a watched key", [][]string{{"SET", "src", "1"}}, []string{"dst"},
					[][]string{{"RENAME", "src", "dst"}}, nilArr},
				{"unrelated writes", [][]string{{"SET", "x", "1"}}, []string{"x"},
					[][]string{{"SET", "y", "1"}, {"DEL", "z"}, {"INCR", "n"}}, "*0\r\n"},
			} {
				other.do("FLUSHALL")
				for _, args := range tc.setup {
					other.do(args...)
				}
				if got := execAfter(w, other, tc.keys, tc.change...); got != tc.want {
					t.Errorf("%s: EXEC %q, want %q", tc.name, got, tc.want)
				}
			}
			// The sweep removing a key that existed at WATCH: a change.
			other.do("FLUSHALL")
			other.do("SET", "e", "1", "PX", "300")
			if got := execAfter(w, other, []string{"e"}); got != "*0\r\n" {
				t.Fatalf("EXEC right after WATCH: %q", got)
			}
			w.do("WATCH", "e")
			swept := func() bool { return n.srv.db.Len() == 0 }
			waitFor(t, swept, "the sweep")
			w.do("MULTI")
			if got := w.do("EXEC"); got != nilArr {
				t.Errorf("EXEC after the sweep removed a watched key: %q", got)
			}
			// Removing a key that had expired when WATCH looked: no change.
			other.do("SET", "e", "1", "PX", "1")
			time.Sleep(10 * time.Millisecond)
			w.do("WATCH", "e")
			waitFor(t, swept, "the sweep")
			w.do("MULTI")
			if got := w.do("EXEC"); got != "*0\r\n" {
				t.Errorf("EXEC after the sweep removed a key expired before WATCH: %q", got)
			}
		})
	}
}

// TestWatchRegistryForgets: nothing stays registered once the watchers are
// done, whichever way they are done, so writes go back to paying nothing.
func TestWatchRegistryForgets(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	reg := &n.srv.watches
	a, b := n.raw(), n.raw()
	a.do("WATCH", "k1", "k2")
	b.do("WATCH", "k2", "k3")
	if got := reg.watchedKeys(); got != 3 {
		t.Fatalf("watched keys %d, want 3", got)
	}
	a.do("UNWATCH")
	if got := reg.watchedKeys(); got != 2 {
		t.Fatalf("after UNWATCH: %d, want 2", got)
	}
	a.do("SET", "k2", "v") // b is dirty: it stops watching k3 too
	if got := reg.watchedKeys(); got != 0 {
		t.Fatalf("after a write dirtied the last watcher: %d, want 0", got)
	}
	b.do("MULTI")
	if got := b.do("EXEC"); got != nilArr {
		t.Fatalf("EXEC: %q", got)
	}
	for _, end := range [][]string{{"EXEC"}, {"DISCARD"}, {"RESET"}, {"QUIT"}} {
		c := n.raw()
		c.do("WATCH", "x", "y")
		if end[0] == "EXEC" || end[0] == "DISCARD" {
			c.do("MULTI")
		}
		c.do(end...)
		if end[0] == "QUIT" {
			c.readAll(time.Second)
		}
		waitFor(t, func() bool { return reg.watchedKeys() == 0 }, "keys forgotten after "+end[0])
	}
	c := n.raw()
	c.do("WATCH", "x")
	c.close()
	waitFor(t, func() bool { return reg.watchedKeys() == 0 }, "keys forgotten after the connection closed")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchOptimisticCounter: clients increment a counter with WATCH, GET,
// MULTI, SET, EXEC, retrying aborted transactions, while others INCR it
// pipelined: every EXEC that ran and every INCR is in the final value, so
// no EXEC ran on a stale read.
func TestWatchOptimisticCounter(t *testing.T) {
	const watchers, incrs, rounds = 4, 2, 150
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) { c.EventLoops = m.loops }, m.wrap)
			n.assignAll()
			var wg sync.WaitGroup
			for i := 0; i < watchers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := dialRaw(t, n.addr)
					for done := 0; done < rounds; {
						c.do("WATCH", "ctr")
						v, _ := strconv.Atoi(trimBulk(c.do("GET", "ctr")))
						c.send("MULTI")
						c.send("SET", "ctr", strconv.Itoa(v+1))
						c.send("EXEC")
						c.next()
						c.next()
						if c.next() != nilArr {
							done++
						}
					}
				}()
			}
			for i := 0; i < incrs; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := dialRaw(t, n.addr)
					for j := 0; j < rounds; j++ {
						c.send("INCR", "ctr")
						c.send("INCR", "ctr")
						c.next()
						c.next()
					}
				}()
			}
			wg.Wait()
			want := watchers*rounds + incrs*rounds*2
			if got := trimBulk(n.raw().do("GET", "ctr")); got != strconv.Itoa(want) {
				t.Fatalf("counter %s, want %d", got, want)
			}
			if got := n.srv.watches.watchedKeys(); got != 0 {
				t.Fatalf("%d keys still watched", got)
			}
		})
	}
}

// trimBulk returns a bulk reply's payload ("" for a null).
func trimBulk(r string) string {
	for i := 0; i+1 < len(r); i++ {
		if r[i] == '\r' && r[i+1] == '\n' {
			body := r[i+2:]
			if len(body) >= 2 {
				return body[:len(body)-2]
			}
			return ""
		}
	}
	return ""
}

// TestShardWatch: a proxy's clients watch keys on one shared connection,
// each under its id: each EXEC checks its own client's keys only, ids are
// independent of the connection's own WATCH, and the keys of a connection
// that closes are forgotten.
func TestShardWatch(t *testing.T) {
	n := startNode(t, "", nil)
	p, other := n.raw(), n.raw()
	if got := p.do("SHARD.ASSIGN", "s", "0", "0.5", "0"); got != ok {
		t.Fatalf("SHARD.ASSIGN: %q", got)
	}
	inRange := func(prefix string) string {
		for i := 0; ; i++ {
			k := prefix + strconv.Itoa(i)
			if checkOwned(n, k) {
				return k
			}
		}
	}
	a, b := inRange("a"), inRange("b")
	if got := p.do("SHARD.WATCH", "1", a); got != ok {
		t.Fatalf("SHARD.WATCH 1: %q", got)
	}
	if got := p.do("SHARD.WATCH", "2", b); got != ok {
		t.Fatalf("SHARD.WATCH 2: %q", got)
	}
	other.do("SET", a, "x")
	tx := func(end ...string) string {
		p.do("MULTI")
		p.do("PING")
		return p.do(end...)
	}
	if got := tx("SHARD.EXEC", "2"); got != "*1\r\n+PONG\r\n" {
		t.Fatalf("client 2, its key untouched: %q", got)
	}
	if got := tx("SHARD.EXEC", "1"); got != nilArr {
		t.Fatalf("client 1, its key set: %q", got)
	}
	if got := tx("SHARD.EXEC", "1"); got != "*1\r\n+PONG\r\n" {
		t.Fatalf("client 1 after its EXEC forgot the keys: %q", got)
	}
	// The connection's own WATCH and a client's are apart.
	p.do("WATCH", b)
	p.do("SHARD.WATCH", "3", a)
	if got := p.do("SHARD.UNWATCH", "3"); got != ok {
		t.Fatalf("SHARD.UNWATCH: %q", got)
	}
	other.do("SET", a, "y")
	if got := tx("SHARD.EXEC", "3"); got != "*1\r\n+PONG\r\n" {
		t.Fatalf("client 3 after SHARD.UNWATCH: %q", got)
	}
	other.do("SET", b, "y")
	if got := tx("EXEC"); got != nilArr {
		t.Fatalf("the connection's own WATCH: %q", got)
	}
	// A key outside the range is refused as WATCH refuses it.
	outside := ""
	for i := 0; outside == ""; i++ {
		if k := "o" + strconv.Itoa(i); !checkOwned(n, k) {
			outside = k
		}
	}
	if got := p.do("SHARD.WATCH", "4", outside); got[:11] != "-WRONGSHARD" {
		t.Fatalf("SHARD.WATCH of a key outside the range: %q", got)
	}
	if got := p.do("SHARD.WATCH", "4"); got != er("ERR wrong number of arguments for 'shard.watch' command") {
		t.Fatalf("SHARD.WATCH without keys: %q", got)
	}
	p.do("SHARD.WATCH", "5", a, b)
	if got := n.srv.watches.watchedKeys(); got != 2 {
		t.Fatalf("watched keys %d, want 2", got)
	}
	p.close()
	waitFor(t, func() bool { return n.srv.watches.watchedKeys() == 0 }, "the closed connection's clients' keys forgotten")
}

// checkOwned reports whether the node's assignment holds key.
func checkOwned(n *testNode, key string) bool {
	a := n.srv.assign.Load()
	p := rangemap.PositionOfHash(bitcask.Hash([]byte(key)))
	return a.Start <= p && p < a.End
}
