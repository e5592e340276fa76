package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Nodes at appendfsync always get the transaction messages on connections
// of their own (txsend.go): TestCrossShardMultiExec's transactions come
// out the same, WATCH (on the pinned connection) included, concurrent
// transfers keep their totals, and no prepare is left behind.
func TestCrossShardOnSyncedNodes(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3, appendfsync: "always"})
	for _, sh := range c.srv.table.Load().shards {
		if !sh.txAlways.Load() {
			t.Fatalf("shard %s: the handshake did not see appendfsync always", sh.name)
		}
	}
	crossShardMultiExec(t, c)
	ctx := context.Background()
	// Concurrent transfers, each worker between two accounts of its own on
	// two shards, so that the transactions share the nodes' fsyncs
	// without waiting for one another's locks.
	r := c.client(2)
	const workers = 8
	var acct [workers][2]string
	for w := range acct {
		acct[w] = [2]string{c.keysOn(0, 1, fmt.Sprintf("sacct%d-a", w))[0], c.keysOn(1, 1, fmt.Sprintf("sacct%d-b", w))[0]}
		r.MSet(ctx, acct[w][0], 1000, acct[w][1], 1000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.DecrBy(ctx, acct[w][i%2], int64(i))
					p.IncrBy(ctx, acct[w][1-i%2], int64(i))
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range acct {
		// Moved: 0-1+2-3+...-19 = -10 from a to b.
		vals, err := r.MGet(ctx, acct[w][0], acct[w][1]).Result()
		if err != nil || fmt.Sprint(vals) != "[1010 990]" {
			t.Fatalf("worker %d after the transfers: %v %v", w, vals, err)
		}
	}
	for i, n := range c.nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.addr})
		list, err := nc.Do(ctx, "TX.LIST").StringSlice()
		nc.Close()
		if err != nil || strings.Contains(fmt.Sprint(list), "prepared") {
			t.Fatalf("node %d: %v %v", i, list, err)
		}
	}
}
