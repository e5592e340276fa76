package shardnode

import (
	"math"
	"strconv"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/rangemap"
)

// The move commands (migrate.go, docs/RESHARDING.md). They are admin
// commands of the node: authenticated like SHARD.ASSIGN, not routed by the
// proxy.

const errNoMigration = "ERR no such migration"

// defaultFenceTimeout is how long a write to a fenced range waits for the
// fence to lift before it gets TRYAGAIN.
const defaultFenceTimeout = 100 * time.Millisecond

func parseRange(lo, hi []byte) (posRange, bool) {
	l, err1 := strconv.ParseFloat(string(lo), 64)
	h, err2 := strconv.ParseFloat(string(hi), 64)
	if err1 != nil || err2 != nil || math.IsNaN(l) || math.IsNaN(h) || l < 0 || h > 1 || l >= h {
		return posRange{}, false
	}
	return posRange{l, h}, true
}

const errBadRange = "ERR the range must be two positions lo < hi in [0,1]"

// MIGRATE.START id lo hi host:port [RATE MB/s]: streams the keys of
// [lo,hi) to the node at host:port, then every write of the range, until
// MIGRATE.ABORT id. Replies the node's last sequence number when the
// stream started (seq0). The same id again is the same stream.
func cmdMigrateStart(c *client, args [][]byte) {
	rng, ok := parseRange(args[2], args[3])
	if !ok {
		c.errReply(errBadRange)
		return
	}
	var rate float64
	for i := 5; i < len(args); i++ {
		if eqFold(args[i], "rate") && i+1 < len(args) {
			r, err := strconv.ParseFloat(string(args[i+1]), 64)
			if err != nil || r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				c.errReply("ERR RATE must be a number of MB/s (0 is unlimited)")
				return
			}
			rate = r * 1e6
			i++
			continue
		}
		c.errReply(errSyntax)
		return
	}
	s := c.srv
	m := &s.mig
	id := string(args[1])
	m.mu.Lock()
	if j, ok := m.sources[id]; ok {
		m.mu.Unlock()
		c.intReply(int64(j.seq0))
		return
	}
	j := &migSource{
		srv: s, id: id, rng: rng, target: string(args[4]), rate: rate,
		queued: make(map[string]*migItem), phase: "snapshot",
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if m.sources == nil {
		m.sources = make(map[string]*migSource)
	}
	m.sources[id] = j
	m.setTracking()
	j.seq0 = s.db.LastSeq()
	m.mu.Unlock()
	s.log.Info("migration started", "id", id, "lo", rng.lo, "hi", rng.hi, "target", j.target, "seq0", j.seq0, "rate_mb", rate/1e6)
	go j.run()
	c.intReply(int64(j.seq0))
}

// MIGRATE.ABORT id: stops the stream (or the drop) id and forgets it. The
// keys already sent stay on the target: MIGRATE.DROP there removes them.
// It also ends a stream that completed (after the switch).
func cmdMigrateAbort(c *client, args [][]byte) {
	m := &c.srv.mig
	id := string(args[1])
	m.mu.Lock()
	j, okS := m.sources[id]
	d, okD := m.drops[id]
	if okS {
		delete(m.sources, id)
		j.stopped.Store(true)
		m.setTracking()
		j.mu.Lock()
		if j.phase != "failed" {
			j.phase = "aborted"
		}
		if j.conn != nil {
			j.conn.Close()
		}
		j.mu.Unlock()
		close(j.stop)
	}
	if okD {
		delete(m.drops, id)
		close(d.stop)
	}
	m.mu.Unlock()
	if !okS && !okD {
		c.errReply(errNoMigration)
		return
	}
	if okS {
		<-j.done
	}
	if okD {
		<-d.done
	}
	c.srv.log.Info("migration stopped", "id", id)
	c.ok()
}

// MIGRATE.STATUS id: the stream's (or the drop's) phase and counters.
func cmdMigrateStatus(c *client, args [][]byte) {
	m := &c.srv.mig
	id := string(args[1])
	m.mu.Lock()
	j, okS := m.sources[id]
	d, okD := m.drops[id]
	m.mu.Unlock()
	switch {
	case okS:
		j.mu.Lock()
		phase, msg, last := j.phase, j.errMsg, j.lastSeq
		j.mu.Unlock()
		drained := int64(0)
		if j.drained.Load() && phase == "drained" {
			drained = 1
		}
		c.mapHeader(12)
		c.bulkStr("phase")
		c.bulkStr(phase)
		c.bulkStr("target")
		c.bulkStr(j.target)
		c.bulkStr("range")
		c.bulkStr(rangemap.FormatPosition(j.rng.lo) + " " + rangemap.FormatPosition(j.rng.hi))
		c.bulkStr("seq0")
		c.intReply(int64(j.seq0))
		c.bulkStr("records")
		c.intReply(j.records.Load())
		c.bulkStr("bytes")
		c.intReply(j.bytes.Load())
		c.bulkStr("lag")
		c.intReply(j.lag())
		c.bulkStr("sent_seq")
		c.intReply(int64(j.sentSeq.Load()))
		c.bulkStr("acked_seq")
		c.intReply(int64(j.ackedSeq.Load()))
		c.bulkStr("drained")
		c.intReply(drained)
		c.bulkStr("last_seq")
		c.intReply(int64(last))
		c.bulkStr("error")
		c.bulkStr(msg)
	case okD:
		phase, _ := d.phase.Load().(string)
		msg, _ := d.errMsg.Load().(string)
		c.mapHeader(4)
		c.bulkStr("phase")
		c.bulkStr(phase)
		c.bulkStr("range")
		c.bulkStr(rangemap.FormatPosition(d.rng.lo) + " " + rangemap.FormatPosition(d.rng.hi))
		c.bulkStr("deleted")
		c.intReply(d.deleted.Load())
		c.bulkStr("error")
		c.bulkStr(msg)
	default:
		c.errReply(errNoMigration)
	}
}

// MIGRATE.RECV id: this connection carries the stream id from a source:
// its keys may lie outside the node's assignment (they stay invisible to
// clients, whose keys the node checks) and are not held by a fence.
func cmdMigrateRecv(c *client, args [][]byte) {
	c.migRecv = true
	c.srv.log.Debug("receiving a migration", "id", string(args[1]))
	c.ok()
}

// MIGRATE.FLUSHRANGE lo hi [db]: on a stream connection, deletes the
// range's keys of database db (of every database without db): the
// source's FLUSHDB or FLUSHALL, in the stream's order.
func cmdMigrateFlushRange(c *client, args [][]byte) {
	if !c.migRecv {
		c.errReply("ERR MIGRATE.FLUSHRANGE is only valid on a migration stream (MIGRATE.RECV)")
		return
	}
	rng, ok := parseRange(args[1], args[2])
	if !ok {
		c.errReply(errBadRange)
		return
	}
	dbs := []int{}
	if len(args) == 4 {
		n, ok := parseInt(args[3])
		if !ok || n < 0 || n >= bitcask.NumDBs {
			c.errReply("ERR DB index is out of range")
			return
		}
		dbs = append(dbs, int(n))
	} else if len(args) > 4 {
		c.errReply(errSyntax)
		return
	} else {
		for i := 0; i < bitcask.NumDBs; i++ {
			dbs = append(dbs, i)
		}
	}
	s := c.srv
	for _, db := range dbs {
		v := s.db.Select(db)
		var keys [][]byte
		v.Range(func(key []byte, _ bitcask.Meta) bool {
			if rng.has(s.positionOf(key)) {
				keys = append(keys, append([]byte(nil), key...))
			}
			return true
		})
		if len(keys) == 0 {
			continue
		}
		err := v.Update(func(tx *bitcask.Tx) error {
			for _, k := range keys {
				if _, err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			c.errReply(s.storageError(err))
			return
		}
	}
	c.ok()
}

// MIGRATE.DROP id lo hi [RATE keys/s] [FORCE]: deletes the keys of
// [lo,hi) in the background (the target's partial copy after an abort,
// the source's moved keys after the switch); MIGRATE.STATUS id shows its
// progress. A range the node owns needs FORCE, and a range being streamed
// from the node is refused.
func cmdMigrateDrop(c *client, args [][]byte) {
	args, _, ok := takeRev(c, args)
	if !ok {
		return
	}
	if len(args) < 4 {
		c.arityErr("migrate.drop")
		return
	}
	rng, ok := parseRange(args[2], args[3])
	if !ok {
		c.errReply(errBadRange)
		return
	}
	var rate float64
	force := false
	for i := 4; i < len(args); i++ {
		switch {
		case eqFold(args[i], "rate") && i+1 < len(args):
			r, err := strconv.ParseFloat(string(args[i+1]), 64)
			if err != nil || r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				c.errReply("ERR RATE must be a number of keys a second (0 is unlimited)")
				return
			}
			rate = r
			i++
		case eqFold(args[i], "force"):
			force = true
		default:
			c.errReply(errSyntax)
			return
		}
	}
	s := c.srv
	if a := s.assign.Load(); a != nil && !force && a.overlaps(rng.lo, rng.hi) {
		c.errReply("ERR the range overlaps the node's assignment " + a.describe() + "; add FORCE to delete its keys")
		return
	}
	m := &s.mig
	id := string(args[1])
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.sources {
		if rng.lo < j.rng.hi && j.rng.lo < rng.hi {
			c.errReply("ERR the range is being streamed by migration " + j.id + "; MIGRATE.ABORT it first")
			return
		}
	}
	if old, ok := m.drops[id]; ok {
		select {
		case <-old.done:
		default:
			c.ok() // the same drop, still running
			return
		}
	}
	d := &migDrop{id: id, rng: rng, rate: rate, stop: make(chan struct{}), done: make(chan struct{})}
	d.phase.Store("dropping")
	if m.drops == nil {
		m.drops = make(map[string]*migDrop)
	}
	m.drops[id] = d
	s.log.Info("dropping a range", "id", id, "lo", rng.lo, "hi", rng.hi, "rate_keys", rate)
	go s.runDrop(d)
	c.ok()
}
