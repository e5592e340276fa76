package integration

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// putMoveState writes the move record id with state into etcd, as the
// controller records a move.
func putMoveState(t *testing.T, endpoint, id, state string) {
	t.Helper()
	withEtcd(t, endpoint, func(ctx context.Context, cli *clientv3.Client) {
		if _, err := cli.Put(ctx, etcdmap.Prefix(etcdCluster)+"moves/"+id, `{"id":"`+id+`","state":"`+state+`"}`); err != nil {
			t.Fatal(err)
		}
	})
}

// waitLog waits until the process's log has line.
func waitLog(t *testing.T, p *Proc, line string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.LogTail(1000), line) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q\n%s", p.Name, line, p.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const fencedPrefix = "TRYAGAIN the key's range is fenced"

// A source node SIGKILLed while fenced restarts fenced (fence.json): its
// writes to the range get TRYAGAIN, directly and through the proxy, the
// rest of its range is written. Past the timeout it reads the move's state
// in etcd (-etcd, -cluster): "switched" keeps the fence until the map's
// next epoch, pushed by the proxy, gives the range to the other node;
// "aborting", read after another SIGKILL and restart, lifts the fence by
// itself.
func TestFenceSurvivesKill(t *testing.T) {
	const pw = "nodepw"
	te := startTestEtcd(t)
	c := StartCluster(t, Options{Shards: 2, NodePassword: pw, Etcd: te.endpoint(),
		NodeArgs: []string{"-etcd", te.endpoint(), "-cluster", etcdCluster}})
	ctx := context.Background()
	rdb := c.Client()
	in, out := keyBetween(t, "fin", 0.25, 0.5), keyBetween(t, "fout", 0, 0.25)
	must(t, rdb.Set(ctx, in, "before", 0).Err())
	putMoveState(t, te.endpoint(), "f1", "fence")
	node0 := c.NodeClient(0, pw)
	must(t, node0.Do(ctx, "SHARD.FENCE", "0.25", "0.5", "TIMEOUT", "50", "ID", "f1", "EPOCH", "1").Err())

	c.Nodes[0].Signal(t, syscall.SIGKILL)
	c.Nodes[0].WaitExit(t)
	c.StartNode(0)
	if err := node0.Set(ctx, in, "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), fencedPrefix) {
		t.Fatalf("SET of the fenced range on the restarted node: %v", err)
	}
	if err := rdb.Set(ctx, in, "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), fencedPrefix) {
		t.Fatalf("SET of the fenced range through the proxy: %v", err)
	}
	must(t, rdb.Set(ctx, out, "outside", 0).Err())
	if v, err := rdb.Get(ctx, in).Result(); err != nil || v != "before" {
		t.Fatalf("GET of the fenced range: %q %v", v, err)
	}
	waitLog(t, c.Nodes[0], "the move is not over, the range stays fenced")

	// The move committed: the node keeps refusing until the new epoch.
	putMoveState(t, te.endpoint(), "f1", "switched")
	waitLog(t, c.Nodes[0], "the move committed, the range stays fenced")
	if err := node0.Set(ctx, in, "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), fencedPrefix) {
		t.Fatalf("SET of the committed move's range: %v", err)
	}
	changeMap(t, te.endpoint(), func(m *rangemap.Map) { m.Shards[0].End, m.Shards[1].Start = 0.25, 0.25 })
	waitEpoch(t, rdb.Info, 2)
	must(t, rdb.Set(ctx, in, "after", 0).Err()) // on node 1 now
	if err := node0.Set(ctx, in, "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGSHARD ") || !strings.HasSuffix(err.Error(), " epoch 2") {
		t.Fatalf("SET of the moved range on the old owner: %v, want WRONGSHARD at epoch 2", err)
	}

	// An aborted move: node 1 fences [0.5,0.75), is killed, restarts
	// fenced, and unfences itself once its timeout passed and it read
	// the move's state.
	in1 := keyBetween(t, "fin1", 0.5, 0.75)
	putMoveState(t, te.endpoint(), "f2", "catch-up")
	node1 := c.NodeClient(1, pw)
	must(t, node1.Do(ctx, "SHARD.FENCE", "0.5", "0.75", "TIMEOUT", "1000", "ID", "f2", "EPOCH", "2").Err())
	c.Nodes[1].Signal(t, syscall.SIGKILL)
	c.Nodes[1].WaitExit(t)
	putMoveState(t, te.endpoint(), "f2", "aborting")
	c.StartNode(1)
	waitLog(t, c.Nodes[1], "range unfenced: its move was aborted")
	must(t, rdb.Set(ctx, in1, "unfenced", 0).Err())
	if v, err := rdb.Get(ctx, in1).Result(); err != nil || v != "unfenced" {
		t.Fatalf("GET after the abort: %q %v", v, err)
	}
	if v, err := rdb.Get(ctx, in).Result(); err != nil || v != "after" {
		t.Fatalf("GET of the moved key: %q %v", v, err)
	}
}
