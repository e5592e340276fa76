package etcdmap

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/rangemap"
)

// startEtcd runs an embedded member for one test and a client of it.
func startEtcd(t *testing.T) (*Embedded, *clientv3.Client) {
	t.Helper()
	e, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := Dial(e.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return e, cli
}

func testMap(ports ...int) *rangemap.Map {
	m := &rangemap.Map{}
	for i, p := range ports {
		m.Shards = append(m.Shards, rangemap.Shard{Name: string(rune('a' + i)), Start: float64(i) / float64(len(ports)),
			End: float64(i+1) / float64(len(ports)), Host: "127.0.0.1", Port: p})
	}
	m.Shards[len(m.Shards)-1].End = 1
	return m
}

// A seed writes the map at epoch 1 when there is none, and never
// overwrites a present map; Replace bumps the epoch and fails, writing
// nothing, when the map changed since it was read.
func TestSeedAndReplace(t *testing.T) {
	_, cli := startEtcd(t)
	ctx := context.Background()
	ok, err := Seed(ctx, cli, "c", testMap(7001, 7002))
	if err != nil || !ok {
		t.Fatalf("first seed: %v %v", ok, err)
	}
	ok, err = Seed(ctx, cli, "c", testMap(8001, 8002, 8003))
	if err != nil || ok {
		t.Fatalf("second seed wrote over the map: %v %v", ok, err)
	}
	snap, err := Read(ctx, cli, "c")
	if err != nil || snap.Map.Epoch != 1 || len(snap.Map.Shards) != 2 || snap.Map.Shards[0].Port != 7001 {
		t.Fatalf("map after seeds: %+v %v", snap.Map, err)
	}
	next := testMap(7001, 7009)
	if err := Replace(ctx, cli, "c", snap, next); err != nil || next.Epoch != 2 {
		t.Fatalf("replace: epoch %d %v", next.Epoch, err)
	}
	// The same snapshot again is stale now.
	if err := Replace(ctx, cli, "c", snap, testMap(1, 2)); !errors.Is(err, ErrConflict) {
		t.Fatalf("replace from a stale read: %v, want ErrConflict", err)
	}
	got, err := Get(ctx, cli, "c")
	if err != nil || got.Epoch != 2 || got.Shards[1].Port != 7009 {
		t.Fatalf("map: %+v %v", got, err)
	}
}

// Watch applies the map at start and every newer epoch, and finds a
// change made while etcd was down once the member is back.
func TestWatchAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Dial(e.Endpoint)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Seed(ctx, cli, "c", testMap(7001)); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, cli, "c", 0, hclog.NewNullLogger(), func(m *rangemap.Map) { got <- m.Epoch })
	}()
	defer func() { cancel(); <-done }()
	want := func(epoch uint64) {
		t.Helper()
		select {
		case g := <-got:
			if g != epoch {
				t.Fatalf("watch applied epoch %d, want %d", g, epoch)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("watch never applied epoch %d", epoch)
		}
	}
	want(1)
	bump := func(e *Embedded) {
		t.Helper()
		c, err := Dial(e.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		snap, err := Read(ctx, c, "c")
		if err != nil {
			t.Fatal(err)
		}
		if err := Replace(ctx, c, "c", snap, testMap(7001)); err != nil {
			t.Fatal(err)
		}
	}
	bump(e)
	want(2)
	e.Close()
	e, err = StartEmbeddedOn(dir, e.ClientPort, e.PeerPort)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bump(e)
	want(3)
}
