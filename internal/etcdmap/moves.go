package etcdmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/internal/migrate"
	"github.com/shardkv/shardkv/rangemap"
)

// The states of a move (docs/RESHARDING.md, "States"). A node deciding
// alone about a fence that timed out reads them: aborting and aborted
// mean the source keeps the range; switched, cleanup and done that the
// target owns it.
const (
	MovePlanned     = "planned"
	MoveTargetReady = "target-ready"
	MoveSnapshot    = "snapshot"
	MoveCatchUp     = "catch-up"
	MoveFence       = "fence"
	MoveSwitched    = "switched"
	MoveCleanup     = "cleanup"
	MoveDone        = "done"
	MoveAborting    = "aborting"
	MoveAborted     = "aborted"
)

// maxAttempts is how many times a move's stream is started before the
// move is aborted.
const maxAttempts = 5

// MovesPrefix holds the moves, one key per move.
func MovesPrefix(cluster string) string { return Prefix(cluster) + "moves/" }

// MoveRecord is one move at /shardkv/<cluster>/moves/<id>.
type MoveRecord struct {
	ID         string  `json:"id"`
	Request    string  `json:"request"`
	Lo         float64 `json:"lo"`
	Hi         float64 `json:"hi"`
	Source     string  `json:"source"`
	SourceAddr string  `json:"source_addr"`
	Target     string  `json:"target"`
	TargetAddr string  `json:"target_addr"`
	State      string  `json:"state"`
	Attempt    int     `json:"attempt"`
	// Epoch is the map's epoch the switch made; 0 before it.
	Epoch   uint64 `json:"epoch,omitempty"`
	Seq0    int64  `json:"seq0,omitempty"`
	Records int64  `json:"records,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	// Fence is how long the range was fenced (fence to switch), in
	// milliseconds.
	FenceMS int64  `json:"fence_ms,omitempty"`
	Error   string `json:"error,omitempty"`
	// CopyLeft says an aborted move's target did not answer within the
	// abort's wait: its copy of the range is still to drop (the leader
	// drops it once the target is back and clears this).
	CopyLeft bool `json:"copy_left,omitempty"`

	modRev int64 // the record's ModRevision when read or last written
}

// Terminal reports whether the move is over.
func (r *MoveRecord) Terminal() bool { return r.State == MoveDone || r.State == MoveAborted }

// ReadMoves reads the moves whose id starts with prefix (all when ""),
// ordered by id number within a request.
func ReadMoves(ctx context.Context, cli *clientv3.Client, cluster, prefix string) ([]MoveRecord, error) {
	r, err := cli.Get(ctx, MovesPrefix(cluster)+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]MoveRecord, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		var m MoveRecord
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", kv.Key, err)
		}
		m.modRev = kv.ModRevision
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Request != out[j].Request {
			return out[i].Request < out[j].Request
		}
		return moveNumber(out[i].ID) < moveNumber(out[j].ID)
	})
	return out, nil
}

// moveNumber is n of a move id "<request>.<n>".
func moveNumber(id string) int {
	n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '.')+1:])
	return n
}

// mover drives one move; every etcd write is the leader's.
type mover struct {
	l   *Leader
	rec *MoveRecord
	log hclog.Logger
	// aborting is when this leader first tried the abort's drop on the
	// target (a new leader waits again: the wait stays bounded).
	aborting time.Time
}

func (l *Leader) moveKey(id string) string { return MovesPrefix(l.cluster) + id }

// createMove records a new move in state planned; it fails if the id is
// taken (a crashed leader recorded it already: the caller reads it).
func (l *Leader) createMove(ctx context.Context, rec *MoveRecord) error {
	rec.State = MovePlanned
	rec.Attempt = 1
	data, _ := json.Marshal(rec)
	key := l.moveKey(rec.ID)
	r, err := l.cli.Txn(ctx).If(l.guard(), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return ErrConflict
	}
	rec.modRev = r.Header.Revision
	return nil
}

// save writes the record, conditional on the leadership and on the record
// being the one last read or written.
func (d *mover) save(ctx context.Context, ops ...clientv3.Op) error {
	data, _ := json.Marshal(d.rec)
	key := d.l.moveKey(d.rec.ID)
	// Short: a write lost to an etcd outage is retried (advance), and the
	// next try reaches an etcd that is back sooner.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := d.l.cli.Txn(ctx).If(d.l.guard(), clientv3.Compare(clientv3.ModRevision(key), "=", d.rec.modRev)).
		Then(append([]clientv3.Op{clientv3.OpPut(key, string(data))}, ops...)...).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return ErrConflict
	}
	d.rec.modRev = r.Header.Revision
	return nil
}

// advance records the next state; on an etcd error it retries until the
// write is made or the leadership is known lost.
func (d *mover) advance(ctx context.Context, state string) error {
	prev := d.rec.State
	d.rec.State = state
	for {
		err := d.save(ctx)
		if err == nil {
			d.log.Info("move state", "id", d.rec.ID, "state", state, "from", prev)
			return nil
		}
		if errors.Is(err, ErrConflict) || ctx.Err() != nil {
			d.rec.State = prev
			return errors.Join(err, ctx.Err())
		}
		d.log.Warn("recording the move's state failed; retrying", "id", d.rec.ID, "state", state, "error", err)
		sleep(ctx, time.Second)
	}
}

func (d *mover) move() *migrate.Move {
	c := d.l.cfg
	return &migrate.Move{ID: d.rec.ID, Lo: d.rec.Lo, Hi: d.rec.Hi, Source: d.rec.SourceAddr, Target: d.rec.TargetAddr,
		Password: c.NodePassword, RateMB: c.RateMB, FenceLag: c.FenceLag, FenceTimeout: c.FenceTimeout, Rev: d.l.rev, Log: d.log}
}

// errStreamLost means the source's stream is gone or failed before the
// switch: the move starts again from planned.
var errStreamLost = errors.New("the source's stream is lost")

func streamLost(err error) bool {
	return errors.Is(err, errStreamLost) || migrate.IsNoMigration(err)
}

// run drives the move from its recorded state to done or aborted.
func (d *mover) run(ctx context.Context) error {
	for !d.rec.Terminal() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.switched() && d.rec.State != MoveAborting {
			why, asked, err := d.l.abortAsked(ctx, d.rec.Request)
			if err != nil {
				d.log.Warn("reading the move's abort failed; retrying", "id", d.rec.ID, "error", err)
				sleep(ctx, time.Second)
				continue
			}
			if asked {
				d.rec.Error = "aborted by the operator: " + why
				if err := d.advance(ctx, MoveAborting); err != nil {
					return err
				}
				continue
			}
		}
		state := d.rec.State
		if h := d.l.cfg.Hold[state]; h > 0 && state != MoveFence {
			d.log.Info("holding the move (--hold)", "id", d.rec.ID, "state", state, "for", h)
			sleep(ctx, h)
		}
		// A leader that was paused past its lease must not send the
		// nodes a step (an unfence of the next leader's fence above all).
		// Checked before every step; a pause between the check and the
		// command is covered by the nodes, which refuse a fence, unfence
		// or drop whose REV (l.rev) is older than one they have seen.
		if !d.l.stillLeader(ctx) {
			return fmt.Errorf("move %s: %w", d.rec.ID, ErrConflict)
		}
		next, err := d.step(ctx)
		switch {
		case err == nil:
			if next != "" && next != state {
				if err := d.advance(ctx, next); err != nil {
					return err
				}
			}
		case errors.Is(err, ErrConflict), ctx.Err() != nil:
			return errors.Join(err, ctx.Err())
		case errors.Is(err, errAbortAsked):
			// Recorded at the top of the loop.
		case errors.Is(err, errMapMoved):
			d.rec.Error = err.Error()
			if err := d.advance(ctx, MoveAborting); err != nil {
				return err
			}
		case streamLost(err) && !d.switched():
			d.log.Warn("move's stream lost; starting it again", "id", d.rec.ID, "state", state, "attempt", d.rec.Attempt, "error", err)
			d.rec.Error = err.Error()
			next := MovePlanned
			if d.rec.Attempt >= maxAttempts {
				next = MoveAborting
			} else {
				d.rec.Attempt++
			}
			if err := d.advance(ctx, next); err != nil {
				return err
			}
		default:
			// A node or etcd that does not answer: the step is redone.
			d.log.Warn("move step failed; retrying", "id", d.rec.ID, "state", state, "error", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

func (d *mover) switched() bool {
	switch d.rec.State {
	case MoveSwitched, MoveCleanup, MoveDone:
		return true
	}
	return false
}

// step does the action of the record's state and returns the next state.
func (d *mover) step(ctx context.Context) (string, error) {
	m := d.move()
	switch d.rec.State {
	case MovePlanned:
		if err := d.clearSource(ctx, m); err != nil {
			return "", err
		}
		if err := m.Prepare(ctx); err != nil {
			return "", err
		}
		return MoveTargetReady, nil
	case MoveTargetReady:
		seq0, err := m.Start(ctx)
		if err != nil {
			return "", err
		}
		d.rec.Seq0 = seq0
		return MoveSnapshot, nil
	case MoveSnapshot:
		return MoveCatchUp, d.wait(ctx, m, func(st migrate.Status) bool { return st.Phase == "catchup" })
	case MoveCatchUp:
		return MoveFence, d.wait(ctx, m, m.CaughtUp)
	case MoveFence:
		return d.fenceAndSwitch(ctx, m)
	case MoveSwitched:
		if err := d.pushAssignments(ctx); err != nil {
			return "", err
		}
		if err := m.Unfence(ctx); err != nil {
			return "", err
		}
		if err := m.EndStream(ctx); err != nil {
			return "", err
		}
		return MoveCleanup, nil
	case MoveCleanup:
		if _, err := m.Cleanup(ctx); err != nil {
			return "", err
		}
		return MoveDone, nil
	case MoveAborting:
		if err := d.clearSource(ctx, m); err != nil {
			return "", err
		}
		// The source owns the range and is unfenced now: the move is
		// over for everyone but the target, whose copy is dropped here,
		// or later if it stays down past the abort's wait.
		if d.aborting.IsZero() {
			d.aborting = time.Now()
		}
		if err := m.Prepare(ctx); err != nil {
			if time.Since(d.aborting) < d.l.cfg.AbortWait {
				return "", err
			}
			d.rec.CopyLeft = true
			d.rec.Error += fmt.Sprintf("; the target did not answer for %s (%v): its copy of the range is dropped when it is back", d.l.cfg.AbortWait, err)
			d.log.Warn("abort: the target does not answer; recording aborted with its copy left", "id", d.rec.ID, "target", d.rec.TargetAddr, "error", err)
		}
		return MoveAborted, nil
	}
	return "", fmt.Errorf("move %s: unknown state %q", d.rec.ID, d.rec.State)
}

// clearSource ends an earlier attempt's stream and fence on the source.
func (d *mover) clearSource(ctx context.Context, m *migrate.Move) error {
	if err := m.EndStream(ctx); err != nil {
		return err
	}
	return m.Unfence(ctx)
}

// wait polls the source's stream until done says so, recording progress
// at most every second.
func (d *mover) wait(ctx context.Context, m *migrate.Move, done func(migrate.Status) bool) error {
	saved, checked := time.Now(), time.Now()
	for {
		if time.Since(checked) >= 500*time.Millisecond {
			if _, asked, err := d.l.abortAsked(ctx, d.rec.Request); err == nil && asked {
				return errAbortAsked
			}
			checked = time.Now()
		}
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		if st.Phase == "failed" || st.Phase == "aborted" {
			return fmt.Errorf("%w: phase %s: %s", errStreamLost, st.Phase, st.Error)
		}
		if done(st) {
			d.rec.Records, d.rec.Bytes = st.Records, st.Bytes
			return nil
		}
		if time.Since(saved) >= time.Second && (st.Records != d.rec.Records || st.Bytes != d.rec.Bytes) {
			d.rec.Records, d.rec.Bytes = st.Records, st.Bytes
			if err := d.save(ctx); err != nil {
				return err
			}
			saved = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fenceAndSwitch fences the range on the source, waits for the drain, and
// commits the switch: the map at epoch+1 with the range on the target and
// the record switched, in one transaction.
func (d *mover) fenceAndSwitch(ctx context.Context, m *migrate.Move) (string, error) {
	if err := m.Fence(ctx); err != nil {
		return "", err
	}
	fenced := time.Now()
	if h := d.l.cfg.Hold[MoveFence]; h > 0 {
		d.log.Info("holding the move fenced (--hold)", "id", d.rec.ID, "for", h)
		for end := time.Now().Add(h); time.Now().Before(end); sleep(ctx, 50*time.Millisecond) {
			if _, asked, err := d.l.abortAsked(ctx, d.rec.Request); err == nil && asked {
				return "", errAbortAsked
			}
		}
	}
	if err := d.wait(ctx, m, migrate.Drained); err != nil {
		return "", err
	}
	for {
		err := d.commitSwitch(ctx, fenced)
		if err == nil {
			return "", nil // recorded by the switch itself
		}
		if errors.Is(err, ErrConflict) || ctx.Err() != nil || errors.Is(err, errMapMoved) || errors.Is(err, errAbortAsked) {
			return "", err
		}
		// etcd does not answer: the range stays fenced until it does.
		d.log.Warn("the switch could not be written; the range stays fenced", "id", d.rec.ID, "error", err)
		sleep(ctx, 200*time.Millisecond)
	}
}

// errAbortAsked means an operator asked to abort the move (shardkv abort).
var errAbortAsked = errors.New("abort asked")

// AbortsPrefix holds operators' aborts, one key per request.
func AbortsPrefix(cluster string) string { return Prefix(cluster) + "aborts/" }

func (l *Leader) abortKey(request string) string { return AbortsPrefix(l.cluster) + request }

// abortAsked reports whether an operator asked to abort request's moves,
// and why.
func (l *Leader) abortAsked(ctx context.Context, request string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := l.cli.Get(ctx, l.abortKey(request))
	if err != nil || len(r.Kvs) == 0 {
		return "", false, err
	}
	return string(r.Kvs[0].Value), true, nil
}

// RequestAbort asks the leader to abort the request id (or the request of
// the move id, "<request>.<n>") and returns the request's id. A move
// aborts unless it switched already; a request of several moves plans no
// more.
func RequestAbort(ctx context.Context, cli *clientv3.Client, cluster, id, why string) (string, error) {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		id = id[:i]
	}
	r, err := cli.Get(ctx, RequestsPrefix(cluster)+id)
	if err != nil {
		return "", err
	}
	if len(r.Kvs) == 0 {
		return "", fmt.Errorf("no request %s in flight", id)
	}
	if why == "" {
		why = "shardkv abort"
	}
	if _, err := cli.Put(ctx, AbortsPrefix(cluster)+id, why); err != nil {
		return "", err
	}
	return id, nil
}

// errMapMoved means the map no longer has the move's range on its source.
var errMapMoved = errors.New("the map changed: the range is no longer wholly on the move's source")

func (d *mover) commitSwitch(ctx context.Context, fenced time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	snap, err := Read(ctx, d.l.cli, d.l.cluster)
	if err != nil {
		return err
	}
	if owner, err := ownerOf(snap.Map, d.rec.Lo, d.rec.Hi); err != nil || owner != d.rec.SourceAddr {
		return fmt.Errorf("%w (owner %q, %v)", errMapMoved, owner, err)
	}
	next, err := MoveRange(snap.Map, d.rec.Lo, d.rec.Hi, d.rec.TargetAddr)
	if err != nil {
		return fmt.Errorf("%w: %v", errMapMoved, err)
	}
	next.Epoch = snap.Map.Epoch + 1
	data, err := rangemap.Marshal(next)
	if err != nil {
		return err
	}
	rec := *d.rec
	rec.State, rec.Epoch, rec.FenceMS, rec.Error = MoveSwitched, next.Epoch, time.Since(fenced).Milliseconds(), ""
	recData, _ := json.Marshal(&rec)
	mapKey, key := MapKey(d.l.cluster), d.l.moveKey(d.rec.ID)
	// An operator's abort and the switch exclude each other: the switch
	// happens only while no abort is recorded.
	r, err := d.l.cli.Txn(ctx).If(d.l.guard(),
		clientv3.Compare(clientv3.ModRevision(mapKey), "=", snap.ModRev),
		clientv3.Compare(clientv3.ModRevision(key), "=", d.rec.modRev),
		clientv3.Compare(clientv3.CreateRevision(d.l.abortKey(d.rec.Request)), "=", 0)).
		Then(clientv3.OpPut(mapKey, string(data)), clientv3.OpPut(key, string(recData))).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		if _, asked, err := d.l.abortAsked(ctx, d.rec.Request); err == nil && asked {
			return errAbortAsked
		}
		if d.l.stillLeader(ctx) {
			return errors.New("the map changed under the switch; reading it again")
		}
		return ErrConflict
	}
	rec.modRev = r.Header.Revision
	*d.rec = rec
	d.log.Info("move switched", "id", rec.ID, "epoch", rec.Epoch, "fenced_ms", rec.FenceMS)
	return nil
}

// pushAssignments sends the target, then the source, its assignment under
// the current map (the proxies push the same one, built by the same
// function). A node at a newer epoch already refuses it as stale: fine.
// A source left with nothing (remove-node) gets SHARD.UNASSIGN at the
// map's epoch: it keeps its keys on disk and refuses every key with the
// epoch error, which sends a proxy whose map is behind to the new map
// (a node that kept its last assignment would take that proxy's writes).
func (d *mover) pushAssignments(ctx context.Context) error {
	snap, err := Read(ctx, d.l.cli, d.l.cluster)
	if err != nil {
		return err
	}
	for _, addr := range []string{d.rec.TargetAddr, d.rec.SourceAddr} {
		host, port, err := hostPort(addr)
		if err != nil {
			return err
		}
		args := snap.Map.NodeAssignArgs(host, port)
		if args == nil {
			args = []string{"SHARD.UNASSIGN", "EPOCH", strconv.FormatUint(snap.Map.Epoch, 10)}
		}
		if err := d.l.nodeDo(ctx, addr, args); err != nil && !strings.HasPrefix(err.Error(), "ERR stale epoch") {
			return fmt.Errorf("SHARD.ASSIGN to %s: %w", addr, err)
		}
	}
	return nil
}

// nodeDo sends one command to the node at addr.
func (l *Leader) nodeDo(ctx context.Context, addr string, args []string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: l.cfg.NodePassword, Protocol: 2, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, PoolSize: 1})
	defer rdb.Close()
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	return rdb.Do(ctx, a...).Err()
}

// liveBytes reads INFO shard's shard_live_bytes of the node at addr.
func (l *Leader) liveBytes(ctx context.Context, addr string) (int64, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: l.cfg.NodePassword, Protocol: 2, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, PoolSize: 1})
	defer rdb.Close()
	text, err := rdb.Info(ctx, "shard").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "shard_live_bytes:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO shard of %s has no shard_live_bytes", addr)
}

// dropLeftCopies drops the range copies that aborted moves left on a
// target that did not answer (MoveRecord.CopyLeft) and reports whether
// some are still left. The copy is unreachable meanwhile: the target was
// never given the range (the abort is before any switch), so it answers
// every key of it with the epoch error. The drop is only of the parts of
// the range the target does not own in the current map (a later move
// may have given it some; that move's own drop emptied them first), and
// only while no move is in flight (one may be filling the target with a
// range it does not own yet); MIGRATE.DROP without FORCE is also refused
// by the node for a range that overlaps its assignment.
func (l *Leader) dropLeftCopies(ctx context.Context, log hclog.Logger) bool {
	moves, err := ReadMoves(ctx, l.cli, l.cluster, "")
	if err != nil {
		return true
	}
	var left []MoveRecord
	for _, mv := range moves {
		if !mv.Terminal() {
			return false // Serve runs it; this is called again after it
		}
		if mv.CopyLeft {
			left = append(left, mv)
		}
	}
	if len(left) == 0 {
		return false
	}
	snap, err := Read(ctx, l.cli, l.cluster)
	if err != nil {
		return true
	}
	still := false
	for i := range left {
		rec := &left[i]
		if !l.stillLeader(ctx) {
			return true
		}
		var deleted int64
		var failed error
		for j, p := range unowned(snap.Map, rec.Lo, rec.Hi, rec.TargetAddr) {
			mv := &migrate.Move{ID: rec.ID, Lo: p[0], Hi: p[1], Target: rec.TargetAddr, Password: l.cfg.NodePassword, Rev: l.rev, Log: log}
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n, err := mv.Drop(dctx, rec.TargetAddr, rec.ID+".left."+strconv.Itoa(j), 0, false)
			cancel()
			deleted += n
			if err != nil {
				failed = err
				break
			}
		}
		if failed != nil {
			log.Debug("an aborted move's copy on its target is not dropped yet", "id", rec.ID, "target", rec.TargetAddr, "error", failed)
			still = true
			continue
		}
		rec.CopyLeft = false
		rec.Error += fmt.Sprintf("; dropped once the target was back (%d keys)", deleted)
		d := &mover{l: l, rec: rec, log: log}
		if err := d.save(ctx); err != nil {
			still = true
			continue
		}
		log.Info("dropped an aborted move's copy on its target", "id", rec.ID, "target", rec.TargetAddr, "keys", deleted)
	}
	return still
}

// unowned returns the parts of [lo,hi) that addr does not own under m.
func unowned(m *rangemap.Map, lo, hi float64, addr string) [][2]float64 {
	var out [][2]float64
	for _, s := range m.Shards {
		a, b := max(s.Start, lo), min(s.End, hi)
		if a >= b || s.Addr() == addr {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
			continue
		}
		out = append(out, [2]float64{a, b})
	}
	return out
}
