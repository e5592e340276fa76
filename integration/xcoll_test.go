package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// redisPyPipeline runs a redis-py pipeline() — MULTI ... EXEC, its
// default — of collection and string commands over the keys it is given,
// then reads them back, and prints what it got as JSON.
const redisPyPipeline = `
import json, sys
import redis
addr, keys = sys.argv[1], json.loads(sys.argv[2])
host, port = addr.rsplit(":", 1)
r = redis.Redis(host=host, port=int(port))
h, s, z, l, st, dst = keys
def plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (set, frozenset)):
        return sorted(plain(x) for x in v)
    if isinstance(v, dict):
        return sorted([plain(k), plain(x)] for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, Exception):
        return "error: " + str(v)
    return v
try:
    p = r.pipeline()
    p.hset(h, mapping={"f": "1", "g": "2"})
    p.sadd(s, "x", "y", "z")
    p.zadd(z, {"m": 1, "n": 2.5})
    p.lpush(l, "a", "b")
    p.set(st, "v")
    p.hincrby(h, "f", 10)
    p.smove(s, dst, "x")
    p.hgetall(h)
    p.smembers(s)
    p.zrange(z, 0, -1, withscores=True)
    p.lrange(l, 0, -1)
    p.get(st)
    p.smembers(dst)
    got = p.execute()
    q = r.pipeline()
    q.sadd(st, "wrong type")
    q.incr(st + "-n")
    after = q.execute(raise_on_error=False)
    watched = []
    other = redis.Redis(host=host, port=int(port))
    for interfere in (False, True):
        with r.pipeline() as w:
            w.watch(h, dst)
            if interfere:
                other.sadd(dst, "by-other")
            w.multi()
            w.hset(h, "w", "1")
            w.srem(dst, "x")
            try:
                watched.append(plain(w.execute()))
            except redis.WatchError:
                watched.append("WatchError")
    other.close()
    print(json.dumps({"exec": plain(got), "errors": plain(after), "watch": watched,
        "read": plain([r.hgetall(h), r.smembers(s), r.zrange(z, 0, -1, withscores=True), r.lrange(l, 0, -1), r.get(st), r.smembers(dst)])}))
finally:
    r.close()
`

// TestRedisPyPipelineAcrossShards: redis-py's default pipeline() (a
// transaction) over hashes, sets, sorted sets, lists and strings on three
// shards, with an SMOVE between two of them, and then with WATCH on keys of
// two shards, through the real binaries, gets what the same script gets
// from redis-server.
func TestRedisPyPipelineAcrossShards(t *testing.T) {
	needBinaries(t)
	py := redisPython()
	if py == "" {
		t.Skip("no python3 with redis-py (Debian: apt-get install python3-redis; .ci/run does)")
	}
	c := StartCluster(t, Options{})
	keys := []string{
		c.KeysOn(0, "pyx-h", 1)[0], c.KeysOn(1, "pyx-s", 1)[0], c.KeysOn(2, "pyx-z", 1)[0],
		c.KeysOn(0, "pyx-l", 1)[0], c.KeysOn(1, "pyx-st", 1)[0], c.KeysOn(2, "pyx-dst", 1)[0],
	}
	script := filepath.Join(t.TempDir(), "pipeline.py")
	if err := os.WriteFile(script, []byte(redisPyPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	var want, got json.RawMessage
	runClientScript(t, &want, nil, py, script, redistest.Start(t), jsonString(t, keys))
	runClientScript(t, &got, nil, py, script, c.ProxyAddr, jsonString(t, keys))
	if string(got) != string(want) {
		t.Fatalf("through shardkv:\n%s\nredis-server:\n%s", got, want)
	}
	if !strings.Contains(string(want), `"x"`) {
		t.Fatalf("the script read nothing: %s", want)
	}
}

// The crash points of docs/TRANSACTIONS.md that a collection's rounds and
// recovery itself bring, through the real binaries (the others are
// TestCrossShardCrashPoints'): a process armed with a fail point kills
// itself there; the test restarts it unarmed and checks the outcome the
// doc's table gives, that a push is applied exactly once, and that no key
// stays locked.
func TestCrossShardCollectionCrashPoints(t *testing.T) {
	// Long and mostly waiting: run beside the other parallel ones (main_test.go).
	t.Parallel()
	c := StartCluster(t, Options{Shards: 2})
	ctx := context.Background()
	type op struct {
		setup   func(r *redis.Client, a, b string)
		run     func(r *redis.Client, a, b string) error
		applied string // what check reads when the operation applied
		none    string // and when it did not
		check   func(r *redis.Client, a, b string) (string, error)
	}
	// SMOVE from node 0 to node 1: three rounds (dump on node 0, load and
	// run on node 1, the source put back on node 0).
	smove := op{
		setup: func(r *redis.Client, a, b string) { r.SAdd(ctx, a, "m", "k"); r.SAdd(ctx, b, "o") },
		run:   func(r *redis.Client, a, b string) error { return r.SMove(ctx, a, b, "m").Err() },
		check: func(r *redis.Client, a, b string) (string, error) {
			x, err := r.SMembers(ctx, a).Result()
			if err != nil {
				return "", err
			}
			y, err := r.SCard(ctx, b).Result()
			return fmt.Sprint(len(x), y), err
		},
		applied: "1 2", none: "2 1",
	}
	// A MULTI of two pushes, one a shard: one round.
	push := op{
		setup: func(*redis.Client, string, string) {},
		run: func(r *redis.Client, a, b string) error {
			_, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.RPush(ctx, a, "x")
				p.RPush(ctx, b, "y")
				return nil
			})
			return err
		},
		check: func(r *redis.Client, a, b string) (string, error) {
			x, err := r.LRange(ctx, a, 0, -1).Result()
			if err != nil {
				return "", err
			}
			y, err := r.LRange(ctx, b, 0, -1).Result()
			return fmt.Sprint(x, y), err
		},
		applied: "[x] [y]", none: "[] []",
	}
	for _, tc := range []struct {
		name string
		op   op
		// armed: the node fail points (index: node), besides the proxy's.
		proxy string
		nodes map[int]string
		// crashes: the nodes that reach their fail point.
		crashes []int
		// withPrimary: the primary (node 0) is SIGKILLed with the proxy.
		withPrimary bool
		applied     bool
	}{
		// 2 and 3 with rounds: the coordinator dies after the prepares,
		// or after the decision.
		{name: "smove-proxy-after-prepare", op: smove, proxy: "prepared"},
		{name: "smove-proxy-after-decision", op: smove, proxy: "decided", applied: true},
		// 10: a participant dies in its own recovery (applying what the
		// primary said after the lock timeout); restarted, it applies
		// again: once.
		{name: "participant-dies-in-recovery", op: push, proxy: "decided", nodes: map[int]string{1: "apply-written"}, crashes: []int{1}, applied: true},
		// 10: the primary dies in recovery, just after it recorded ABORT
		// for the participant's TX.STATUS (or its own timeout).
		{name: "primary-dies-in-recovery", op: push, proxy: "prepared", nodes: map[int]string{0: "decided"}, crashes: []int{0}},
		// 11: the coordinator and the primary together: the participant
		// keeps its locks past the lock timeout until the primary is back.
		{name: "proxy-and-primary-before-decision", op: push, proxy: "prepared", withPrimary: true},
		{name: "proxy-and-primary-after-decision", op: smove, proxy: "decided", withPrimary: true, applied: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.KeysOn(0, "xcrash-"+tc.name+"-a", 1)[0]
			b := c.KeysOn(1, "xcrash-"+tc.name+"-b", 1)[0]
			tc.op.setup(c.Client(), a, b)
			for i, fp := range tc.nodes {
				n := c.Nodes[i]
				n.Kill()
				n.Env = []string{"SHARDKV_FAILPOINTS=" + fp}
				n.Start(t)
				n.WaitReady(t)
			}
			c.Proxy.Kill()
			c.Proxy.Env = []string{"SHARDKV_PROXY_FAILPOINTS=" + tc.proxy}
			c.Proxy.Start(t)
			c.Proxy.WaitReady(t)
			c.WaitServing()
			done := make(chan error, 1)
			go func() { done <- tc.op.run(c.Client(), a, b) }()
			c.Proxy.WaitExit(t)
			if tc.withPrimary {
				c.Nodes[0].Kill()
			}
			t.Logf("the client got: %v", <-done)
			c.Proxy.Env = nil
			c.Proxy.Start(t)
			c.Proxy.WaitReady(t)
			for _, i := range tc.crashes {
				c.Nodes[i].WaitExit(t) // its fail point, in recovery
				c.Nodes[i].Env = nil
				c.Nodes[i].Start(t)
				c.Nodes[i].WaitReady(t)
			}
			if tc.withPrimary {
				// Past the lock timeout (2 s) the participant still holds
				// its prepare: only the primary can decide.
				time.Sleep(3 * time.Second)
				if !holdsPrepare(t, c.NodeClient(1, "")) {
					t.Fatalf("the participant dropped its prepare while the primary was down")
				}
				c.Nodes[0].Start(t)
				c.Nodes[0].WaitReady(t)
			}
			for i := range c.Nodes {
				c.Nodes[i].Env = nil
			}
			c.WaitServing()
			deadline := time.Now().Add(60 * time.Second)
			for i := range c.Nodes {
				n := c.NodeClient(i, "")
				for holdsPrepare(t, n) {
					if time.Now().After(deadline) {
						t.Fatalf("node %d still holds a prepare", i)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			got, err := tc.op.check(c.Client(), a, b)
			if err != nil {
				t.Fatalf("reading after recovery: %v", err)
			}
			want := tc.op.none
			if tc.applied {
				want = tc.op.applied
			}
			if got != want {
				t.Fatalf("after recovery: %s, want %s", got, want)
			}
			if err := c.Client().Del(ctx, a, b).Err(); err != nil {
				t.Fatalf("a key still locked: %v", err)
			}
		})
	}
}

// holdsPrepare reports whether a node's TX.LIST shows a prepared
// transaction (its keys locked).
func holdsPrepare(t *testing.T, n *redis.Client) bool {
	t.Helper()
	list, err := n.Do(context.Background(), "TX.LIST").StringSlice()
	if err != nil {
		return true // not answering yet: not known to be free
	}
	for _, e := range list {
		if strings.HasPrefix(e, "prepared ") {
			return true
		}
	}
	return false
}
