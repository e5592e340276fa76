package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/shardkv/shardkv/internal/migrate"
	"github.com/shardkv/shardkv/rangemap"
)

// A move that leaves a node with two ranges that are not adjacent, through
// the real binaries and an etcd map: the top of s2's range [2/3,1) moves
// to s0's node, which then serves [0,1/3) and [5/6,1), while a client
// writes through the proxy. The commit writes the map's next epoch in
// etcd; the proxy pushes each node its list of ranges. After the move every
// acknowledged write reads back with its last value through the proxy, the
// node holds both ranges (INFO), refuses the range between them, and keeps
// both after a SIGKILL and restart.
func TestNodeRangesNotAdjacentAfterMove(t *testing.T) {
	const pw = "nodepw"
	const lo, hi = 5.0 / 6, 1.0
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 3, NodePassword: pw, Etcd: te.endpoint()})
	ctx := context.Background()
	rdb := c.Client()
	keys := append(c.KeysOn(2, "nr", 600), c.KeysOn(0, "nr0", 100)...)
	var mu sync.Mutex
	acked := map[string]string{}
	for _, k := range keys {
		must(t, rdb.Set(ctx, k, "v0", 0).Err())
		acked[k] = "v0"
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var unexpected []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := keys[i%len(keys)], "v"+strconv.Itoa(i)
			err := rdb.Set(ctx, k, v, 0).Err()
			mu.Lock()
			switch {
			case err == nil:
				acked[k] = v
			case strings.HasPrefix(err.Error(), "TRYAGAIN "):
				// Nothing ran (the fence): the next round writes it.
			default:
				unexpected = append(unexpected, k+": "+err.Error())
			}
			mu.Unlock()
		}
	}()
	m := &migrate.Move{ID: "ranges", Lo: lo, Hi: hi, Source: c.Map.Shards[2].Addr(), Target: c.Map.Shards[0].Addr(),
		Password: pw, FenceLag: 20,
		Commit: func(context.Context) error {
			changeMap(t, te.endpoint(), func(m *rangemap.Map) {
				moved := m.Shards[2]
				m.Shards[2].End = lo
				moved.Name, moved.Start, moved.Port = "s3", lo, c.Map.Shards[0].Port
				m.Shards = append(m.Shards, moved)
			})
			return nil
		}}
	res, err := m.Run(ctx)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	waitEpoch(t, rdb.Info, 2)
	close(stop)
	wg.Wait()
	t.Logf("moved %d records, fence to drained %v, %d keys deleted on the source", res.Records, res.Drain, res.Deleted)
	for _, u := range unexpected {
		t.Error(u)
	}
	movedKeys := 0
	for _, k := range keys {
		if p := rangemap.PositionString(k); lo <= p && p < hi {
			movedKeys++
		}
	}
	if movedKeys == 0 {
		t.Fatal("no key in the moved range")
	}
	check := func(when string) {
		t.Helper()
		for _, k := range keys {
			if v, err := rdb.Get(ctx, k).Result(); err != nil || v != acked[k] {
				t.Fatalf("%s: GET %s: %q %v, want %q", when, k, v, err, acked[k])
			}
		}
	}
	check("after the move")

	node0 := c.NodeClient(0, pw)
	info := node0.Info(ctx, "shard").Val()
	for _, want := range []string{"shard_ranges:2\r\n", "shard_range_0:name=s0,start=0,", "shard_range_1:name=s3,start=" + rangemap.FormatPosition(lo) + ",end=1,", "shard_epoch:2\r\n"} {
		if !strings.Contains(info, want) {
			t.Fatalf("node 0 INFO shard lacks %q:\n%s", want, info)
		}
	}
	between := keyBetween(t, "nrb", 1.0/3, 2.0/3)
	if err := node0.Set(ctx, between, "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "not in [0,"+rangemap.FormatPosition(1.0/3)+") of s0, ["+rangemap.FormatPosition(lo)+",1) of s3 epoch 2") {
		t.Fatalf("SET on node 0 of a key between its ranges: %v", err)
	}
	if err := c.NodeClient(2, pw).Get(ctx, keyBetween(t, "nrm", lo, hi)).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGSHARD ") {
		t.Fatalf("GET of the moved range on the source: %v", err)
	}

	// SIGKILL of the node holding both ranges: it restarts with them.
	c.Nodes[0].Signal(t, syscall.SIGKILL)
	c.Nodes[0].WaitExit(t)
	c.StartNode(0)
	check("after node 0's restart")
	for i, k := range keys {
		v := fmt.Sprintf("after-%d", i)
		must(t, rdb.Set(ctx, k, v, 0).Err())
		acked[k] = v
	}
	check("after writing again")
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Fatalf("DBSIZE %d %v, want %d", n, err, len(keys))
	}
	var scanned []string
	iter := rdb.Scan(ctx, 0, "nr*", 100).Iterator()
	for iter.Next(ctx) {
		scanned = append(scanned, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range scanned {
		seen[k] = true
	}
	if len(seen) != len(keys) {
		t.Fatalf("SCAN saw %d keys, want %d", len(seen), len(keys))
	}
}
