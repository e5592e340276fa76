package shardnode

import (
	"sync"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// Writes of different connections are grouped the way LevelDB groups its
// writers: a connection with a run of commands to commit queues it; if no
// connection is committing, it becomes the leader and commits every queued
// run in one bitcask Update (one write system call, and under appendfsync
// always one fsync), then hands the lead to a connection that queued
// meanwhile. Without contention a run is committed by its own connection
// at once; under load, runs that arrive while a commit is in flight share
// the next one. The runs of one Update are executed in queue order, so the
// result is the same as committing them one by one.
//
// Under appendfsync always the leader hands the lead on as soon as its
// batch is written, before it waits for the fsync: the next batch is
// executed and written while this one's fsync is in flight, and its fsync
// starts the moment this one ends (bitcask's group commit: an fsync covers
// everything written before it started). The disk never idles between
// fsyncs waiting for the next batch to be built, and a batch's replies
// leave once its own fsync is done.

// commitReq is one connection's run of keyed commands.
type commitReq struct {
	c    *client
	cmds []redcon.Command
	sp   []*cmdSpec
	// mark is len(c.out) before the run: a failed Update truncates the
	// replies back to it.
	mark int
	// wake tells a waiting connection its run is done (false) or that it
	// leads the next commit (true).
	wake chan bool
}

// writeGroup is the queue of runs waiting to be committed.
type writeGroup struct {
	mu      sync.Mutex
	pending []*commitReq
	leading bool
	// spare batches, reused so that a commit does not allocate one.
	spare [][]*commitReq
}

// maxGroupRuns bounds how many runs one Update takes.
const maxGroupRuns = 256

// commitRun executes r's commands in a storage transaction, alone or with
// other connections' runs, and returns when its replies are in r.c.out
// (under appendfsync always, once they are durable).
func (s *Server) commitRun(r *commitReq) {
	g := &s.writes
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		if lead := <-r.wake; !lead {
			return
		}
		g.mu.Lock()
	} else {
		g.leading = true
	}
	n := min(len(g.pending), maxGroupRuns)
	var batch []*commitReq
	if k := len(g.spare); k > 0 {
		batch, g.spare = g.spare[k-1][:0], g.spare[:k-1]
	}
	batch = append(batch, g.pending[:n]...)
	rest := copy(g.pending, g.pending[n:])
	clear(g.pending[rest:])
	g.pending = g.pending[:rest]
	g.mu.Unlock()

	seq, err := s.commitBatch(batch)

	// Hand the lead on now: the next batch is written while this one
	// waits for its fsync.
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].wake <- true
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	if err == nil {
		if err = s.db.WaitDurable(seq); err != nil {
			s.failBatch(batch, err)
		}
	}
	for _, b := range batch {
		if b != r {
			b.wake <- false
		}
	}
	clear(batch)
	g.mu.Lock()
	if len(g.spare) < 4 {
		g.spare = append(g.spare, batch)
	}
	g.mu.Unlock()
}

// commitBatch runs the batch's runs in one Update, without waiting for
// the fsync; it returns what to pass to WaitDurable. The connections of
// the batch wait, so their state is the leader's to use until they are
// woken.
func (s *Server) commitBatch(batch []*commitReq) (uint64, error) {
	for _, r := range batch {
		r.mark = len(r.c.out)
	}
	seq, err := s.db.UpdateNoWait(func(tx *bitcask.Tx) error {
		for _, r := range batch {
			c := r.c
			c.txs.tx = tx
			c.st = &c.txs
			for i := range r.cmds {
				c.execOne(r.sp[i], r.cmds[i].Args)
			}
			c.txs.tx, c.st = nil, nil
		}
		return nil
	})
	if err != nil {
		s.failBatch(batch, err)
	}
	return seq, err
}

// failBatch replaces the replies of every command of the batch by the
// storage error: nothing of the batch was applied, or (a failed fsync) it
// is not known to be durable.
func (s *Server) failBatch(batch []*commitReq, err error) {
	msg := s.storageError(err)
	for _, r := range batch {
		r.c.out = r.c.out[:r.mark]
		for range r.cmds {
			r.c.out = resp.AppendError(r.c.out, msg)
		}
	}
}
