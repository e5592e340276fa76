package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/migrate"
	"github.com/shardkv/shardkv/rangemap"
)

// Moves of the upper half of shard s0's range to s1's node, killed midway
// (docs/RESHARDING.md, "Failure of a move"): the rollback leaves the source
// whole and the target without its partial copy.

const moveLo, moveHi = 0.25, 0.5

func inMovedRange(k string) bool {
	p := rangemap.PositionOfHash(rangemap.PlacementHash([]byte(k), false))
	return moveLo <= p && p < moveHi
}

// stagedKeys counts node i's keys of the moved range in database 0, seen
// through a connection marked as a move's stream (a client's KEYS hides
// keys outside the node's assignment).
func stagedKeys(t *testing.T, c *Cluster, i int, password string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.Map.Shards[i].Addr(), Password: password, MaxRetries: -1, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "MIGRATE.RECV", "test-reader").Err()
		}})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("KEYS on node %d: %v", i, err)
	}
	n := 0
	for _, k := range keys {
		if inMovedRange(k) {
			n++
		}
	}
	return n
}

func moveKillTest(t *testing.T, kill int) {
	const pw = "nodepw"
	c := StartCluster(t, Options{Shards: 2, NodePassword: pw, AppendFsync: "always"})
	ctx := context.Background()
	rdb := c.Client()
	keys := c.KeysOn(0, "mk", 3000)
	val := strings.Repeat("v", 1000)
	p := rdb.Pipeline()
	moved := 0
	for _, k := range keys {
		p.Set(ctx, k, val+k, 0)
		if inMovedRange(k) {
			moved++
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	src, dst := c.Map.Shards[0].Addr(), c.Map.Shards[1].Addr()
	m := &migrate.Move{ID: "kill", Lo: moveLo, Hi: moveHi, Source: src, Target: dst, Password: pw,
		RateMB: 0.1, FenceLag: 10, Commit: func(context.Context) error { return nil }}
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(ctx)
		done <- err
	}()
	// Kill once part of the range reached the target.
	srcClient := c.NodeClient(0, pw)
	for {
		st, err := migrate.ReadStatus(ctx, srcClient, "kill")
		if err == nil && st.Acked > 100 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the move ended before the kill: %v (status %+v)", err, st)
		case <-time.After(10 * time.Millisecond):
		}
	}
	c.Nodes[kill].Signal(t, syscall.SIGKILL)
	c.Nodes[kill].WaitExit(t)
	err := <-done
	if err == nil {
		t.Fatal("the move completed with a node killed")
	}
	t.Logf("move with node %d killed: %v", kill, err)
	c.StartNode(kill)
	// Redo the rollback now that both nodes run (each step may be redone).
	if err := m.Rollback(ctx); err != nil {
		t.Fatalf("rollback after the restart: %v", err)
	}
	if n := stagedKeys(t, c, 1, pw); n != 0 {
		t.Errorf("the target keeps %d keys of the aborted move", n)
	}
	// The source is whole and serves the range's writes again.
	for _, k := range keys {
		v, err := rdb.Get(ctx, k).Result()
		if err != nil || v != val+k {
			t.Fatalf("GET %s after the aborted move: %q, %v", k, v[:min(len(v), 20)], err)
		}
	}
	for _, k := range keys[:50] {
		if err := rdb.Set(ctx, k, "after", 0).Err(); err != nil {
			t.Fatalf("SET %s after the aborted move: %v", k, err)
		}
	}
	if moved == 0 {
		t.Fatal("no key in the moved range")
	}
}

// TestMoveKillSource: SIGKILL of the source during the copy.
func TestMoveKillSource(t *testing.T) { moveKillTest(t, 0) }

// TestMoveKillTarget: SIGKILL of the target during the copy.
func TestMoveKillTarget(t *testing.T) { moveKillTest(t, 1) }

// TestMoveThroughBinaries moves the range between the real binaries with
// the proxy's clients writing, then checks every key of the range on the
// target at the commit.
func TestMoveThroughBinaries(t *testing.T) {
	const pw = "nodepw"
	c := StartCluster(t, Options{Shards: 2, NodePassword: pw})
	ctx := context.Background()
	rdb := c.Client()
	keys := c.KeysOn(0, "mv", 2000)
	for i, k := range keys {
		if err := rdb.Set(ctx, k, "v"+strconv.Itoa(i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	loadDone := make(chan int)
	go func() {
		n := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				loadDone <- n
				return
			default:
			}
			k := keys[i%len(keys)]
			if err := rdb.Set(ctx, k, "w"+strconv.Itoa(i), 0).Err(); err == nil {
				n++
			}
		}
	}()
	src, dst := c.Map.Shards[0].Addr(), c.Map.Shards[1].Addr()
	var mismatch []string
	m := &migrate.Move{ID: "bin", Lo: moveLo, Hi: moveHi, Source: src, Target: dst, Password: pw, FenceLag: 20,
		Commit: func(ctx context.Context) error {
			tc := redis.NewClient(&redis.Options{Addr: dst, Password: pw, PoolSize: 1,
				OnConnect: func(ctx context.Context, cn *redis.Conn) error {
					return cn.Do(ctx, "MIGRATE.RECV", "check").Err()
				}})
			defer tc.Close()
			sc := c.NodeClient(0, pw)
			for _, k := range keys {
				if !inMovedRange(k) {
					continue
				}
				want, _ := sc.Get(ctx, k).Result()
				got, _ := tc.Get(ctx, k).Result()
				if want != got {
					mismatch = append(mismatch, fmt.Sprintf("%s: source %q target %q", k, want, got))
				}
			}
			return nil
		}}
	time.Sleep(50 * time.Millisecond)
	res, err := m.Run(ctx)
	close(stop)
	writes := <-loadDone
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("moved %d records, %d bytes, copy %v, fence to drained %v, %d writes meanwhile", res.Records, res.Bytes, res.Copy, res.Drain, writes)
	for _, s := range mismatch {
		t.Error(s)
	}
}
