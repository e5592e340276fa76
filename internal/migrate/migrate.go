// Package migrate drives the online move of a sub-range from one shard node
// to another (docs/RESHARDING.md, "A move, step by step"): it clears the
// target's copy of the range, starts the source's stream, waits until the
// stream's lag is below a number of records, fences the range on the
// source, waits until the source drained it and the target acknowledged
// the last record, calls the commit callback (the ownership switch, step
// 6, is the caller's), then deletes the moved keys on the source. A
// failure before the commit rolls back: the source's stream is stopped,
// its fence lifted, and the target's partial copy deleted.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
)

// Move is one move of the range [Lo,Hi) of positions.
type Move struct {
	ID     string
	Lo, Hi float64
	// Source and Target are the nodes' addresses as this process reaches
	// them; TargetAdvertise is the target's address as the source reaches
	// it (Target when empty).
	Source, Target, TargetAdvertise string
	Password                        string
	// RateMB limits the stream in MB/s (0: unlimited).
	RateMB float64
	// FenceLag is the lag in records below which the range is fenced: the
	// keys waiting to be sent plus the records (a key, or a chunk of a
	// collection) sent and not yet acknowledged by the target.
	FenceLag int64
	// FenceTimeout is how long a write to the fenced range waits before
	// TRYAGAIN on the source.
	FenceTimeout time.Duration
	// Rev is the leading controller's election revision, sent as REV with
	// SHARD.FENCE, SHARD.UNFENCE and MIGRATE.DROP (0: not sent).
	Rev int64
	// DropRate limits the deletes of the moved keys on the source, in
	// keys a second (0: unlimited).
	DropRate float64
	// Commit switches ownership of the range to the target (etcd map
	// epoch+1, SHARD.OWN). It is called with the range fenced and fully
	// copied. An error from it rolls the move back, so it must return an
	// error only when the switch did not happen.
	Commit func(ctx context.Context) error
	// Poll is the interval between status reads (10 ms when 0).
	Poll time.Duration
	Log  hclog.Logger
}

// Status is MIGRATE.STATUS of a stream.
type Status struct {
	Phase                                     string
	Seq0, Records, Bytes, Lag, SentSeq, Acked int64
	Drained                                   bool
	LastSeq                                   int64
	Error                                     string
	Deleted                                   int64
}

// Result is what a completed move measured.
type Result struct {
	Seq0, LastSeq, Records, Bytes int64
	// Copy is the time from the start to the fence; Drain the time from
	// the fence to the target's acknowledgement of the last record (the
	// fence's length is Drain plus the commit's time).
	Copy, Drain time.Duration
	// Deleted is the number of moved keys deleted on the source.
	Deleted int64
}

func (m *Move) client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: m.Password, Protocol: 2, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
}

func (m *Move) lo() string { return strconv.FormatFloat(m.Lo, 'g', -1, 64) }
func (m *Move) hi() string { return strconv.FormatFloat(m.Hi, 'g', -1, 64) }

// ReadStatus reads MIGRATE.STATUS id of the node at rdb.
func ReadStatus(ctx context.Context, rdb *redis.Client, id string) (Status, error) {
	r, err := rdb.Do(ctx, "MIGRATE.STATUS", id).Result()
	if err != nil {
		return Status{}, err
	}
	var v []any
	switch r := r.(type) {
	case []any: // RESP2: a flat array
		v = r
	case map[any]any: // RESP3
		for k, x := range r {
			v = append(v, k, x)
		}
	default:
		return Status{}, fmt.Errorf("MIGRATE.STATUS replied %T", r)
	}
	var st Status
	for i := 0; i+1 < len(v); i += 2 {
		k, _ := v[i].(string)
		n, _ := v[i+1].(int64)
		s, _ := v[i+1].(string)
		switch k {
		case "phase":
			st.Phase = s
		case "seq0":
			st.Seq0 = n
		case "records":
			st.Records = n
		case "bytes":
			st.Bytes = n
		case "lag":
			st.Lag = n
		case "sent_seq":
			st.SentSeq = n
		case "acked_seq":
			st.Acked = n
		case "drained":
			st.Drained = n == 1
		case "last_seq":
			st.LastSeq = n
		case "error":
			st.Error = s
		case "deleted":
			st.Deleted = n
		}
	}
	return st, nil
}

func (m *Move) poll() time.Duration {
	if m.Poll > 0 {
		return m.Poll
	}
	return 10 * time.Millisecond
}

func (m *Move) log() hclog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return hclog.NewNullLogger()
}

// waitStream polls the source's stream until done says it is there.
func (m *Move) waitStream(ctx context.Context, src *redis.Client, done func(Status) bool) (Status, error) {
	for {
		st, err := ReadStatus(ctx, src, m.ID)
		if err != nil {
			return st, fmt.Errorf("source: %w", err)
		}
		if st.Phase == "failed" || st.Phase == "aborted" {
			return st, fmt.Errorf("source stream %s: %s", st.Phase, st.Error)
		}
		if done(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(m.poll()):
		}
	}
}

// Drop deletes the range's keys on the node at addr under job id and waits
// until it is done.
func (m *Move) Drop(ctx context.Context, addr, id string, rate float64, force bool) (int64, error) {
	rdb := m.client(addr)
	defer rdb.Close()
	args := []any{"MIGRATE.DROP", id, m.lo(), m.hi()}
	if rate > 0 {
		args = append(args, "RATE", strconv.FormatFloat(rate, 'g', -1, 64))
	}
	if force {
		args = append(args, "FORCE")
	}
	args = m.withRev(args)
	if err := rdb.Do(ctx, args...).Err(); err != nil {
		return 0, err
	}
	for {
		st, err := ReadStatus(ctx, rdb, id)
		if err != nil {
			return 0, err
		}
		switch st.Phase {
		case "done":
			rdb.Do(ctx, "MIGRATE.ABORT", id) // forget the finished drop
			return st.Deleted, nil
		case "failed", "aborted":
			return st.Deleted, fmt.Errorf("drop %s: %s", st.Phase, st.Error)
		}
		select {
		case <-ctx.Done():
			return st.Deleted, ctx.Err()
		case <-time.After(m.poll()):
		}
	}
}

// Rollback stops the source's stream, lifts its fence, and deletes the
// target's copy of the range. It does every step it can and returns the
// errors of those that failed (a node that is down: redo it once it is
// back; every step may be redone).
func (m *Move) Rollback(ctx context.Context) error {
	var errs []error
	if err := m.EndStream(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.Unfence(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := m.Drop(ctx, m.Target, m.ID+".rollback", 0, false); err != nil {
		errs = append(errs, fmt.Errorf("target drop: %w", err))
	}
	m.log().Warn("move rolled back", "id", m.ID, "errors", errors.Join(errs...))
	return errors.Join(errs...)
}

// IsNoMigration reports whether err is a node's reply that it has no
// stream or drop of that id (a restarted node forgot it).
func IsNoMigration(err error) bool {
	return err != nil && err.Error() == "ERR no such migration"
}

// Prepare is step 2: the target holds nothing of the range (a partial
// copy of an earlier attempt is removed).
func (m *Move) Prepare(ctx context.Context) error {
	if _, err := m.Drop(ctx, m.Target, m.ID+".prepare", 0, false); err != nil {
		return fmt.Errorf("target prepare: %w", err)
	}
	return nil
}

// Start starts the source's stream (the same id again is the same stream)
// and returns seq0.
func (m *Move) Start(ctx context.Context) (int64, error) {
	src := m.client(m.Source)
	defer src.Close()
	adv := m.TargetAdvertise
	if adv == "" {
		adv = m.Target
	}
	args := []any{"MIGRATE.START", m.ID, m.lo(), m.hi(), adv}
	if m.RateMB > 0 {
		args = append(args, "RATE", strconv.FormatFloat(m.RateMB, 'g', -1, 64))
	}
	seq0, err := src.Do(ctx, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("source start: %w", err)
	}
	return seq0, nil
}

// Status reads the source's stream status.
func (m *Move) Status(ctx context.Context) (Status, error) {
	src := m.client(m.Source)
	defer src.Close()
	return ReadStatus(ctx, src, m.ID)
}

// CaughtUp reports whether the stream's lag is below the fence lag.
func (m *Move) CaughtUp(st Status) bool {
	return st.Phase == "catchup" && st.Lag+st.SentSeq-st.Acked < m.FenceLag
}

// Drained reports whether the fenced stream is drained and acknowledged.
func Drained(st Status) bool { return st.Drained && st.Acked >= st.LastSeq }

// Fence fences the range on the source (step 5); fencing it again is
// harmless.
func (m *Move) Fence(ctx context.Context) error {
	src := m.client(m.Source)
	defer src.Close()
	// The id lets a source whose fence outlives its timeout read the
	// move's outcome in etcd (docs/RESHARDING.md, "The durable fence").
	fargs := []any{"SHARD.FENCE", m.lo(), m.hi(), "ID", m.ID}
	if m.FenceTimeout > 0 {
		fargs = append(fargs, "TIMEOUT", strconv.FormatInt(m.FenceTimeout.Milliseconds(), 10))
	}
	fargs = m.withRev(fargs)
	if err := src.Do(ctx, fargs...).Err(); err != nil {
		return fmt.Errorf("source fence: %w", err)
	}
	return nil
}

// Unfence lifts the source's fence of the range.
func (m *Move) Unfence(ctx context.Context) error {
	src := m.client(m.Source)
	defer src.Close()
	if err := src.Do(ctx, m.withRev([]any{"SHARD.UNFENCE", m.lo(), m.hi()})...).Err(); err != nil {
		return fmt.Errorf("source unfence: %w", err)
	}
	return nil
}

// EndStream stops and forgets the source's stream; a stream already gone
// is not an error.
func (m *Move) EndStream(ctx context.Context) error {
	src := m.client(m.Source)
	defer src.Close()
	if err := src.Do(ctx, "MIGRATE.ABORT", m.ID).Err(); err != nil && !IsNoMigration(err) {
		return fmt.Errorf("source end of stream: %w", err)
	}
	return nil
}

// Cleanup is step 7: the moved keys are deleted on the source.
func (m *Move) Cleanup(ctx context.Context) (int64, error) {
	n, err := m.Drop(ctx, m.Source, m.ID+".cleanup", m.DropRate, true)
	if err != nil {
		return n, fmt.Errorf("source cleanup: %w", err)
	}
	return n, nil
}

// Run carries the move out. On a failure before the commit it rolls back
// and returns the failure joined with the rollback's errors.
func (m *Move) Run(ctx context.Context) (res Result, err error) {
	if m.Commit == nil {
		return res, errors.New("migrate: Move.Commit is nil")
	}
	log := m.log()
	src := m.client(m.Source)
	defer src.Close()
	committed := false
	defer func() {
		if err != nil && !committed {
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = errors.Join(err, m.Rollback(rctx))
			cancel()
		}
	}()
	if err := m.Prepare(ctx); err != nil {
		return res, err
	}
	start := time.Now()
	seq0, err := m.Start(ctx)
	if err != nil {
		return res, err
	}
	res.Seq0 = seq0
	log.Info("move started", "id", m.ID, "seq0", seq0)
	// Steps 3-4: the snapshot pass, then catch-up until the lag is small.
	st, err := m.waitStream(ctx, src, m.CaughtUp)
	if err != nil {
		return res, err
	}
	res.Copy = time.Since(start)
	log.Info("move caught up", "id", m.ID, "records", st.Records, "bytes", st.Bytes, "lag", st.Lag)
	// Step 5: fence the range only, and drain it.
	fenceAt := time.Now()
	if err := m.Fence(ctx); err != nil {
		return res, err
	}
	st, err = m.waitStream(ctx, src, Drained)
	if err != nil {
		return res, err
	}
	res.LastSeq, res.Records, res.Bytes = st.LastSeq, st.Records, st.Bytes
	res.Drain = time.Since(fenceAt)
	log.Info("move drained", "id", m.ID, "last_seq", st.LastSeq, "acked_seq", st.Acked, "drain", res.Drain)
	// Step 6 is the caller's.
	if err := m.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit: %w", err)
	}
	committed = true
	// Step 7: the source stops the stream and deletes the moved keys; the
	// fence stays until the source is told it no longer owns the range.
	if err := m.EndStream(ctx); err != nil {
		return res, err
	}
	n, err := m.Cleanup(ctx)
	res.Deleted = n
	if err != nil {
		return res, err
	}
	log.Info("move done", "id", m.ID, "deleted", n)
	return res, nil
}

// withRev appends "REV n" when the move carries its controller's election
// revision: the node refuses the command once it has seen a newer
// leader's (docs/RESHARDING.md, "A deposed leader's late command").
func (m *Move) withRev(args []any) []any {
	if m.Rev > 0 {
		args = append(args, "REV", strconv.FormatInt(m.Rev, 10))
	}
	return args
}
