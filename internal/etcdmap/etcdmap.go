// Package etcdmap keeps shardkv's range map in etcd (docs/RESHARDING.md):
// the key /shardkv/<cluster>/map holds the map's JSON, whose epoch only
// grows. It seeds the map, reads it, follows it with a watch that survives
// etcd restarts, and starts the single-member embedded etcd of `shardkv
// cluster`.
package etcdmap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/rangemap"
)

// DefaultCluster is the cluster name when none is given.
const DefaultCluster = "default"

// Prefix is the root of a cluster's keys.
func Prefix(cluster string) string { return "/shardkv/" + cluster + "/" }

// MapKey is the key that holds a cluster's map.
func MapKey(cluster string) string { return Prefix(cluster) + "map" }

// Dial connects to the comma-separated etcd endpoints. The client
// reconnects by itself; a call made while etcd is down fails with its
// context.
func Dial(endpoints string) (*clientv3.Client, error) {
	var eps []string
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		// etcd's client logs through zap; its messages about a lost
		// connection repeat what our own log says once.
		Logger: zapNop(),
	})
}

// Seed writes m at epoch 1 (or its own epoch when higher) when the
// cluster has no map. A present map is never overwritten: it reports
// false and leaves it.
func Seed(ctx context.Context, cli *clientv3.Client, cluster string, m *rangemap.Map) (bool, error) {
	seed := *m
	if seed.Epoch < 1 {
		seed.Epoch = 1
	}
	data, err := rangemap.Marshal(&seed)
	if err != nil {
		return false, err
	}
	key := MapKey(cluster)
	r, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: seeding %s: %w", key, err)
	}
	return r.Succeeded, nil
}

// Get reads the cluster's map.
func Get(ctx context.Context, cli *clientv3.Client, cluster string) (*rangemap.Map, error) {
	r, err := Read(ctx, cli, cluster)
	return r.Map, err
}

// Snapshot is the map as read from etcd: ModRev is the revision of its
// last write (a conditional write compares it), Rev the store's revision
// at the read (a watch starts after it).
type Snapshot struct {
	Map    *rangemap.Map
	ModRev int64
	Rev    int64
}

// Read reads the cluster's map with its revisions.
func Read(ctx context.Context, cli *clientv3.Client, cluster string) (Snapshot, error) {
	key := MapKey(cluster)
	r, err := cli.Get(ctx, key)
	if err != nil {
		return Snapshot{}, fmt.Errorf("etcd: reading %s: %w", key, err)
	}
	if len(r.Kvs) == 0 {
		return Snapshot{Rev: r.Header.Revision}, fmt.Errorf("etcd: no map at %s (shardkv cluster seeds it, or shardkv controller -seed FILE)", key)
	}
	m, err := rangemap.Parse(r.Kvs[0].Value)
	if err != nil {
		return Snapshot{Rev: r.Header.Revision}, fmt.Errorf("etcd: %s: %w", key, err)
	}
	return Snapshot{Map: m, ModRev: r.Kvs[0].ModRevision, Rev: r.Header.Revision}, nil
}

// ErrConflict means a conditional map write found the map, or the
// writer's election key, changed since it was read: nothing was written.
var ErrConflict = errors.New("etcd: the map or the leadership changed since it was read; nothing written")

// Replace writes next as the map after prev (read by Read): next's epoch
// is prev's plus one, and the write happens only if the map is still prev
// and every extra comparison holds (the controller adds its election
// key's). ErrConflict when a comparison failed.
func Replace(ctx context.Context, cli *clientv3.Client, cluster string, prev Snapshot, next *rangemap.Map, extra ...clientv3.Cmp) error {
	n := *next
	n.Epoch = prev.Map.Epoch + 1
	if err := n.Validate(); err != nil {
		return err
	}
	data, err := rangemap.Marshal(&n)
	if err != nil {
		return err
	}
	key := MapKey(cluster)
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", prev.ModRev)}, extra...)
	r, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("etcd: writing %s: %w", key, err)
	}
	if !r.Succeeded {
		return ErrConflict
	}
	*next = n
	return nil
}

// Watch follows the cluster's map until ctx ends: it calls apply with
// every map it reads whose epoch is above the last one applied, the map
// read at start included. When etcd is unreachable it keeps retrying,
// reading the map again before watching from its revision, so a change
// made while the watch was down is not missed.
func Watch(ctx context.Context, cli *clientv3.Client, cluster string, epoch uint64, log hclog.Logger, apply func(*rangemap.Map)) {
	key := MapKey(cluster)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		snap, err := Read(rctx, cli, cluster)
		cancel()
		m, rev := snap.Map, snap.Rev
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("etcd map unreadable; serving on the current map and retrying", "error", err, "in", delay)
			}
			sleep(ctx, delay)
			delay = min(2*delay, 5*time.Second)
			continue
		}
		if m.Epoch > epoch {
			epoch = m.Epoch
			apply(m)
		}
		// WithRequireLeader: a member cut off from its cluster ends the
		// watch instead of leaving it silent.
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range cli.Watch(wctx, key, clientv3.WithRev(rev+1)) {
			if err := wr.Err(); err != nil {
				log.Warn("etcd map watch ended; reading the map again", "error", err)
				break
			}
			delay = 100 * time.Millisecond
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				m, err := rangemap.Parse(ev.Kv.Value)
				if err != nil {
					log.Error("etcd map value is not a valid map; keeping the current map", "error", err)
					continue
				}
				if m.Epoch > epoch {
					epoch = m.Epoch
					apply(m)
				}
			}
		}
		wcancel()
		sleep(ctx, delay)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
