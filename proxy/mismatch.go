package proxy

import (
	"bytes"
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

// wrongShardReply is the error a client gets for a request the node
// refused with WRONGSHARD; it marks the shard mismatched.
func (s *Server) wrongShardReply(sh *shard, reply []byte) string {
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
			"force the map's assignment on the node (SHARD.ASSIGN "+strings.Join(assignArgs(*a, sh.hashTags)[1:], " ")+" FORCE) "+
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
