package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/rangemap"
)

// `shardkv cluster` on a new data directory with a hash-tag map: keys of
// one tag land on one shard, the mode is recorded, and a restart keeps the
// data and the mode.
func TestClusterHashTagsNewDataDir(t *testing.T) {
	cc := newClusterCmd(t, 3)
	cc.Map.HashTags = true
	writeMap(t, cc.MapFile, cc.Map)
	ctx := context.Background()
	cc.Start()
	rdb := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1})
	defer rdb.Close()
	waitShards(t, cc, rdb)
	loc, err := rdb.Do(ctx, "SHARD.LOCATE", "user:{42}:cart").StringSlice()
	if err != nil || len(loc) != 4 || loc[3] != "42" {
		t.Fatalf("SHARD.LOCATE user:{42}:cart = %q, %v", loc, err)
	}
	res := runCLI(t, nil, "-addr", cc.ProxyAddr, "locate", "user:{42}:cart")
	owner := cc.Map.Shards[shardOf(cc.Map, "user:{42}:cart")]
	for _, want := range []string{
		"hashed    \"42\"\n",
		"position  " + rangemap.FormatPosition(rangemap.PositionString("42")) + "\n",
		"shard     " + owner.Name + "\n",
	} {
		if res.Code != 0 || !strings.Contains(res.Stdout, want) {
			t.Errorf("shardkv locate user:{42}:cart: exit %d, output lacks %q:\n%s%s", res.Code, want, res.Stdout, res.Stderr)
		}
	}
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:{42}:%d", i)
	}
	pairs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		pairs = append(pairs, k, k)
	}
	// MSETNX is atomic: it runs only when every key shares a shard.
	if ok, err := rdb.MSetNX(ctx, pairs...).Result(); !ok || err != nil {
		t.Fatalf("MSETNX over one tag: %v %v", ok, err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Rename(ctx, keys[0], "user:{42}:renamed")
		p.Incr(ctx, "user:{42}:counter")
		return nil
	}); err != nil {
		t.Fatalf("MULTI/EXEC over one tag: %v", err)
	}
	if rec, err := os.ReadFile(filepath.Join(cc.Data, "placement")); err != nil || strings.TrimSpace(string(rec)) != "hash_tags" {
		t.Fatalf("placement record: %q, %v", rec, err)
	}
	checkPlacementShown(t, cc.ProxyAddr, rdb, "hash_tags")
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	cc.Start()
	waitShards(t, cc, rdb)
	for _, k := range keys[1:] {
		if v, err := rdb.Get(ctx, k).Result(); v != k || err != nil {
			t.Fatalf("GET %s after restart: %q, %v", k, v, err)
		}
	}
	if v, err := rdb.Get(ctx, "user:{42}:renamed").Result(); v != keys[0] || err != nil {
		t.Fatalf("GET user:{42}:renamed after restart: %q, %v", v, err)
	}
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// checkPlacementShown: the proxy's INFO server and `shardkv status` name
// the placement mode.
func checkPlacementShown(t *testing.T, addr string, rdb *redis.Client, want string) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil || !strings.Contains(info, "\r\nplacement:"+want+"\r\n") {
		t.Errorf("INFO server lacks placement:%s: %v\n%s", want, err, info)
	}
	res := runCLI(t, nil, "-addr", addr, "status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "\nplacement: "+want+"\n") {
		t.Errorf("shardkv status: exit %d, output lacks placement: %s:\n%s%s", res.Code, want, res.Stdout, res.Stderr)
	}
}

// A data directory written by whole-key placement before the mode was
// recorded keeps whole-key positions: its tagged keys, spread over the
// shards by their whole bytes, stay reachable, and a map that turns hash
// tags on is refused before anything starts.
func TestClusterHashTagsOldDataDir(t *testing.T) {
	cc := newClusterCmd(t, 3)
	ctx := context.Background()
	cc.Start()
	rdb := redis.NewClient(&redis.Options{Addr: cc.ProxyAddr, MaxRetries: -1})
	defer rdb.Close()
	waitShards(t, cc, rdb)
	shards := map[int]bool{}
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("{tag}:%d", i)
		shards[cc.Map.Find(rangemap.PositionString(k))] = true
		if err := rdb.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(shards) != 3 {
		t.Fatalf("the tagged keys are on %d shards by their whole bytes; the test needs 3", len(shards))
	}
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// What a data directory of a shardkv before hash tags looks like.
	if err := os.Remove(filepath.Join(cc.Data, "placement")); err != nil {
		t.Fatal(err)
	}
	cc.Start()
	waitShards(t, cc, rdb)
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("{tag}:%d", i)
		if v, err := rdb.Get(ctx, k).Result(); v != k || err != nil {
			t.Fatalf("GET %s: %q, %v", k, v, err)
		}
	}
	if loc, err := rdb.Do(ctx, "SHARD.LOCATE", "{tag}:1").StringSlice(); err != nil || len(loc) != 4 || loc[3] != "{tag}:1" {
		t.Fatalf("SHARD.LOCATE {tag}:1 = %q, %v; want the whole key hashed", loc, err)
	}
	checkPlacementShown(t, cc.ProxyAddr, rdb, "whole_key")
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if rec, err := os.ReadFile(filepath.Join(cc.Data, "placement")); err != nil || strings.TrimSpace(string(rec)) != "whole_key" {
		t.Fatalf("placement record: %q, %v", rec, err)
	}

	cc.Map.HashTags = true
	writeMap(t, cc.MapFile, cc.Map)
	runCtx, cancel := context.WithTimeout(ctx, 2*readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin("shardkv"), "cluster", "--data", cc.Data, "--map", cc.MapFile, "--proxy-addr", cc.ProxyAddr)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot change") {
		t.Fatalf("shardkv cluster with hash tags on a whole-key data directory: %v\n%s", err, out)
	}
}

// waitShards waits until the proxy serves a key of every shard: "running"
// is printed when the processes listen, and the proxy pushes each node its
// assignment on its first connection.
func waitShards(t *testing.T, cc *clusterCmd, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(readyTimeout)
	for i := range cc.Map.Shards {
		k := keyOn(cc.Map, i, "ready")
		for {
			err := rdb.Get(ctx, k).Err()
			if err == nil || err == redis.Nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard %d does not serve %s: %v", i, k, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
