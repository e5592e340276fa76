package shardnode

import (
	"runtime"
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
// Under appendfsync always the leader keeps the lead until its batch's
// fsync is done, so the runs that arrive during an fsync are written with
// one write and covered by the next fsync. Handing the lead on before the
// fsync (so the next batch is written while this one's fsync is in flight,
// an fsync covering everything written before it started) was measured:
// with 50 clients at -P 1 it gave the same number of commands per fsync
// and the same throughput, but four times as many writes (every run that
// arrived during an fsync was written on its own), and CPU per request is
// what limits the node on a machine it shares with its clients.

// commitReq is one connection's run of keyed commands.
type commitReq struct {
	c    *client
	cmds []redcon.Command
	sp   []*cmdSpec
	// mark is len(c.out) before the run: a failed Update truncates the
	// replies back to it. ran is how many of cmds were executed: the run
	// stops early once the replies fill the pass (repliesFull), and the
	// connection executes the rest later.
	mark int
	ran  int
	// wake tells a waiting connection its run is done (false) or that it
	// leads the next commit (true).
	wake chan bool
}

// writeGroup is the queue of runs waiting to be committed.
type writeGroup struct {
	mu      sync.Mutex
	pending []*commitReq
	leading bool
	// solo is the connection whose run was the whole last batch, if it
	// was alone.
	solo *client
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
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	// Let the goroutines that are ready run first: connections the poller
	// woke together with this one queue their runs behind it (one write
	// takes them all), and the previous batch's connections send their
	// replies, which brings their next requests sooner.
	//
	// When the last batch was this connection's run alone and nothing
	// else is queued, one connection is writing (a proxy's pipelined
	// connection, a single client): the yield would find no one to wait
	// for and cost a trip through the scheduler (measured: half the
	// context switches per batch), so the run is committed at once. Any
	// other connection's commit in between brings the yield back.
	g.mu.Lock()
	if g.solo != r.c || len(g.pending) > 1 {
		g.mu.Unlock()
		runtime.Gosched()
		g.mu.Lock()
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
	g.solo = nil
	if n == 1 {
		g.solo = batch[0].c
	}
	g.mu.Unlock()

	seq, served, err := s.commitBatch(batch)
	if err == nil {
		if err = s.db.WaitDurable(seq); err != nil {
			s.failBatch(batch, err)
		}
	}
	s.handBack(served, err)
	// Hand the lead on once this batch is durable: the runs that queued
	// during its fsync are written together, and the next fsync covers
	// them all.
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].wake <- true
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	// Send the batch's replies back to back, as Redis does after its
	// fsync, before waking the connections: the clients have them a
	// goroutine switch sooner, and writes in a row are cheaper for the
	// kernel than the same writes spread over time. Under min-acks the
	// replies wait for the replicas first (replica.go): each connection
	// sends its own.
	for _, b := range batch {
		if s.repl.minAcks.Load() > 0 {
			break
		}
		b.c.flushOut()
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
// the fsync; it returns what to pass to WaitDurable, and the blocked
// clients the batch's writes served (blocking.go), to be handed back once
// it is durable. The connections of the batch wait, so their state is the
// leader's to use until they are woken. A run stops after a blocking pop
// that blocked: the rest of its pipeline waits.
func (s *Server) commitBatch(batch []*commitReq) (uint64, []*waiter, error) {
	for _, r := range batch {
		r.mark, r.ran = len(r.c.out), 0
	}
	var served []*waiter
	seq, err := s.db.UpdateNoWait(func(tx *bitcask.Tx) error {
		for _, r := range batch {
			c := r.c
			c.txs.tx = tx.Select(c.sess.DB())
			c.st = &c.txs
			c.streamOK = true
			for r.ran < len(r.cmds) && (r.ran == 0 || !c.repliesFull()) && c.blocked == nil {
				c.execOne(r.sp[r.ran], r.cmds[r.ran].Args)
				r.ran++
				if s.blocks.readyN.Load() > 0 {
					// Served after the command that made a key ready,
					// before the next one, as Redis does.
					s.serveReady(tx)
				}
			}
			c.txs.tx, c.st, c.streamOK = nil, nil, false
		}
		served = s.blocks.takeServed()
		return nil
	})
	if err != nil {
		s.failBatch(batch, err)
	}
	return seq, served, err
}

// failBatch replaces the replies of every command of the batch by the
// storage error: nothing of the batch was applied, or (a failed fsync) it
// is not known to be durable.
func (s *Server) failBatch(batch []*commitReq, err error) {
	msg := s.storageError(err)
	for _, r := range batch {
		if r.ran == 0 {
			r.ran = len(r.cmds) // the Update ran none: all of them failed
		}
		// A blocking pop that blocked in the failed Update gets the error
		// as its reply: it waits no more.
		r.c.dropBlocked()
		r.c.out = r.c.out[:r.mark]
		r.c.closeStream() // a GET's streamed reply is one of them
		for range r.cmds[:r.ran] {
			r.c.out = resp.AppendError(r.c.out, msg)
		}
	}
}
