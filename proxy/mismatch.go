package proxy

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// Map mismatches. A node refuses every key outside the range it was
// assigned with -WRONGSHARD and stores nothing, so a WRONGSHARD from the
// node the proxy's own map sends a key to means the node's assignment is
// not the map's: someone forced another one on it (SHARD.ASSIGN ... FORCE
// with the node password), or its data directory belongs to another shard.
// The proxy then
//
//   - answers the client TRYAGAIN, which clients retry and which says the
//     command certainly did not run (the node stored nothing), never the
//     node's WRONGSHARD, which no client knows;
//   - marks the shard unhealthy (SHARD.MAP, INFO, the shard_up metric) with
//     the reason, and logs it once, on the change, not per request;
//   - pushes the map's assignment to the node again without FORCE every
//     probeInterval: the node accepts it once its assignment is the map's
//     again, and the shard is healthy from then on.
//
// The proxy never forces a range on a node: the node may hold another
// shard's data, which a forced range would hide, and the map may be the
// one that is wrong. The operator repairs it (README, "A shard's
// assignment differs from the map"): force the right assignment on the node
// (SHARD.ASSIGN name start end size FORCE), or restart the node on its own
// data directory.

// probeInterval is how often the proxy checks a mismatched node's
// assignment.
const probeInterval = time.Second

// isWrongShard reports whether a node's reply is its WRONGSHARD refusal.
func isWrongShard(reply []byte) bool {
	return len(reply) > 12 && reply[0] == '-' && string(reply[1:12]) == "WRONGSHARD "
}

// wrongShardEpoch reads the position and the node's epoch from a
// WRONGSHARD refusal, "-WRONGSHARD <position> not in [<start>,<end>) of
// <name> epoch <epoch>"; ok is false when it names no epoch (a node
// assigned from a static map).
func wrongShardEpoch(reply []byte) (pos float64, epoch uint64, ok bool) {
	msg := strings.TrimSpace(string(reply[len("-WRONGSHARD "):]))
	p, rest, found := strings.Cut(msg, " ")
	if !found {
		return 0, 0, false
	}
	i := strings.LastIndex(rest, " epoch ")
	if i < 0 {
		return 0, 0, false
	}
	var err1, err2 error
	pos, err1 = strconv.ParseFloat(p, 64)
	epoch, err2 = strconv.ParseUint(rest[i+len(" epoch "):], 10, 64)
	return pos, epoch, err1 == nil && err2 == nil && pos >= 0 && pos < 1
}

// maxMovedRetries bounds how often one batch follows newer epochs.
const maxMovedRetries = 3

// retryMoved follows the map for the batch's commands a node refused with
// WRONGSHARD at an epoch newer than the proxy's map: the key moved and
// the proxy's map (its etcd watch) is behind. The refusal means the node
// ran nothing, so sending the command again is safe for writes too: the
// proxy reads the map from etcd and sends each such command to the owner
// of the refused position under it, within the request timeout, and the
// client sees the new owner's reply, never the refusal.
func (c *client) retryMoved() {
	if c.s.cfg.MapSource == nil || c.pin != nil {
		return
	}
	for attempt := 0; attempt < maxMovedRetries; attempt++ {
		var need uint64
		for i := range c.slots {
			sl := &c.slots[i]
			if sl.kind != slotForward || sl.req.Err != nil || !isWrongShard(sl.req.Reply) {
				continue
			}
			if _, e, ok := wrongShardEpoch(sl.req.Reply); ok && e > c.tbl.m.Epoch && e > need {
				need = e
			}
		}
		if need == 0 {
			return
		}
		old := c.tbl.m.Epoch
		if err := c.s.refreshMap(need); err != nil {
			return // the refusal becomes the mismatch's TRYAGAIN
		}
		c.tbl = c.s.table.Load()
		sent := false
		for i := range c.slots {
			sl := &c.slots[i]
			if sl.kind != slotForward || sl.req.Err != nil || !isWrongShard(sl.req.Reply) {
				continue
			}
			p, e, ok := wrongShardEpoch(sl.req.Reply)
			if !ok || e <= old || e > c.tbl.m.Epoch {
				continue
			}
			if !sent {
				c.w.Begin()
				sent = true
			}
			r := c.newReq()
			r.buf = append(r.buf[:0], sl.req.Cmd...)
			r.Cmd = r.buf
			sh := c.tbl.shards[c.tbl.m.Find(p)]
			c.send(sh, &r.Request)
			sl.req, sl.sh = &r.Request, sh
		}
		if !sent {
			return
		}
		c.s.movedRetries.Add(1)
		c.sendQueued()
		c.w.Wait()
	}
}

// wrongShardReply is the error a client gets for a request the node
// refused with WRONGSHARD; it marks the shard mismatched, unless the node
// is at a newer epoch than the proxy's map: then the map is behind, not
// the node, and the client gets TRYAGAIN while the proxy reads the map.
func (s *Server) wrongShardReply(sh *shard, reply []byte) string {
	if _, e, ok := wrongShardEpoch(reply); ok && s.cfg.MapSource != nil && e > s.Epoch() {
		go s.refreshMap(e)
		return "TRYAGAIN shard " + sh.name + " (" + sh.addr + ") is at map epoch " + strconv.FormatUint(e, 10) +
			", newer than the proxy's; nothing was executed, the proxy is reading the new map"
	}
	reason := "the node answered " + strings.TrimSpace(string(bytes.TrimPrefix(reply, []byte("-"))))
	s.markMismatch(sh, reason)
	return sh.mismatchError(reason)
}

func (sh *shard) mismatchError(reason string) string {
	return "TRYAGAIN shard " + sh.name + " (" + sh.addr + ") map mismatch, nothing was executed: " + reason +
		"; the node's assignment differs from the proxy's map (SHARD.MAP)"
}

// markMismatch records why sh's node does not hold the map's assignment;
// the first report since the shard was last healthy is logged, and starts
// the probe that notices the repair.
func (s *Server) markMismatch(sh *shard, reason string) {
	if old := sh.mismatch.Swap(&reason); old == nil {
		a := sh.assign.Load()
		s.log.Error("shard node's assignment differs from the map; its keys get TRYAGAIN until it is repaired: "+
			"force the map's assignment on the node (SHARD.ASSIGN "+strings.Join(a.args[1:], " ")+" FORCE) "+
			"or restart it on the shard's own data directory",
			"shard", sh.name, "addr", sh.addr, "reason", reason)
	}
	if sh.probing.CompareAndSwap(false, true) {
		go s.probeAssignment(sh)
	}
}

// clearMismatch records that sh's node holds the map's assignment.
func (s *Server) clearMismatch(sh *shard) {
	if old := sh.mismatch.Swap(nil); old != nil {
		s.log.Info("shard node's assignment matches the map again", "shard", sh.name, "addr", sh.addr)
	}
}

// probeAssignment pushes the map's assignment to a mismatched node until
// the node accepts it or the shard's backends close.
func (s *Server) probeAssignment(sh *shard) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for sh.mismatch.Load() != nil {
		select {
		case <-sh.stop:
			sh.probing.Store(false)
			return
		case <-t.C:
		}
		if !sh.resp2.Up() {
			continue // the connection's handshake will push it
		}
		// pushAssignment marks the outcome.
		s.pushAssignment(sh, sh.resp2.Do)
	}
	sh.probing.Store(false)
	// A mismatch marked between the loop's last check and the store above
	// found probing set and started no probe.
	if sh.mismatch.Load() != nil && sh.probing.CompareAndSwap(false, true) {
		go s.probeAssignment(sh)
	}
}

// health is the shard's state as SHARD.MAP and INFO show it: "ok",
// "unreachable: <why>" or "map mismatch: <why>".
func (sh *shard) health() string {
	if r := sh.mismatch.Load(); r != nil {
		return "map mismatch: " + *r
	}
	if !sh.resp2.Up() {
		return "unreachable: " + sh.resp2.Err().Error()
	}
	return "ok"
}

// healthy reports whether the shard serves its range: the proxy reaches
// its node, and the node holds the map's assignment.
func (sh *shard) healthy() bool { return sh.resp2.Up() && sh.mismatch.Load() == nil }

// execWrongShard returns the first WRONGSHARD among the n replies of a
// transaction sent to a node (MULTI, the commands, EXEC), or nil: a
// command the node refused at queue time aborted it.
func execWrongShard(b []byte, n int) []byte {
	for i := 0; i < n && len(b) > 0; i++ {
		l, err := resp.ReplyLen(b)
		if err != nil || l == 0 {
			return nil
		}
		if isWrongShard(b[:l]) {
			return b[:l]
		}
		b = b[l:]
	}
	return nil
}
