package etcdmap

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/rangemap"
)

// A leader whose lease ended (a paused or cut-off controller) cannot write
// the map when it wakes up, whatever it believes: its transaction carries
// its election key's create revision, which the new leader's key does not
// have. The new leader's write succeeds.
func TestDeposedLeaderWriteRefused(t *testing.T) {
	_, cli := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Seed(ctx, cli, "c", testMap(7001, 7002)); err != nil {
		t.Fatal(err)
	}
	old, err := Campaign(ctx, cli, "c", "old", 5)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Read(ctx, cli, "c")
	if err != nil {
		t.Fatal(err)
	}
	// The old leader's lease ends (as when it stops renewing for a TTL):
	// a second controller wins meanwhile.
	if _, err := cli.Revoke(ctx, old.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	next, err := Campaign(ctx, cli, "c", "new", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Resign()
	split, err := Split(snap.Map, "a", 0.25, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.ReplaceMap(ctx, snap, split); !errors.Is(err, ErrConflict) {
		t.Fatalf("the deposed leader's write: %v, want ErrConflict", err)
	}
	if m, err := Get(ctx, cli, "c"); err != nil || m.Epoch != 1 || len(m.Shards) != 2 {
		t.Fatalf("map after the refused write: %+v %v", m, err)
	}
	if err := next.ReplaceMap(ctx, snap, split); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
	if m, err := Get(ctx, cli, "c"); err != nil || m.Epoch != 2 || len(m.Shards) != 3 {
		t.Fatalf("map after the leader's write: %+v %v", m, err)
	}
	// A write from the map read before (epoch 1) fails even for the
	// leader: the epoch it read is gone.
	if err := next.ReplaceMap(ctx, snap, split); !errors.Is(err, ErrConflict) {
		t.Fatalf("the leader's write from a stale read: %v, want ErrConflict", err)
	}
}

// Split cuts one shard in two on the same node and refuses positions
// outside it and taken names.
func TestSplit(t *testing.T) {
	m := testMap(7001, 7002)
	got, err := Split(m, "a", 0.2, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []rangemap.Shard{
		{Name: "a", Start: 0, End: 0.2, Host: "127.0.0.1", Port: 7001},
		{Name: "a-2", Start: 0.2, End: 0.5, Host: "127.0.0.1", Port: 7001},
		{Name: "b", Start: 0.5, End: 1, Host: "127.0.0.1", Port: 7002},
	}
	if len(got.Shards) != 3 {
		t.Fatalf("split: %+v", got.Shards)
	}
	for i := range want {
		if !reflect.DeepEqual(got.Shards[i], want[i]) {
			t.Fatalf("shard %d: %+v, want %+v", i, got.Shards[i], want[i])
		}
	}
	if len(m.Shards) != 2 {
		t.Fatalf("Split changed its input: %+v", m.Shards)
	}
	for _, tc := range []struct {
		name string
		at   float64
		as   string
	}{{"a", 0.5, ""}, {"a", 0, ""}, {"b", 0.2, ""}, {"zz", 0.2, ""}, {"a", 0.3, "b"}} {
		if _, err := Split(m, tc.name, tc.at, tc.as); err == nil {
			t.Errorf("Split(%s, %v, %q) accepted", tc.name, tc.at, tc.as)
		}
	}
}

// A request written by the CLI is carried out by the leader: the map
// gains the split at the next epoch, the outcome is recorded and the
// request removed; a request that cannot be done is recorded as failed.
func TestControllerSplitRequest(t *testing.T) {
	_, cli := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Seed(ctx, cli, "c", testMap(7001, 7002)); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunController(rctx, cli, Config{Cluster: "c", ID: "t"}, hclog.NewNullLogger())
	}()
	defer func() { stop(); <-done }()
	id, err := SubmitSplit(ctx, cli, "c", "b", 0.75, "")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := WaitChange(ctx, cli, "c", id)
	if err != nil || ch.State != "done" || ch.Epoch != 2 || ch.Name != "b-2" {
		t.Fatalf("outcome: %+v %v", ch, err)
	}
	m, err := Get(ctx, cli, "c")
	if err != nil || m.Epoch != 2 || len(m.Shards) != 3 || m.Shards[2].Name != "b-2" || m.Shards[2].Start != 0.75 {
		t.Fatalf("map: %+v %v", m, err)
	}
	id, err = SubmitSplit(ctx, cli, "c", "b", 0.9, "")
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := WaitChange(ctx, cli, "c", id); err != nil || ch.State != "failed" {
		t.Fatalf("outcome of a split outside the shard: %+v %v", ch, err)
	}
	if reqs, err := Pending(ctx, cli, "c"); err != nil || len(reqs) != 0 {
		t.Fatalf("pending after both: %+v %v", reqs, err)
	}
}
