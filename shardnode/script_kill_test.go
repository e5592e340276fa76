package shardnode

import (
	"strings"
	"testing"
)

// busyServer is a server under test: the node (one event loop, two, or a
// goroutine per connection) or redis-server, which the node must match.
type busyServer struct {
	name string
	addr func(t *testing.T) string
}

func busyServers() []busyServer {
	node := func(loops int) func(t *testing.T) string {
		return func(t *testing.T) string {
			n := startNode(t, "", func(c *Config) { c.EventLoops = loops })
			n.assignAll()
			return n.addr
		}
	}
	return []busyServer{
		{"redis", startRedis},
		{"node/1-loop", node(1)},
		{"node/2-loops", node(2)},
		{"node/goroutines", node(-1)},
	}
}

// waitBusy sends PING on c until a script is past the threshold and the
// reply is BUSY; it returns that reply. Bounded by attempts, not by time:
// each PING waits for its reply.
func waitBusy(t *testing.T, c *rawConn) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		if got := c.do("PING"); got != "+PONG\r\n" {
			return got
		}
	}
	t.Fatal("no BUSY reply while the script loops")
	return ""
}

// TestScriptKill: a script in an endless loop is past busy-reply-threshold;
// other clients get BUSY (on the script's event loop too), SCRIPT KILL
// stops it, the script's client gets Redis's error and everyone is served
// again. A script that wrote cannot be killed (UNKILLABLE) and runs to its
// end. Every reply is compared with redis-server's.
func TestScriptKill(t *testing.T) {
	var results []string
	for _, srv := range busyServers() {
		t.Run(srv.name, func(t *testing.T) {
			addr := srv.addr(t)
			a, b := dialRaw(t, addr), dialRaw(t, addr)
			var log []string
			note := func(what, reply string) { log = append(log, what+" "+reply) }
			note("config", b.do("CONFIG", "SET", "busy-reply-threshold", "50"))
			note("kill idle", b.do("SCRIPT", "KILL"))
			a.send("EVAL", "local i = 0 while true do i = i + 1 end", "0")
			note("busy", waitBusy(t, b))
			note("get", b.do("GET", "k"))
			note("set", b.do("SET", "k", "v"))
			note("multi", b.do("MULTI"))
			note("queued", b.do("GET", "k"))
			note("exec", b.do("EXEC"))
			note("kill", b.do("SCRIPT", "KILL"))
			note("killed", a.next())
			note("served", b.do("SET", "k", "v"))
			note("a served", a.do("GET", "k"))
			note("kill none", b.do("SCRIPT", "KILL"))
			// A script that wrote: UNKILLABLE, and it ends by itself
			// (after the TIME it was given, two seconds on).
			a.send("EVAL", "redis.call('incr', KEYS[1]) local t = tonumber(redis.call('time')[1]) + 2 "+
				"while tonumber(redis.call('time')[1]) < t do end return redis.call('get', KEYS[1])", "1", "n")
			note("busy", waitBusy(t, b))
			note("unkillable", b.do("SCRIPT", "KILL"))
			note("ended", a.next())
			note("after", b.do("GET", "n"))
			results = append(results, strings.Join(log, "\n"))
			if !strings.Contains(results[len(results)-1], "killed -ERR Script killed by user with SCRIPT KILL...") {
				t.Errorf("the script was not killed:\n%s", results[len(results)-1])
			}
		})
	}
	if len(results) < 2 {
		t.Skip("redis-server not installed")
	}
	for i := 1; i < len(results); i++ {
		if results[i] != results[0] {
			t.Errorf("%s differs from redis-server:\n%s\n--- redis-server:\n%s", busyServers()[i].name, results[i], results[0])
		}
	}
}
