package conncmd

import "strconv"

// The INFO sections both servers write with the same fields, in Redis's
// order, so that tools reading Redis's INFO (redis-cli --stat, exporters,
// dashboards) read either server. A server adds its own fields after them.

// MemoryInfo is what the Memory section reports.
type MemoryInfo struct {
	Used      int64 // used_memory
	Peak      int64 // used_memory_peak
	RSS       int64 // used_memory_rss
	MaxMemory int64 // maxmemory; 0 is no limit
}

// WriteMemory writes the Memory section's shared fields.
func WriteMemory(w *InfoWriter, m MemoryInfo) {
	w.Section("Memory")
	w.Field("used_memory", m.Used)
	w.Field("used_memory_human", HumanBytes(m.Used))
	w.Field("used_memory_rss", m.RSS)
	w.Field("used_memory_rss_human", HumanBytes(m.RSS))
	peak := max(m.Peak, m.Used)
	w.Field("used_memory_peak", peak)
	w.Field("used_memory_peak_human", HumanBytes(peak))
	perc := 0.0
	if peak > 0 {
		perc = 100 * float64(m.Used) / float64(peak)
	}
	w.Field("used_memory_peak_perc", strconv.FormatFloat(perc, 'f', 2, 64)+"%")
	w.Field("maxmemory", m.MaxMemory)
	w.Field("maxmemory_human", HumanBytes(m.MaxMemory))
	w.Field("maxmemory_policy", "noeviction")
	frag := 0.0
	if m.Used > 0 {
		frag = float64(m.RSS) / float64(m.Used)
	}
	w.Field("mem_fragmentation_ratio", frag)
	w.Field("mem_allocator", "go")
}

// PersistenceInfo is what the Persistence section reports.
type PersistenceInfo struct {
	WriteOK bool   // aof_last_write_status: ok, or err once a write to disk failed
	Started int64  // rdb_last_save_time: Unix seconds (no RDB; the start)
	Fsync   string // aof_fsync, the appendfsync policy ("" to leave it out)
}

// WritePersistence writes the Persistence section. Both servers are always
// done loading (a node serves once its key directory is rebuilt) and never
// fork; their log is the Bitcask files, reported as an AOF that is on.
func WritePersistence(w *InfoWriter, p PersistenceInfo) {
	w.Section("Persistence")
	w.Field("loading", 0)
	w.Field("async_loading", 0)
	w.Field("rdb_changes_since_last_save", 0)
	w.Field("rdb_bgsave_in_progress", 0)
	w.Field("rdb_last_save_time", p.Started)
	w.Field("rdb_last_bgsave_status", "ok")
	w.Field("aof_enabled", 1)
	w.Field("aof_rewrite_in_progress", 0)
	w.Field("aof_rewrite_scheduled", 0)
	w.Field("aof_last_bgrewrite_status", "ok")
	status := "ok"
	if !p.WriteOK {
		status = "err"
	}
	w.Field("aof_last_write_status", status)
	if p.Fsync != "" {
		w.Field("aof_fsync", p.Fsync)
	}
}

// StatsInfo is what the Stats section reports.
type StatsInfo struct {
	Connections, Commands, NetIn, NetOut, Rejected int64
	ExpiredKeys, Hits, Misses                      int64
	// Channels, patterns and shard channels with subscribers.
	PubsubChannels, PubsubPatterns, PubsubShardChannels int
}

// WithPubsub returns s with the Pub/Sub counts.
func (s StatsInfo) WithPubsub(channels, patterns, shard int) StatsInfo {
	s.PubsubChannels, s.PubsubPatterns, s.PubsubShardChannels = channels, patterns, shard
	return s
}

// WriteStats writes the Stats section's shared fields; the rates and the
// error replies come from o.
func WriteStats(w *InfoWriter, o *Observer, s StatsInfo) {
	w.Section("Stats")
	w.Field("total_connections_received", s.Connections)
	w.Field("total_commands_processed", s.Commands)
	w.Field("instantaneous_ops_per_sec", o.OpsPerSec())
	w.Field("total_net_input_bytes", s.NetIn)
	w.Field("total_net_output_bytes", s.NetOut)
	w.Field("instantaneous_input_kbps", o.InputKbps())
	w.Field("instantaneous_output_kbps", o.OutputKbps())
	w.Field("rejected_connections", s.Rejected)
	w.Field("expired_keys", s.ExpiredKeys)
	w.Field("evicted_keys", 0)
	w.Field("keyspace_hits", s.Hits)
	w.Field("keyspace_misses", s.Misses)
	w.Field("pubsub_channels", s.PubsubChannels)
	w.Field("pubsub_patterns", s.PubsubPatterns)
	w.Field("pubsubshard_channels", s.PubsubShardChannels)
	w.Field("total_error_replies", o.Commands.Errors())
}
