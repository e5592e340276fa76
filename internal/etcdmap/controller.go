package etcdmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/shardkv/shardkv/rangemap"
)

// Keys of the controller's work (docs/RESHARDING.md, "Keys in etcd").
func electionPrefix(cluster string) string { return Prefix(cluster) + "election" }

// RequestsPrefix holds operators' requests, one key per request.
func RequestsPrefix(cluster string) string { return Prefix(cluster) + "requests/" }

// ChangesPrefix holds the outcome of every request the leader handled.
func ChangesPrefix(cluster string) string { return Prefix(cluster) + "changes/" }

// Request is an operator's ask, written by the CLI.
type Request struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // split, add-node, remove-node, move, rebalance
	// split: the shard and the position.
	Shard string  `json:"shard,omitempty"`
	At    float64 `json:"at,omitempty"`
	// Name is the new shard's name (split) or the node's (add-node,
	// remove-node); empty lets the leader pick one for a new one.
	Name string `json:"name,omitempty"`
	// Addr is the node's address (add-node).
	Addr string `json:"addr,omitempty"`
	// Lo and Hi are the range of a move; Node its target (a name in the
	// node list or an address).
	Lo   float64 `json:"lo,omitempty"`
	Hi   float64 `json:"hi,omitempty"`
	Node string  `json:"node,omitempty"`
}

// Change is the leader's record of a request it carried out.
type Change struct {
	Request
	State string `json:"state"` // "done" or "failed"
	Error string `json:"error,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"` // the map's epoch that made it
	Moves int    `json:"moves,omitempty"` // the moves it took
}

// Config is a controller's: who it is, how it reaches the nodes, and how
// it moves ranges.
type Config struct {
	Cluster string
	ID      string
	// NodePassword is the nodes' -requirepass.
	NodePassword string
	// Lease is the election lease in seconds: a leader that stops
	// renewing it is replaced that long after (5 when 0).
	Lease int
	// FenceLag is the lag in records below which a move fences its range
	// (100 when 0); FenceTimeout how long a write to it waits before
	// TRYAGAIN (100 ms when 0); RateMB the copy's limit in MB/s (0:
	// none).
	FenceLag     int64
	FenceTimeout time.Duration
	RateMB       float64
	// Hold makes the leader wait that long in a move's state before its
	// action (in fence: once fenced): the fault tests' way to kill a
	// process in a given state.
	Hold map[string]time.Duration
	// Failover, when not nil, makes the leader also promote a replica
	// when a primary dies and tell the nodes their roles (failover.go).
	Failover *FailoverOptions
}

func (c Config) withDefaults() Config {
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Lease <= 0 {
		c.Lease = 5
	}
	if c.FenceLag <= 0 {
		c.FenceLag = 100
	}
	if c.FenceTimeout <= 0 {
		c.FenceTimeout = 100 * time.Millisecond
	}
	return c
}

// Leader is a controller that won the election. Every write it makes is
// conditional on its election key still being the one it created: a
// leader that lost its lease (paused, cut off) and wakes up cannot change
// anything, whatever it believes.
type Leader struct {
	cli     *clientv3.Client
	cluster string
	key     string
	rev     int64
	sess    *concurrency.Session
	cfg     Config
}

// Campaign blocks until this controller leads the cluster (or ctx ends).
// ttl is the lease in seconds: a leader that stops renewing it is replaced
// that long after.
func Campaign(ctx context.Context, cli *clientv3.Client, cluster, id string, ttl int) (*Leader, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd: election session: %w", err)
	}
	e := concurrency.NewElection(sess, electionPrefix(cluster))
	if err := e.Campaign(ctx, id); err != nil {
		sess.Close()
		return nil, fmt.Errorf("etcd: campaign: %w", err)
	}
	return &Leader{cli: cli, cluster: cluster, key: e.Key(), rev: e.Rev(), sess: sess}, nil
}

// Lost is closed when the leader's lease ended: it leads no more.
func (l *Leader) Lost() <-chan struct{} { return l.sess.Done() }

// Resign gives up the lease (and the leadership).
func (l *Leader) Resign() { l.sess.Close() }

// guard is the comparison every leader write carries.
func (l *Leader) guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// ReplaceMap writes next after prev, conditional on the leadership and
// on the map being prev; extra operations commit with it.
func (l *Leader) ReplaceMap(ctx context.Context, prev Snapshot, next *rangemap.Map, ops ...clientv3.Op) error {
	n := *next
	n.Epoch = prev.Map.Epoch + 1
	if err := n.Validate(); err != nil {
		return err
	}
	data, err := rangemap.Marshal(&n)
	if err != nil {
		return err
	}
	key := MapKey(l.cluster)
	r, err := l.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prev.ModRev), l.guard()).
		Then(append([]clientv3.Op{clientv3.OpPut(key, string(data))}, ops...)...).
		Commit()
	if err != nil {
		return fmt.Errorf("etcd: writing %s: %w", key, err)
	}
	if !r.Succeeded {
		return ErrConflict
	}
	*next = n
	return nil
}

// record writes ops conditional on the leadership only.
func (l *Leader) record(ctx context.Context, ops ...clientv3.Op) error {
	r, err := l.cli.Txn(ctx).If(l.guard()).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return ErrConflict
	}
	return nil
}

// Split returns m with shard name's range cut at position at: the shard
// keeps [start, at), a new shard newName on the same node gets [at, end)
// with the same size limit. No data moves: the node owns both.
func Split(m *rangemap.Map, name string, at float64, newName string) (*rangemap.Map, error) {
	i := -1
	for j, s := range m.Shards {
		if s.Name == name {
			i = j
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("no shard %q in the map", name)
	}
	s := m.Shards[i]
	if math.IsNaN(at) || at <= s.Start || at >= s.End {
		return nil, fmt.Errorf("position %s is not inside shard %s's range (%s,%s)", rangemap.FormatPosition(at), name,
			rangemap.FormatPosition(s.Start), rangemap.FormatPosition(s.End))
	}
	if newName == "" {
		for k := 2; ; k++ {
			newName = name + "-" + strconv.Itoa(k)
			if _, taken := m.Lookup(newName); !taken {
				break
			}
		}
	}
	if _, taken := m.Lookup(newName); taken {
		return nil, fmt.Errorf("shard name %q is taken", newName)
	}
	out := *m
	out.Shards = make([]rangemap.Shard, 0, len(m.Shards)+1)
	out.Shards = append(out.Shards, m.Shards[:i]...)
	left, right := s, s
	left.End = at
	right.Start, right.Name = at, newName
	out.Shards = append(out.Shards, left, right)
	out.Shards = append(out.Shards, m.Shards[i+1:]...)
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// Serve carries out requests while l leads, until ctx ends or the
// leadership is lost (it returns then; the caller campaigns again).
// Requests written before it started are handled first.
func (l *Leader) Serve(ctx context.Context, log hclog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()
	prefix := RequestsPrefix(l.cluster)
	for ctx.Err() == nil {
		r, err := l.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		retry := false
		for _, kv := range r.Kvs {
			if err := l.handle(ctx, string(kv.Key), kv.Value, log); errors.Is(err, ErrConflict) {
				log.Warn("no longer the leader; stopping", "error", err)
				return err
			} else if err != nil {
				log.Warn("request not handled yet; retrying", "request", string(kv.Key), "error", err)
				retry = true
				break // requests are carried out in order
			}
		}
		if retry {
			sleep(ctx, time.Second)
			continue
		}
		wch := l.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			if len(wr.Events) > 0 {
				break // read them all again, in order
			}
		}
	}
	select {
	case <-l.Lost():
		return errors.New("leadership lost")
	default:
		return ctx.Err()
	}
}

// handle carries out one request and records its outcome in the same
// transaction as the map write (or alone when it failed): a request is
// done exactly once, and a new leader finds it either pending or done.
func (l *Leader) handle(ctx context.Context, key string, value []byte, log hclog.Logger) error {
	var req Request
	fail := func(why string) error {
		ch := Change{Request: req, State: "failed", Error: why}
		if ch.ID == "" {
			ch.ID = strings.TrimPrefix(key, RequestsPrefix(l.cluster))
		}
		data, _ := json.Marshal(ch)
		log.Warn("request refused", "request", ch.ID, "reason", why)
		return l.record(ctx, clientv3.OpPut(ChangesPrefix(l.cluster)+ch.ID, string(data)), clientv3.OpDelete(key))
	}
	if err := json.Unmarshal(value, &req); err != nil {
		return fail("bad request: " + err.Error())
	}
	if req.ID == "" || req.ID != strings.TrimPrefix(key, RequestsPrefix(l.cluster)) {
		return fail("request id does not match its key")
	}
	switch req.Kind {
	case "split":
	case "add-node":
		return l.addNode(ctx, key, req, fail, log)
	case "move", "remove-node", "rebalance":
		return l.runRequest(ctx, key, req, fail, log)
	default:
		return fail(fmt.Sprintf("unknown request kind %q (this controller does split, add-node, remove-node, move, rebalance)", req.Kind))
	}
	for {
		snap, err := Read(ctx, l.cli, l.cluster)
		if err != nil {
			return err
		}
		next, err := Split(snap.Map, req.Shard, req.At, req.Name)
		if err != nil {
			return fail(err.Error())
		}
		ch := Change{Request: req, State: "done", Epoch: snap.Map.Epoch + 1}
		for j, sh := range next.Shards {
			if sh.Name == req.Shard && j+1 < len(next.Shards) {
				ch.Name = next.Shards[j+1].Name // the name the leader picked
			}
		}
		data, _ := json.Marshal(ch)
		err = l.ReplaceMap(ctx, snap, next, clientv3.OpPut(ChangesPrefix(l.cluster)+req.ID, string(data)), clientv3.OpDelete(key))
		if errors.Is(err, ErrConflict) {
			if l.stillLeader(ctx) {
				continue // the map changed under us: read it again
			}
			return err
		}
		if err != nil {
			return err
		}
		log.Info("split done", "request", req.ID, "shard", req.Shard, "at", req.At, "new_shard", ch.Name, "epoch", next.Epoch)
		return nil
	}
}

// stillLeader reports whether l's election key is still the one it made.
func (l *Leader) stillLeader(ctx context.Context) bool {
	r, err := l.cli.Get(ctx, l.key)
	return err == nil && len(r.Kvs) == 1 && r.Kvs[0].CreateRevision == l.rev
}

// RunController campaigns and serves as leader until ctx ends, again
// after every lost leadership. With cfg.Failover the leader also runs the
// failover (failover.go).
func RunController(ctx context.Context, cli *clientv3.Client, cfg Config, log hclog.Logger) {
	cfg = cfg.withDefaults()
	id := cfg.ID
	for ctx.Err() == nil {
		l, err := Campaign(ctx, cli, cfg.Cluster, id, cfg.Lease)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("campaign failed; retrying", "error", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		l.cfg = cfg
		log.Info("leading the cluster's controller", "id", id)
		if cfg.Failover != nil {
			go l.RunFailover(ctx, *cfg.Failover, log.Named("failover"))
		}
		err = l.Serve(ctx, log)
		l.Resign()
		if ctx.Err() == nil {
			log.Warn("controller lost the lead; campaigning again", "error", err)
		}
	}
}

// SubmitSplit writes a split request and returns its id.
func SubmitSplit(ctx context.Context, cli *clientv3.Client, cluster, shard string, at float64, name string) (string, error) {
	return Submit(ctx, cli, cluster, Request{Kind: "split", Shard: shard, At: at, Name: name})
}

// Submit writes req (its id made here) and returns the id.
func Submit(ctx context.Context, cli *clientv3.Client, cluster string, req Request) (string, error) {
	req.ID = strconv.FormatInt(time.Now().UnixNano(), 36)
	data, _ := json.Marshal(req)
	if _, err := cli.Put(ctx, RequestsPrefix(cluster)+req.ID, string(data)); err != nil {
		return "", err
	}
	return req.ID, nil
}

// WaitChange waits for the outcome of request id.
func WaitChange(ctx context.Context, cli *clientv3.Client, cluster, id string) (Change, error) {
	key := ChangesPrefix(cluster) + id
	for {
		r, err := cli.Get(ctx, key)
		if err != nil {
			return Change{}, err
		}
		if len(r.Kvs) == 1 {
			var ch Change
			err := json.Unmarshal(r.Kvs[0].Value, &ch)
			return ch, err
		}
		wctx, cancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, key, clientv3.WithRev(r.Header.Revision+1))
		select {
		case <-wch:
		case <-ctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return Change{}, fmt.Errorf("no outcome for request %s yet (is a controller running?): %w", id, ctx.Err())
		}
	}
}

// Pending lists the requests not carried out yet.
func Pending(ctx context.Context, cli *clientv3.Client, cluster string) ([]Request, error) {
	r, err := cli.Get(ctx, RequestsPrefix(cluster), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, kv := range r.Kvs {
		var req Request
		if json.Unmarshal(kv.Value, &req) == nil {
			out = append(out, req)
		}
	}
	return out, nil
}
