package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// Lua scripts through the real binaries, with the client libraries that
// use them: redsync's and redis-py's locks (acquired with SET NX PX,
// released and extended with scripts), a token-bucket rate limiter, and
// go-redis's Script, which falls back to EVAL when EVALSHA says NOSCRIPT.

// TestRedsyncLock: go-redis + redsync acquire, extend and release a lock
// through the proxy; a second mutex cannot take it while it is held and
// can once it is released.
func TestRedsyncLock(t *testing.T) {
	needBinaries(t)
	c := StartCluster(t, Options{})
	ctx := context.Background()
	rs := redsync.New(goredis.NewPool(c.Client()))
	for _, name := range []string{"lock:a", "lock:b", "lock:c"} {
		m := rs.NewMutex(name, redsync.WithExpiry(30*time.Second), redsync.WithTries(1))
		if err := m.LockContext(ctx); err != nil {
			t.Fatalf("%s: lock: %v", name, err)
		}
		other := rs.NewMutex(name, redsync.WithTries(1))
		if err := other.LockContext(ctx); err == nil {
			t.Fatalf("%s: a second mutex took a held lock", name)
		}
		if ok, err := m.ExtendContext(ctx); err != nil || !ok {
			t.Fatalf("%s: extend: %v %v", name, ok, err)
		}
		if ok, err := m.UnlockContext(ctx); err != nil || !ok {
			t.Fatalf("%s: unlock: %v %v", name, ok, err)
		}
		if n, err := c.Client().Exists(ctx, name).Result(); err != nil || n != 0 {
			t.Fatalf("%s: still there after unlock: %v %v", name, n, err)
		}
		if err := other.LockContext(ctx); err != nil {
			t.Fatalf("%s: lock after release: %v", name, err)
		}
		if ok, err := m.UnlockContext(ctx); ok || err == nil {
			t.Fatalf("%s: the first mutex released the second's lock: %v %v", name, ok, err)
		}
		if ok, err := other.UnlockContext(ctx); err != nil || !ok {
			t.Fatalf("%s: unlock of the second: %v %v", name, ok, err)
		}
	}
}

const redisPyLockScript = `
import json, sys
import redis
host, port = sys.argv[1].rsplit(':', 1)
r = redis.Redis(host=host, port=int(port))
out = {}
for name in sys.argv[2:]:
    res = {}
    lock = r.lock(name, timeout=30)
    res['acquired'] = lock.acquire(blocking=False)
    other = r.lock(name, timeout=30)
    res['second'] = other.acquire(blocking=False)
    res['owned'] = lock.owned()
    res['extended'] = lock.extend(10)
    lock.release()
    res['after_release'] = other.acquire(blocking=False)
    other.release()
    res['locked'] = r.lock(name).locked()
    r.script_flush()
    again = r.lock(name, timeout=5)
    res['after_flush'] = again.acquire(blocking=False)
    again.release()
    res['released_after_flush'] = not r.lock(name).locked()
    out[name] = res
print(json.dumps(out))
`

// TestRedisPyLock: redis-py's Lock (its release, extend and reacquire are
// scripts it registers and runs by EVALSHA, loading them on NOSCRIPT).
func TestRedisPyLock(t *testing.T) {
	needBinaries(t)
	py := redisPython()
	if py == "" {
		t.Skip("no python3 with redis-py (Debian: apt-get install python3-redis; .ci/run does)")
	}
	c := StartCluster(t, Options{})
	script := filepath.Join(t.TempDir(), "lock.py")
	if err := os.WriteFile(script, []byte(redisPyLockScript), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{"pylock:a", "pylock:b", "pylock:c"}
	var out map[string]map[string]bool
	runClientScript(t, &out, nil, py, append([]string{script, c.ProxyAddr}, names...)...)
	want := map[string]bool{"acquired": true, "second": false, "owned": true, "extended": true,
		"after_release": true, "locked": false, "after_flush": true, "released_after_flush": true}
	for _, name := range names {
		for k, v := range want {
			if out[name][k] != v {
				t.Errorf("%s: %s = %v, want %v (%v)", name, k, out[name][k], v, out[name])
			}
		}
	}
}

// tokenBucket takes one token from the bucket KEYS[1] of capacity ARGV[1]
// refilled at ARGV[2] tokens a second, the time given as ARGV[3] (ms):
// 1 and the tokens left when one was taken, 0 when the bucket is empty.
var tokenBucket = redis.NewScript(`
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local b = redis.call('hmget', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('hset', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('pexpire', KEYS[1], 60000)
return {allowed, math.floor(tokens)}
`)

// TestTokenBucketScript: concurrent clients draw from rate-limiter buckets
// on every shard; each bucket lets exactly its capacity through (the
// script is atomic on its node), and refills with the time it is given.
func TestTokenBucketScript(t *testing.T) {
	needBinaries(t)
	c := StartCluster(t, Options{})
	ctx := context.Background()
	rdb := c.Client()
	var buckets []string
	for i := range c.Map.Shards {
		buckets = append(buckets, c.KeysOn(i, "bucket:", 1)[0])
	}
	const capacity, workers, tries = 20, 8, 10
	now := time.Now().UnixMilli()
	for _, b := range buckets {
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < tries; i++ {
					res, err := tokenBucket.Run(ctx, rdb, []string{b}, capacity, 0, now).Int64Slice()
					if err != nil {
						t.Errorf("%s: %v", b, err)
						return
					}
					mu.Lock()
					allowed += int(res[0])
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if allowed != capacity {
			t.Errorf("%s: %d requests allowed, capacity %d", b, allowed, capacity)
		}
		// Half a second later at 10 tokens a second: 5 more.
		res, err := tokenBucket.Run(ctx, rdb, []string{b}, capacity, 10, now+500).Int64Slice()
		if err != nil || res[0] != 1 || res[1] != 4 {
			t.Errorf("%s after refill: %v %v", b, res, err)
		}
	}
}

// TestGoRedisScriptAfterFlush: go-redis's Script.Run tries EVALSHA and
// falls back to EVAL on NOSCRIPT; after SCRIPT FLUSH (every node's cache
// and the proxy's) it still runs, and loads the script again.
func TestGoRedisScriptAfterFlush(t *testing.T) {
	needBinaries(t)
	c := StartCluster(t, Options{})
	ctx := context.Background()
	rdb := c.Client()
	incr := redis.NewScript("return redis.call('incr', KEYS[1])")
	key := c.KeysOn(1, "sc:", 1)[0]
	for round, want := range []int64{1, 2} {
		if round == 1 {
			must(t, rdb.ScriptFlush(ctx).Err())
			if ex, err := rdb.ScriptExists(ctx, incr.Hash()).Result(); err != nil || ex[0] {
				t.Fatalf("SCRIPT EXISTS after FLUSH: %v %v", ex, err)
			}
			if err := incr.EvalSha(ctx, rdb, []string{key}).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
				t.Fatalf("EVALSHA after FLUSH: %v", err)
			}
		}
		if got, err := incr.Run(ctx, rdb, []string{key}).Int64(); err != nil || got != want {
			t.Fatalf("round %d: Script.Run = %v %v", round, got, err)
		}
	}
	if got, err := incr.EvalSha(ctx, rdb, []string{key}).Int64(); err != nil || got != 3 {
		t.Fatalf("EVALSHA after the EVAL fallback: %v %v", got, err)
	}
}

// TestScriptKillThroughProxy: a script in an endless loop on one shard;
// its node answers BUSY, the other shards go on serving, SCRIPT KILL
// through the proxy stops the script and its client gets Redis's error.
func TestScriptKillThroughProxy(t *testing.T) {
	needBinaries(t)
	c := StartCluster(t, Options{ProxyTimeout: "60s"})
	ctx := context.Background()
	node := c.NodeClient(0, "")
	must(t, node.ConfigSet(ctx, "busy-reply-threshold", "100").Err())
	done := make(chan error, 1)
	go func() {
		done <- c.Client().Eval(ctx, "while true do end", []string{c.KeysOn(0, "loop:", 1)[0]}).Err()
	}()
	for i := 0; ; i++ {
		err := node.Ping(ctx).Err()
		if err != nil && strings.HasPrefix(err.Error(), "BUSY ") {
			break
		}
		if i == 100000 {
			t.Fatalf("the looping script's node never said BUSY: %v", err)
		}
	}
	other := c.KeysOn(1, "loop:", 1)[0]
	must(t, c.Client().Set(ctx, other, "served", 0).Err())
	if err := c.Client().Do(ctx, "SCRIPT", "KILL").Err(); err != nil {
		t.Fatalf("SCRIPT KILL: %v", err)
	}
	err := <-done
	if err == nil || !strings.HasPrefix(err.Error(), "ERR Script killed by user with SCRIPT KILL...") {
		t.Fatalf("the killed script's reply: %v", err)
	}
	if err := node.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after the kill: %v", err)
	}
	var rerr redis.Error
	if err := c.Client().Do(ctx, "SCRIPT", "KILL").Err(); !errors.As(err, &rerr) || err.Error() != "NOTBUSY No scripts in execution right now." {
		t.Fatalf("SCRIPT KILL with none running: %v", err)
	}
}
