package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/redistest"
)

// watchStep is a command on one of two connections (by), or a pause.
type watchStep struct {
	by    int
	args  []string
	pause time.Duration
}

func on(by int, args ...string) watchStep { return watchStep{by: by, args: args} }

// watchSteps are the WATCH cases of issue 19 and their neighbours: what one
// client's EXEC says after another client's writes, expiry, and the ways a
// WATCH ends.
var watchSteps = []watchStep{
	// SET and DEL of a key that did not exist.
	on(0, "WATCH", "x"), on(1, "SET", "x", "1"), on(1, "DEL", "x"),
	on(0, "MULTI"), on(0, "SET", "y", "1"), on(0, "EXEC"), on(0, "GET", "y"),
	// A key that expires between WATCH and EXEC.
	on(0, "SET", "x", "1", "PX", "40"), on(0, "WATCH", "x"), {pause: 80 * time.Millisecond},
	on(0, "MULTI"), on(0, "SET", "y", "2"), on(0, "EXEC"),
	// A missing key set with an expiry that runs out.
	on(0, "WATCH", "x"), on(1, "SET", "x", "1", "PX", "40"), {pause: 80 * time.Millisecond},
	on(0, "MULTI"), on(0, "SET", "y", "3"), on(0, "EXEC"),
	// Expired before WATCH, removed after: nothing changed.
	on(0, "SET", "x", "1", "PX", "40"), {pause: 80 * time.Millisecond}, on(0, "WATCH", "x"), on(1, "GET", "x"),
	on(0, "MULTI"), on(0, "SET", "y", "4"), on(0, "EXEC"),
	// A SET with a past expiry, the watcher's own write, DEL of a missing key.
	on(0, "WATCH", "x"), on(1, "SET", "x", "1", "PXAT", "1"), on(0, "MULTI"), on(0, "EXEC"),
	on(0, "WATCH", "x"), on(0, "SET", "x", "1"), on(0, "MULTI"), on(0, "EXEC"),
	on(0, "WATCH", "z"), on(1, "DEL", "z"), on(0, "MULTI"), on(0, "EXEC"),
	// FLUSHALL modifies the watched keys it deletes only.
	on(0, "WATCH", "x"), on(1, "FLUSHALL"), on(0, "MULTI"), on(0, "EXEC"),
	on(0, "WATCH", "x"), on(1, "FLUSHALL"), on(0, "MULTI"), on(0, "EXEC"),
	// DISCARD, UNWATCH and a refused transaction end the WATCH.
	on(0, "WATCH", "x"), on(0, "MULTI"), on(0, "DISCARD"), on(1, "SET", "x", "2"), on(0, "MULTI"), on(0, "EXEC"),
	on(0, "WATCH", "x"), on(0, "UNWATCH"), on(1, "SET", "x", "3"), on(0, "MULTI"), on(0, "EXEC"),
	on(0, "WATCH", "x"), on(0, "MULTI"), on(0, "OBJECT", "FOO", "x"), on(0, "EXEC"), on(1, "SET", "x", "4"),
	on(0, "MULTI"), on(0, "EXEC"),
	// Two watchers of one key: one's transaction aborts the other's.
	on(0, "WATCH", "x"), on(1, "WATCH", "x"), on(0, "MULTI"), on(0, "INCR", "x"), on(0, "EXEC"),
	on(1, "MULTI"), on(1, "INCR", "x"), on(1, "EXEC"), on(0, "GET", "x"),
	// Commands between WATCH and EXEC, SELECT 0 queued.
	on(0, "WATCH", "x"), on(0, "GET", "x"), on(0, "MULTI"), on(0, "SELECT", "0"), on(0, "INCR", "x"), on(0, "EXEC"),
}

// TestWatchMatchesRedis replays watchSteps through the proxy and on
// redis-server 7.0.15, in RESP2 and RESP3: every reply is Redis's.
func TestWatchMatchesRedis(t *testing.T) {
	redisAddr := redistest.Start(t)
	c := StartCluster(t, Options{Shards: 1})
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			var conns [2][2]*rawClient // [target][by]
			for i, addr := range []string{c.ProxyAddr, redisAddr} {
				for by := range conns[i] {
					conns[i][by] = dialRaw(t, addr)
					if proto == 3 {
						if r := conns[i][by].do(t, "HELLO", "3"); r[0] != '%' {
							t.Fatalf("HELLO 3: %q", r)
						}
					}
				}
				conns[i][0].do(t, "FLUSHALL")
			}
			for n, st := range watchSteps {
				if st.pause > 0 {
					time.Sleep(st.pause)
					continue
				}
				got, want := conns[0][st.by].do(t, st.args...), conns[1][st.by].do(t, st.args...)
				if got != want {
					t.Errorf("step %d, connection %d, %q: proxy %q, redis-server %q", n, st.by, st.args, got, want)
				}
			}
		})
	}
}
