package shardnode

import (
	"slices"
	"strconv"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// cmdInfo is INFO: the Server and Clients sections are written as the proxy
// writes them (internal/conncmd); the rest is the node's own, and the proxy
// reads the Shard and Keyspace sections to build its INFO.
func cmdInfo(c *client, args [][]byte) {
	r := conncmd.ParseInfo(args)
	s := c.srv
	var w conncmd.InfoWriter
	if r.Want("server") {
		conncmd.WriteServer(&w, conncmd.ServerInfo{Role: "shard-node", Port: s.port(), RunID: s.runID, Started: s.started})
	}
	if r.Want("clients") {
		conncmd.WriteClients(&w, s.nclients.Load(), s.cfg.MaxClients, s.blocks.clients.Load())
		// Proxies' connections are not counted against maxclients
		// (admission.go); the watched keys are Redis 7.4's field.
		w.Field("proxy_connections", s.admitted.proxy.Load())
		w.Field("total_watched_keys", s.watches.watchedKeys())
	}
	if r.Want("memory") {
		mem := s.obs.Memory()
		conncmd.WriteMemory(&w, conncmd.MemoryInfo{Used: mem.Used, Peak: s.obs.Peak(), RSS: mem.RSS, MaxMemory: s.sizeLimit.Load()})
		w.Field("used_memory_process", mem.Sys)
		w.Field("live_data_bytes", s.db.LiveBytes())
		var cacheBytes, cacheLimit, cacheHits, cacheMisses int64
		if rc := s.cache; rc != nil {
			cacheBytes, cacheLimit = rc.size(), rc.limit*cacheShards
			cacheHits, cacheMisses = rc.hits.Load(), rc.miss.Load()
		}
		w.Field("read_cache_bytes", cacheBytes)
		w.Field("read_cache_limit", cacheLimit)
		w.Field("read_cache_hits", cacheHits)
		w.Field("read_cache_misses", cacheMisses)
	}
	if r.Want("persistence") {
		conncmd.WritePersistence(&w, conncmd.PersistenceInfo{WriteOK: !s.writeFailed.Load(),
			Started: s.started.Unix(), Fsync: s.db.SyncPolicy().String()})
	}
	if r.Want("stats") {
		cmds, in, out, hits, misses := s.totals()
		conncmd.WriteStats(&w, s.obs, conncmd.StatsInfo{
			Connections: s.stats.conns.Load(), Commands: cmds, NetIn: in, NetOut: out,
			Rejected: s.stats.rejected.Load(), ExpiredKeys: s.db.Stats().ExpiredRemoved,
			Hits: hits, Misses: misses,
		}.WithPubsub(s.hub.counts()))
		w.Field("total_protocol_errors", s.stats.protoErr.Load())
	}
	if r.WantExtra("commandstats") {
		conncmd.WriteCommandStats(&w, &s.obs.Commands, servedRows)
	}
	if r.Want("keyspace") {
		w.Section("Keyspace")
		// A line per database that has keys, as Redis.
		for d := range bitcask.NumDBs {
			if n, expires := s.keyCounts(s.db.Select(d)); n > 0 {
				w.Line("db" + strconv.Itoa(d) + ":keys=" + strconv.Itoa(n) + ",expires=" + strconv.Itoa(expires) + ",avg_ttl=0")
			}
		}
	}
	if r.Want("replication") {
		s.writeReplInfo(&w)
	}
	if r.Want("shard") {
		s.writeShardInfo(&w)
	}
	c.out = resp.AppendVerbatim(c.out, c.sess.Proto, "txt", w.String())
}

// writeShardInfo writes the Shard section (docs/INTERNALS.md lists its
// fields; the proxy relays them).
func (s *Server) writeShardInfo(w *conncmd.InfoWriter) {
	w.Section("Shard")
	a := s.assign.Load()
	if a == nil {
		w.Field("shard_assigned", 0)
		w.Field("shard_name", "")
		w.Field("shard_start", "")
		w.Field("shard_end", "")
	} else {
		w.Field("shard_assigned", 1)
		w.Field("shard_name", a.Name)
		w.Field("shard_start", rangemap.FormatPosition(a.Start))
		w.Field("shard_end", rangemap.FormatPosition(a.End))
	}
	// shard_name, _start and _end are the first range (a node of one
	// range shows what it always did); shard_range_<i> lists them all.
	if a != nil {
		w.Field("shard_ranges", len(a.Ranges))
		for i, r := range a.Ranges {
			w.Line("shard_range_" + strconv.Itoa(i) + ":name=" + r.Name + ",start=" + rangemap.FormatPosition(r.Start) +
				",end=" + rangemap.FormatPosition(r.End) + ",size=" + strconv.FormatInt(r.Size, 10))
		}
	} else {
		w.Field("shard_ranges", 0)
	}
	w.Field("shard_size_limit", s.sizeLimit.Load())
	w.Field("shard_live_bytes", s.db.LiveBytes())
	w.Field("shard_keys", s.db.Stats().Keys)
	w.Field("shard_strict_indexes", boolInt(s.strict.Load()))
	w.Field("shard_hash_tags", boolInt(a != nil && a.HashTags))
	var epoch uint64
	if a != nil {
		epoch = a.Epoch
	}
	w.Field("shard_epoch", epoch)
	fences := s.mig.currentFences()
	w.Field("shard_fences", len(fences))
	for i, f := range fences {
		w.Line("shard_fence_" + strconv.Itoa(i) + ":start=" + rangemap.FormatPosition(f.lo) + ",end=" + rangemap.FormatPosition(f.hi) +
			",id=" + f.id + ",epoch=" + strconv.FormatUint(f.epoch, 10) + ",timeout_ms=" + strconv.FormatInt(f.timeout.Milliseconds(), 10))
	}
	stats := s.db.NamespaceStats()
	names := make([]string, 0, len(stats)+1)
	seen := map[string]bool{}
	for n := range stats {
		names = append(names, n)
		seen[n] = true
	}
	for n := range *s.indexes.Load() {
		if !seen[n] {
			names = append(names, n)
			seen[n] = true
		}
	}
	if !seen[""] {
		names = append(names, "")
	}
	slices.Sort(names)
	for _, n := range names {
		st := stats[n]
		w.Line("shard_index_" + n + ":keys=" + strconv.FormatInt(st.Keys, 10) +
			",bytes=" + strconv.FormatInt(st.Bytes, 10))
	}
	dbs := s.db.Stats()
	w.Field("appendfsync", s.db.SyncPolicy().String())
	w.Field("merges", int64(dbs.Merges))
	w.Field("merge_errors", dbs.MergeErrors)
	w.Field("merge_damaged_records", dbs.MergeDamagedRecords)
	w.Field("recovery_truncated_records", int64(dbs.RecoveryTruncated))
	w.Field("recovery_skipped_records", int64(dbs.RecoverySkipped))
}

// totals sums a counter over the server (closed connections) and the live
// connections.
func (s *Server) totals() (cmds, in, out, hits, misses int64) {
	cmds, in, out = s.stats.cmds.Load(), s.stats.netIn.Load(), s.stats.netOut.Load()
	hits, misses = s.stats.hits.Load(), s.stats.misses.Load()
	s.mu.Lock()
	for c := range s.clients {
		cmds += c.cmds.Load()
		in += c.netIn.Load()
		out += c.netOut.Load()
		hits += c.hits.Load()
		misses += c.misses.Load()
	}
	s.mu.Unlock()
	return
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
