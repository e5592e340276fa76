package etcdmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// finish records the request's outcome and deletes it, in one
// transaction with ops.
func (l *Leader) finish(ctx context.Context, key string, ch Change, ops ...clientv3.Op) error {
	data, _ := json.Marshal(ch)
	return l.record(ctx, append([]clientv3.Op{clientv3.OpPut(ChangesPrefix(l.cluster)+ch.ID, string(data)), clientv3.OpDelete(key),
		clientv3.OpDelete(l.abortKey(ch.ID))}, ops...)...)
}

// mapAndNodes reads the map and the node list.
func (l *Leader) mapAndNodes(ctx context.Context) (Snapshot, []Node, error) {
	snap, err := Read(ctx, l.cli, l.cluster)
	if err != nil {
		return snap, nil, err
	}
	list, err := l.nodes(ctx, snap.Map)
	return snap, list, err
}

// addNode records a node that answers as active.
func (l *Leader) addNode(ctx context.Context, key string, req Request, fail func(string) error, log hclog.Logger) error {
	_, port, err := hostPort(req.Addr)
	if err != nil {
		return fail(err.Error())
	}
	snap, list, err := l.mapAndNodes(ctx)
	if err != nil {
		return err
	}
	if n, ok := findNode(list, req.Addr); ok && n.State != NodeRemoved {
		return fail(fmt.Sprintf("node %s (%s) is in the cluster already (%s)", n.Name, n.Addr, n.State))
	}
	if req.Name == "" {
		req.Name = "n" + strconv.Itoa(port)
	}
	if n, ok := findNode(list, req.Name); ok && n.Addr != req.Addr {
		return fail(fmt.Sprintf("node name %q is taken by %s", req.Name, n.Addr))
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = l.nodeDo(pctx, req.Addr, []string{"PING"})
	cancel()
	if err != nil {
		return fail(fmt.Sprintf("node %s does not answer: %v", req.Addr, err))
	}
	n := Node{Name: req.Name, Addr: req.Addr, State: NodeActive}
	if err := l.finish(ctx, key, Change{Request: req, State: "done", Epoch: snap.Map.Epoch}, l.putNode(n)); err != nil {
		return err
	}
	log.Info("node added", "name", n.Name, "addr", n.Addr)
	return nil
}

// runRequest carries out a request made of moves: it resumes the
// request's last move when it is not over, else plans the next one from
// the map, until none is left (docs/RESHARDING.md, "The controller's
// moves").
func (l *Leader) runRequest(ctx context.Context, key string, req Request, fail func(string) error, log hclog.Logger) error {
	for {
		moves, err := ReadMoves(ctx, l.cli, l.cluster, req.ID+".")
		if err != nil {
			return err
		}
		n := len(moves)
		if n > 0 {
			last := &moves[n-1]
			if !last.Terminal() {
				d := &mover{l: l, rec: last, log: log}
				if err := d.run(ctx); err != nil {
					return err
				}
				continue
			}
			if last.State == MoveAborted {
				return l.finish(ctx, key, Change{Request: req, State: "failed", Moves: n,
					Error: fmt.Sprintf("move %s aborted, the source keeps the range: %s", last.ID, last.Error)})
			}
		}
		if why, asked, err := l.abortAsked(ctx, req.ID); err != nil {
			return err
		} else if asked {
			return l.finish(ctx, key, Change{Request: req, State: "failed", Moves: n, Error: "aborted by the operator before its next move: " + why})
		}
		snap, list, err := l.mapAndNodes(ctx)
		if err != nil {
			return err
		}
		rec, done, ops, why, err := l.plan(ctx, req, snap, list, n)
		if err != nil {
			return err
		}
		if why != "" {
			return fail(why)
		}
		if done {
			if err := l.finish(ctx, key, Change{Request: req, State: "done", Moves: n, Epoch: snap.Map.Epoch}, ops...); err != nil {
				return err
			}
			log.Info("request done", "request", req.ID, "kind", req.Kind, "moves", n, "epoch", snap.Map.Epoch)
			return nil
		}
		if len(ops) > 0 {
			if err := l.record(ctx, ops...); err != nil {
				return err
			}
		}
		rec.ID = req.ID + "." + strconv.Itoa(n+1)
		rec.Request = req.ID
		if err := l.createMove(ctx, rec); err != nil && !errors.Is(err, ErrConflict) {
			return err
		} else if err != nil && !l.stillLeader(ctx) {
			return err
		}
		log.Info("move planned", "id", rec.ID, "lo", rec.Lo, "hi", rec.Hi, "from", rec.Source, "to", rec.Target)
	}
}

// plan returns the request's next move (done when there is none; why
// when the request cannot be carried out), with etcd operations to
// record first (a node's new state).
func (l *Leader) plan(ctx context.Context, req Request, snap Snapshot, list []Node, planned int) (rec *MoveRecord, done bool, ops []clientv3.Op, why string, err error) {
	m := snap.Map
	byAddr := map[string]Node{}
	for _, n := range list {
		byAddr[n.Addr] = n
	}
	mk := func(lo, hi float64, from, to string) *MoveRecord {
		return &MoveRecord{Lo: lo, Hi: hi, Source: byAddr[from].Name, SourceAddr: from, Target: byAddr[to].Name, TargetAddr: to}
	}
	switch req.Kind {
	case "move":
		if planned > 0 {
			return nil, true, nil, "", nil
		}
		lo, hi := req.Lo, req.Hi
		if req.Shard != "" {
			s, ok := m.Lookup(req.Shard)
			if !ok {
				return nil, false, nil, fmt.Sprintf("no shard %q in the map", req.Shard), nil
			}
			lo, hi = s.Start, s.End
		}
		to, ok := findNode(list, req.Node)
		if !ok {
			return nil, false, nil, fmt.Sprintf("no node %q in the node list (shardkv add-node ADDR first)", req.Node), nil
		}
		if to.State != NodeActive {
			return nil, false, nil, fmt.Sprintf("node %s is %s: not a move's target", to.Name, to.State), nil
		}
		from, err := ownerOf(m, lo, hi)
		if err != nil {
			return nil, false, nil, err.Error(), nil
		}
		if from == to.Addr {
			return nil, false, nil, fmt.Sprintf("node %s owns the range already", to.Name), nil
		}
		if _, err := MoveRange(m, lo, hi, to.Addr); err != nil {
			return nil, false, nil, "the move would break the map's rules: " + err.Error(), nil
		}
		return mk(lo, hi, from, to.Addr), false, nil, "", nil
	case "remove-node":
		n, ok := findNode(list, req.Name)
		if !ok {
			return nil, false, nil, fmt.Sprintf("no node %q in the node list", req.Name), nil
		}
		if n.State == NodeActive {
			n.State = NodeDraining
			ops = append(ops, l.putNode(n))
		}
		rs := nodeRanges(m, n.Addr)
		if len(rs) == 0 {
			n.State = NodeRemoved
			return nil, true, []clientv3.Op{l.putNode(n)}, "", nil
		}
		r := rs[0]
		// To the neighbour before the range, else the one after it.
		to := ""
		if r[0] > 0 {
			to = m.Shards[m.Find(r[0]-1e-12)].Addr()
		} else if r[1] < 1 {
			to = m.Shards[m.Find(r[1])].Addr()
		}
		if to == "" || to == n.Addr {
			return nil, false, nil, fmt.Sprintf("node %s owns the whole key space: add a node first", n.Name), nil
		}
		if _, err := MoveRange(m, r[0], r[1], to); err != nil {
			return nil, false, nil, "the move would break the map's rules: " + err.Error(), nil
		}
		return mk(r[0], r[1], n.Addr, to), false, ops, "", nil
	case "rebalance":
		if planned >= 2*len(list) {
			return nil, true, nil, "", nil
		}
		var active []string
		live := map[string]int64{}
		for _, n := range list {
			if n.State != NodeActive {
				continue
			}
			active = append(active, n.Addr)
			b, err := l.liveBytes(ctx, n.Addr)
			if err != nil {
				return nil, false, nil, "", fmt.Errorf("live bytes of node %s: %w", n.Name, err)
			}
			live[n.Addr] = b
		}
		lo, hi, from, to, err := planRebalance(m, active, live)
		switch {
		case errors.Is(err, errBalanced):
			return nil, true, nil, "", nil
		case err != nil:
			return nil, false, nil, err.Error(), nil
		}
		return mk(lo, hi, from, to), false, nil, "", nil
	}
	return nil, false, nil, fmt.Sprintf("unknown request kind %q", req.Kind), nil
}
