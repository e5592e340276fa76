package shardnode

import (
	"errors"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// What the node records about the commands it serves (internal/conncmd's
// Observer): per command the count, the error replies and the latency of
// its pipeline; the slow log; the latency monitor.
//
// A pipeline's latency runs from startBatch, when its commands were parsed,
// to endBatch, when the last reply is in the connection's output: it holds
// the wait for the commit and, under appendfsync always, the fsync. Every
// command of the pipeline is recorded with it (their replies leave
// together). Two clock reads per pipeline, not per command: startBatch read
// the clock before for the command time snapshot already.

func (s *Server) newObserver() *conncmd.Observer {
	return conncmd.NewObserver(
		func() int64 { cmds, _, _, _, _ := s.totals(); return cmds },
		func() int64 { _, in, _, _, _ := s.totals(); return in },
		func() int64 { _, _, out, _, _ := s.totals(); return out },
	)
}

// startClock starts a pipeline's clock and returns the command time
// snapshot in Unix milliseconds.
func (c *client) startClock() int64 {
	c.batchT = time.Now()
	return c.batchT.UnixMilli()
}

// observeBatch records the pipeline in c.batch, whose specs are c.specBuf.
func (s *Server) observeBatch(c *client) {
	d := time.Since(c.batchT)
	o := s.obs
	usec, slow, sample := o.Batch(d)
	sps := c.specBuf
	for i := 0; i < len(sps); {
		// A run of one command shares one latency: one pair of atomic adds.
		sp, j := sps[i], i+1
		for j < len(sps) && sps[j] == sp {
			j++
		}
		if sp != nil {
			o.Commands.ObserveN(sp.Index, usec, int64(j-i))
		}
		i = j
	}
	if sample {
		fast := true
		for _, sp := range c.specBuf {
			fast = fast && sp != nil && sp.Flags&cmdtable.FlagFast != 0
		}
		o.LatencySample(d, fast)
	}
	if slow {
		name := c.sess.Name()
		for i, sp := range c.specBuf {
			if sp != nil && i < len(c.batch) {
				o.Slow.Add(c.batch[i].Args, usec, c.sess.Addr, name)
			}
		}
	}
}

// noteStorageError remembers a failed write for INFO's
// aof_last_write_status: after one, the database refuses every write.
func (s *Server) noteStorageError(err error) {
	if errors.Is(err, bitcask.ErrReadOnly) {
		s.writeFailed.Store(true)
	}
}

// Observer is the node's command statistics (conncmd.Host).
func (h nodeHost) Observer() *conncmd.Observer { return h.s.obs }
