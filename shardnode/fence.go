package shardnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// The fence of a move (docs/RESHARDING.md, step 5): writes to a fenced
// range wait, then get TRYAGAIN; reads and other ranges go on. A fence is
// durable: SHARD.FENCE writes fence.json (temp file, fsync, rename) before
// it replies, and a node restarted during a move starts fenced, since the
// move may have committed while it was down and the range be another
// node's. A fence ends by SHARD.UNFENCE, by an assignment at a newer epoch
// that no longer gives the node the range (the move committed: the node
// refuses the range with WRONGSHARD from then on), or, for a fence of a
// move id held past its timeout on a node that reads etcd, by the move's
// recorded state saying it was aborted.

const fenceFile = "fence.json"

// fenceRange is one fenced range.
type fenceRange struct {
	posRange
	// id is the move's id ("" when none was given): SHARD.UNFENCE ID and
	// the move's state in etcd name it.
	id string
	// epoch is the map epoch the fence was set at (EPOCH, else the
	// node's assignment's): an assignment at a newer epoch that drops the
	// range ends it.
	epoch uint64
	// timeout is how long a write waits before TRYAGAIN, and how long the
	// fence may be held before the node reads the move's state.
	timeout time.Duration
	// rev is the controller's election revision that set it (REV; 0 when
	// none was given): an UNFENCE of an older leader does not lift it.
	rev int64
}

// fenceSet is the fenced ranges; replaced, never mutated. done is closed
// when it is replaced, so that waiting writers look again.
type fenceSet struct {
	ranges []fenceRange
	done   chan struct{}
}

// covers returns the fence that holds position p, or nil.
func (f *fenceSet) covers(p float64) *fenceRange {
	for i := range f.ranges {
		if f.ranges[i].has(p) {
			return &f.ranges[i]
		}
	}
	return nil
}

// fenceDoc is fence.json.
type fenceDoc struct {
	Fences []fenceJSON `json:"fences"`
}

type fenceJSON struct {
	Lo        float64 `json:"lo"`
	Hi        float64 `json:"hi"`
	ID        string  `json:"id,omitempty"`
	Epoch     uint64  `json:"epoch,omitempty"`
	TimeoutMS int64   `json:"timeout_ms"`
	Rev       int64   `json:"rev,omitempty"`
}

// Move states a node reads at /shardkv/<cluster>/moves/<id> (the
// controller's records, docs/RESHARDING.md) for a fence held past its
// timeout.
var (
	moveAborted   = []string{"aborting", "aborted"}
	moveCommitted = []string{"switched", "cleanup", "done"}
)

// fencePoll is how often a fence held past its timeout reads the move's
// state again while the state decides nothing.
const fencePoll = time.Second

// setFences persists ranges and makes them the fence; the caller holds
// m.mu. Nothing changes when the file cannot be written.
func (s *Server) setFences(ranges []fenceRange) error {
	doc := fenceDoc{Fences: make([]fenceJSON, 0, len(ranges))}
	for _, r := range ranges {
		doc.Fences = append(doc.Fences, fenceJSON{Lo: r.lo, Hi: r.hi, ID: r.id, Epoch: r.epoch, TimeoutMS: r.timeout.Milliseconds(), Rev: r.rev})
	}
	if len(ranges) == 0 {
		if err := os.Remove(filepath.Join(s.cfg.Dir, fenceFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := syncDir(s.cfg.Dir); err != nil {
			return err
		}
	} else {
		data, err := json.MarshalIndent(&doc, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(s.cfg.Dir, fenceFile, append(data, '\n')); err != nil {
			return err
		}
	}
	m := &s.mig
	old := m.fence.Load()
	if len(ranges) == 0 {
		m.fence.Store(nil)
	} else {
		m.fence.Store(&fenceSet{ranges: ranges, done: make(chan struct{})})
	}
	if old != nil {
		close(old.done)
	}
	// A stream whose range is now fenced drains at once instead of at
	// its next tick: the fence lasts that much less.
	for _, j := range m.sources {
		j.poke()
	}
	return nil
}

// currentFences is a copy of the fenced ranges.
func (m *migrations) currentFences() []fenceRange {
	if f := m.fence.Load(); f != nil {
		return slices.Clone(f.ranges)
	}
	return nil
}

// loadFences reads fence.json at start: the node serves fenced as it was.
func (s *Server) loadFences() error {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, fenceFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shardnode: %w", err)
	}
	var doc fenceDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("shardnode: %s: %w", fenceFile, err)
	}
	var ranges []fenceRange
	for _, f := range doc.Fences {
		if !(f.Lo >= 0 && f.Hi <= 1 && f.Lo < f.Hi) {
			return fmt.Errorf("shardnode: %s: range [%v,%v) is not inside [0,1)", fenceFile, f.Lo, f.Hi)
		}
		ranges = append(ranges, fenceRange{posRange: posRange{f.Lo, f.Hi}, id: f.ID, epoch: f.Epoch,
			timeout: time.Duration(f.TimeoutMS) * time.Millisecond, rev: f.Rev})
		s.mig.noteRev(f.Rev)
	}
	if a := s.assign.Load(); a != nil && len(ranges) > 0 {
		// A crash between the assignment's write and the fence's: the
		// assignment at the newer epoch ended it.
		ranges = slices.DeleteFunc(ranges, func(r fenceRange) bool { return a.Epoch > r.epoch && !a.overlaps(r.lo, r.hi) })
	}
	if len(ranges) > 0 {
		s.mig.fence.Store(&fenceSet{ranges: ranges, done: make(chan struct{})})
		for _, r := range ranges {
			s.log.Warn("range fenced since before the restart: writes to it wait, then get TRYAGAIN, until SHARD.UNFENCE, an assignment without it, or the move's outcome",
				"lo", r.lo, "hi", r.hi, "id", r.id, "epoch", r.epoch)
		}
	}
	return nil
}

// startFenceWatches starts the timeout watch of every fence loaded at
// start.
func (s *Server) startFenceWatches() {
	for _, r := range s.mig.currentFences() {
		s.watchFence(r)
	}
}

// watchFence waits out the fence's timeout; if the fence is still there
// and has a move id, it asks the move's state (Config.MoveState) what to
// do: aborted, the node unfences; committed, it keeps refusing writes
// until the assignment without the range comes; anything else, or no
// answer, it keeps the fence and asks again. Never the timeout alone
// lifts a fence: the move may have committed, and the range be the
// target's (docs/RESHARDING.md).
func (s *Server) watchFence(r fenceRange) {
	if r.id == "" {
		return
	}
	m := &s.mig
	m.mu.Lock()
	if m.watching[r] {
		m.mu.Unlock()
		return // the same fence again: its watch runs
	}
	if m.watching == nil {
		m.watching = make(map[fenceRange]bool)
	}
	m.watching[r] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.watching, r)
			m.mu.Unlock()
		}()
		wait := r.timeout
		warned, failing := false, false
		for {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.mig.closed:
				t.Stop()
				return
			}
			wait = fencePoll
			if !s.fenceHeld(r) {
				return
			}
			if s.cfg.MoveState == nil {
				if !warned {
					s.log.Warn("fence held past its timeout; without -etcd the node cannot read the move's outcome: it stays until SHARD.UNFENCE or an assignment without the range",
						"lo", r.lo, "hi", r.hi, "id", r.id)
					warned = true
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			state, found, err := s.cfg.MoveState(ctx, r.id)
			cancel()
			if err == nil {
				failing = false
			}
			switch {
			case err != nil:
				if !failing { // once per outage: it asks every second
					s.log.Warn("fence held past its timeout; reading the move's state failed, the range stays fenced", "id", r.id, "error", err)
				}
				failing = true
			case found && slices.Contains(moveAborted, state):
				if s.unfenceIfHeld(r) {
					s.log.Info("range unfenced: its move was aborted", "lo", r.lo, "hi", r.hi, "id", r.id, "state", state)
				}
				return
			case found && slices.Contains(moveCommitted, state):
				s.log.Info("fence held past its timeout: the move committed, the range stays fenced until the assignment without it",
					"lo", r.lo, "hi", r.hi, "id", r.id, "state", state)
				return
			case !warned:
				s.log.Warn("fence held past its timeout: the move is not over, the range stays fenced", "id", r.id, "state", state, "found", found)
				warned = true
			}
		}
	}()
}

// fenceHeld reports whether the fence r is still set.
func (s *Server) fenceHeld(r fenceRange) bool {
	f := s.mig.fence.Load()
	return f != nil && slices.Contains(f.ranges, r)
}

// unfenceIfHeld removes the fence r if it is still set.
func (s *Server) unfenceIfHeld(r fenceRange) bool {
	m := &s.mig
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.currentFences()
	before := len(cur)
	keep := slices.DeleteFunc(cur, func(x fenceRange) bool { return x == r })
	if len(keep) == before {
		return false
	}
	if err := s.setFences(keep); err != nil {
		s.log.Error("persisting the fence failed; the range stays fenced", "error", err)
		return false
	}
	return true
}

// dropFencesOutside ends the fences a newer assignment a no longer gives
// the node: the move committed, and the node refuses the range itself.
// The caller holds stateMu, after a was stored.
func (s *Server) dropFencesOutside(a *Assignment) {
	m := &s.mig
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.currentFences()
	before := len(cur)
	keep := slices.DeleteFunc(cur, func(r fenceRange) bool {
		return a.Epoch > r.epoch && !a.overlaps(r.lo, r.hi)
	})
	if len(keep) == before {
		return
	}
	if err := s.setFences(keep); err != nil {
		// The range is refused as another node's anyway: a fence left
		// over only makes its writes TRYAGAIN instead of WRONGSHARD.
		s.log.Error("persisting the fence failed", "error", err)
		return
	}
	s.log.Info("fence ended by an assignment without the range", "epoch", a.Epoch, "fences_left", len(keep))
}

// SHARD.FENCE lo hi [TIMEOUT ms] [ID id] [EPOCH n]: writes to keys of
// [lo,hi) wait for the fence to lift, at most the timeout, then get
// TRYAGAIN; reads and other ranges go on. Persisted before +OK. The same
// range with the same id again is the same fence (a controller redoing
// its step).
func cmdShardFence(c *client, args [][]byte) {
	args, rev, ok := takeRev(c, args)
	if !ok {
		return
	}
	if len(args) < 3 {
		c.arityErr("shard.fence")
		return
	}
	rng, ok := parseRange(args[1], args[2])
	if !ok {
		c.errReply(errBadRange)
		return
	}
	s := c.srv
	fr := fenceRange{posRange: rng, timeout: defaultFenceTimeout, epoch: epochOf(s.assign.Load()), rev: rev}
	for i := 3; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.errReply(errSyntax)
			return
		}
		switch {
		case eqFold(args[i], "timeout"):
			ms, ok := parseInt(args[i+1])
			if !ok || ms < 0 {
				c.errReply(errNotInteger)
				return
			}
			fr.timeout = time.Duration(ms) * time.Millisecond
		case eqFold(args[i], "id"):
			fr.id = string(args[i+1])
		case eqFold(args[i], "epoch"):
			e, err := strconv.ParseUint(string(args[i+1]), 10, 64)
			if err != nil {
				c.errReply(errNotInteger)
				return
			}
			fr.epoch = e
		default:
			c.errReply(errSyntax)
			return
		}
	}
	m := &s.mig
	m.mu.Lock()
	next := slices.DeleteFunc(m.currentFences(), func(r fenceRange) bool { return r.posRange == rng && r.id == fr.id })
	next = append(next, fr)
	err := s.setFences(next)
	m.mu.Unlock()
	if err != nil {
		s.log.Error("persisting the fence failed", "error", err)
		c.errReply("ERR could not persist the fence: " + err.Error())
		return
	}
	s.log.Info("range fenced", "lo", rng.lo, "hi", rng.hi, "timeout", fr.timeout, "id", fr.id, "epoch", fr.epoch)
	s.watchFence(fr)
	c.ok()
}

// epochOf is the epoch of a (0 without an assignment).
func epochOf(a *Assignment) uint64 {
	if a == nil {
		return 0
	}
	return a.Epoch
}

// SHARD.UNFENCE [lo hi | ID id] [REV n]: lifts the fences of the range,
// of the move id, or every fence. With REV, it is refused once the node
// has seen a newer leader's REV (takeRev): a fence's REV is kept in
// fence.json, so a restart does not forget the newer leader.
func cmdShardUnfence(c *client, args [][]byte) {
	args, _, ok := takeRev(c, args)
	if !ok {
		return
	}
	var drop func(fenceRange) bool
	switch {
	case len(args) == 1:
		drop = func(fenceRange) bool { return true }
	case len(args) == 3 && eqFold(args[1], "id"):
		id := string(args[2])
		drop = func(r fenceRange) bool { return r.id == id }
	case len(args) == 3:
		rng, ok := parseRange(args[1], args[2])
		if !ok {
			c.errReply(errBadRange)
			return
		}
		drop = func(r fenceRange) bool { return r.posRange == rng }
	default:
		c.errReply(errSyntax)
		return
	}
	s := c.srv
	m := &s.mig
	m.mu.Lock()
	cur := m.currentFences()
	before := len(cur)
	keep := slices.DeleteFunc(cur, drop)
	var err error
	if len(keep) != before {
		err = s.setFences(keep)
	}
	m.mu.Unlock()
	if err != nil {
		s.log.Error("persisting the fence failed; the range stays fenced", "error", err)
		c.errReply("ERR could not persist the fence: " + err.Error())
		return
	}
	s.log.Info("range unfenced", "args", fmt.Sprint(stringArgs(args[1:])), "lifted", before-len(keep))
	c.ok()
}

func stringArgs(args [][]byte) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

// takeRev strips a trailing "REV n" from the controller's commands that
// change a move's ranges (SHARD.FENCE, SHARD.UNFENCE, MIGRATE.DROP): n is
// the leading controller's election revision, which only grows from one
// leader to the next. A command whose n is below the highest the node has
// seen is a deposed leader's, sent late (paused between its leadership
// check and the command): it is refused. A command without REV (an
// operator's, a test's) is not checked. ok is false when a reply was
// written.
func takeRev(c *client, args [][]byte) (_ [][]byte, rev int64, ok bool) {
	n := len(args)
	if n < 3 || !eqFold(args[n-2], "rev") {
		return args, 0, true
	}
	rev, good := parseInt(args[n-1])
	if !good || rev <= 0 {
		c.errReply(errNotInteger)
		return nil, 0, false
	}
	if seen := c.srv.mig.noteRev(rev); seen > rev {
		c.errReply(fmt.Sprintf("ERR stale controller: revision %d, this node has seen %d", rev, seen))
		return nil, 0, false
	}
	return args[:n-2], rev, true
}

// noteRev records rev as seen and returns the highest seen.
func (m *migrations) noteRev(rev int64) int64 {
	for {
		cur := m.ctlRev.Load()
		if rev <= cur {
			return cur
		}
		if m.ctlRev.CompareAndSwap(cur, rev) {
			return rev
		}
	}
}
