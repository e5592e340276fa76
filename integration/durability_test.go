package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRestartKeepsKeysAndTTLs stops the whole cluster with SIGTERM and starts
// it again on the same data: every key, value and absolute expiry is back,
// deleted keys stay deleted, and keys that expired while it was down are gone.
func TestRestartKeepsKeysAndTTLs(t *testing.T) {
	c := StartCluster(t, Options{})
	rdb := c.Client()
	ctx := context.Background()

	type rec struct {
		value  string
		expire int64 // PEXPIRETIME: -1 without expiry
	}
	want := map[string]rec{}
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("ttl:k%d", i)
		v := fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", i%50))
		switch i % 3 {
		case 0:
			must(t, rdb.Set(ctx, k, v, 0).Err())
		case 1:
			must(t, rdb.Set(ctx, k, v, time.Duration(1000+i)*time.Second).Err())
		case 2:
			must(t, rdb.Set(ctx, k, v, time.Duration(500000+i)*time.Millisecond).Err())
		}
		want[k] = rec{value: v}
	}
	// An overwrite keeps the last value; PERSIST drops an expiry; EXPIRE adds one.
	must(t, rdb.Set(ctx, "ttl:k0", "overwritten", 0).Err())
	want["ttl:k0"] = rec{value: "overwritten"}
	must(t, rdb.Persist(ctx, "ttl:k1").Err())
	must(t, rdb.Expire(ctx, "ttl:k3", time.Hour).Err())
	// Deleted keys and keys that expire while the cluster is down.
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("ttl:gone%d", i)
		if i%2 == 0 {
			must(t, rdb.Set(ctx, k, "x", 0).Err())
			must(t, rdb.Del(ctx, k).Err())
		} else {
			must(t, rdb.Set(ctx, k, "x", 300*time.Millisecond).Err())
		}
	}
	shortSet := time.Now()
	for k, r := range want {
		exp, err := rdb.Do(ctx, "PEXPIRETIME", k).Int64()
		if err != nil {
			t.Fatalf("PEXPIRETIME %s: %v", k, err)
		}
		r.expire = exp
		want[k] = r
	}
	if want["ttl:k1"].expire != -1 || want["ttl:k3"].expire <= 0 || want["ttl:k4"].expire <= 0 {
		t.Fatalf("expiries before the restart are wrong: k1 %d (want -1), k3 %d, k4 %d (want > 0)",
			want["ttl:k1"].expire, want["ttl:k3"].expire, want["ttl:k4"].expire)
	}

	c.StopAll(syscall.SIGTERM)
	time.Sleep(time.Until(shortSet.Add(500 * time.Millisecond)))
	c.StartAll()

	rdb = c.Client()
	for k, r := range want {
		got, err := rdb.Get(ctx, k).Result()
		if err != nil || got != r.value {
			t.Fatalf("after restart GET %s = %q, %v; want %q", k, got, err, r.value)
		}
		exp, err := rdb.Do(ctx, "PEXPIRETIME", k).Int64()
		if err != nil || exp != r.expire {
			t.Fatalf("after restart PEXPIRETIME %s = %d, %v; want %d", k, exp, err, r.expire)
		}
	}
	if ttl, err := rdb.TTL(ctx, "ttl:k0").Result(); err != nil || ttl != -1 {
		t.Fatalf("TTL of a key without expiry = %v, %v; want -1", ttl, err)
	}
	if ttl, err := rdb.TTL(ctx, "ttl:k4").Result(); err != nil || ttl <= 0 || ttl > 1004*time.Second {
		t.Fatalf("TTL ttl:k4 = %v, %v; want in (0, 1004s]", ttl, err)
	}
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("ttl:gone%d", i)
		if got, err := rdb.Get(ctx, k).Result(); err != redis.Nil {
			t.Fatalf("after restart GET %s = %q, %v; want nil (deleted or expired)", k, got, err)
		}
	}
}

// TestKillDuringWrites SIGKILLs a shard node while clients write, restarts
// it, and checks that every write the proxy acknowledged is there. Writes to
// the dead node must fail with TRYAGAIN. Under appendfsync always an
// acknowledged write is on disk; under everysec it is at least in the
// kernel's page cache (the node writes before it replies), which a killed
// process cannot lose, and so under no — README.md promises all three.
func TestKillDuringWrites(t *testing.T) {
	for _, mode := range []string{"always", "everysec", "no"} {
		t.Run(mode, func(t *testing.T) { killDuringWrites(t, mode) })
	}
}

func killDuringWrites(t *testing.T, appendfsync string) {
	c := StartCluster(t, Options{AppendFsync: appendfsync})
	ctx := context.Background()
	const victim = 1

	type ack struct{ key, value string }
	var (
		mu        sync.Mutex
		acked     []ack
		errs      = map[string]int{}
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		killed    = make(chan struct{})
		afterKill int
	)
	for w := 0; w < 16; w++ {
		rdb := c.Client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("acked:w%d:%d", w, i)
				v := fmt.Sprintf("%s=%s", k, strings.Repeat("d", 64+i%64))
				err := rdb.Set(ctx, k, v, 0).Err()
				mu.Lock()
				if err == nil {
					acked = append(acked, ack{k, v})
					select {
					case <-killed:
						afterKill++
					default:
					}
				} else if c.ShardOf(k) == victim && strings.HasPrefix(err.Error(), c.TryAgainPrefix(victim)) {
					errs["TRYAGAIN"]++
				} else if c.ShardOf(k) == victim && strings.HasPrefix(err.Error(), c.UncertainPrefix(victim)) {
					// In flight when the node died: not acknowledged, so
					// not checked below either way.
					errs["UNCERTAIN"]++
				} else {
					errs[fmt.Sprintf("shard %d: %v", c.ShardOf(k), err)]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	c.Nodes[victim].Signal(t, syscall.SIGKILL)
	c.Nodes[victim].WaitExit(t)
	close(killed)
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()

	onVictim := 0
	for _, a := range acked {
		if c.ShardOf(a.key) == victim {
			onVictim++
		}
	}
	t.Logf("%d writes acknowledged (%d on the killed node, %d after the kill); errors: %v", len(acked), onVictim, afterKill, errs)
	if onVictim == 0 {
		t.Fatal("no write reached the victim node before the kill; the test proves nothing")
	}
	if afterKill == 0 {
		t.Error("no write was acknowledged after the kill: the other shards stopped serving")
	}
	if errs["TRYAGAIN"] == 0 {
		t.Error("no write to the killed node got TRYAGAIN")
	}
	for e, n := range errs {
		if e != "TRYAGAIN" && e != "UNCERTAIN" {
			t.Errorf("%d writes failed with an unexpected error: %s", n, e)
		}
	}

	c.StartNode(victim)
	rdb := c.Client()
	missing := 0
	for len(acked) > 0 {
		n := min(len(acked), 500)
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, n)
		for i, a := range acked[:n] {
			cmds[i] = pipe.Get(ctx, a.key)
		}
		_, _ = pipe.Exec(ctx)
		for i, cmd := range cmds {
			got, err := cmd.Result()
			if err != nil || got != acked[i].value {
				if missing++; missing <= 10 {
					t.Errorf("acknowledged write lost: GET %s (shard %d) = %q, %v", acked[i].key, c.ShardOf(acked[i].key), got, err)
				}
			}
		}
		acked = acked[n:]
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged writes missing after the restart", missing)
	}
}

// TestTornTail appends a partial record to a killed node's newest data file,
// as a crash in the middle of a write leaves it: the node must start, serve
// every key written before, cut the torn bytes off, and keep writes made
// after the restart through another crash.
func TestTornTail(t *testing.T) {
	c := StartCluster(t, Options{AppendFsync: "always"})
	rdb := c.Client()
	ctx := context.Background()
	const victim = 0
	want := map[string]string{}
	write := func(prefix string, n int) {
		for _, k := range c.KeysOn(victim, prefix, n) {
			want[k] = "value of " + k
			must(t, rdb.Set(ctx, k, want[k], 0).Err())
		}
	}
	check := func(when string) {
		t.Helper()
		for k, v := range want {
			if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
				t.Fatalf("%s: GET %s = %q, %v; want %q", when, k, got, err, v)
			}
		}
	}
	write("torn:before", 100)

	c.Nodes[victim].Signal(t, syscall.SIGKILL)
	c.Nodes[victim].WaitExit(t)
	dir := filepath.Join(c.Dir, "data", c.Map.Shards[victim].Name)
	files, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	if len(files) == 0 {
		t.Fatalf("no *.data file in %s", dir)
	}
	sort.Strings(files)
	newest := files[len(files)-1]
	data, err := os.ReadFile(newest)
	if err != nil || len(data) < 64 {
		t.Fatalf("reading %s: %d bytes, %v", newest, len(data), err)
	}
	// The first 40 bytes of the last record-sized chunk: a header and part
	// of a key, with no end.
	f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[len(data)-64 : len(data)-24]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c.StartNode(victim)
	check("after a restart on a torn tail")
	write("torn:after", 50)
	c.Nodes[victim].Signal(t, syscall.SIGKILL)
	c.Nodes[victim].WaitExit(t)
	c.StartNode(victim)
	check("after a second crash")
}
