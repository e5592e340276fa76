package shardnode

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardkv/shardkv/internal/metrics"
	"github.com/shardkv/shardkv/rangemap"
)

// The node's Prometheus metrics. Everything is read at scrape time from the
// counters INFO reads and from bitcask.Stats: serving a command counts
// nothing more for Prometheus.

var (
	nodeCommands = metrics.NewCommands("shardkv_node",
		"Latency of commands, by command: from the moment the node parsed the pipeline a command came in to the moment the pipeline's replies were ready (its commit and, under appendfsync always, its fsync included).")

	descClients   = metrics.Desc("shardkv_node_connected_clients", "Client connections (the proxies' and any other).")
	descConns     = metrics.Desc("shardkv_node_connections_received_total", "Connections accepted.")
	descRejected  = metrics.Desc("shardkv_node_rejected_connections_total", "Connections refused over maxclients.")
	descNetIn     = metrics.Desc("shardkv_node_net_input_bytes_total", "Bytes read from clients.")
	descNetOut    = metrics.Desc("shardkv_node_net_output_bytes_total", "Bytes written to clients.")
	descProtoErrs = metrics.Desc("shardkv_node_protocol_errors_total", "Connections closed for a protocol error.")
	descHits      = metrics.Desc("shardkv_node_keyspace_hits_total", "Reads that found their key.")
	descMisses    = metrics.Desc("shardkv_node_keyspace_misses_total", "Reads that did not find their key.")
	descAssigned  = metrics.Desc("shardkv_node_shard_info", "1 per range of the node's assignment, labelled with it; 0 with empty labels before it has one.", "shard", "start", "end")
	descSizeLimit = metrics.Desc("shardkv_node_size_limit_bytes", "The shard's limit on live bytes (maxmemory); 0 is none.")

	descKeys       = metrics.Desc("shardkv_node_keys", "Keys in the storage engine's key directory (expired ones until they are removed).")
	descLive       = metrics.Desc("shardkv_node_live_bytes", "Bytes of the live keys and values.")
	descDisk       = metrics.Desc("shardkv_node_disk_bytes", "Bytes in data files.")
	descDead       = metrics.Desc("shardkv_node_dead_bytes", "Bytes of data files no key points at, which a merge reclaims.")
	descFiles      = metrics.Desc("shardkv_node_data_files", "Data files, the active one included.")
	descMerges     = metrics.Desc("shardkv_node_merges_total", "Merges completed.")
	descMergeErrs  = metrics.Desc("shardkv_node_merge_errors_total", "Merges that failed or were abandoned.")
	descExpired    = metrics.Desc("shardkv_node_expired_keys_total", "Expired keys removed.")
	descFsyncs     = metrics.Desc("shardkv_node_fsyncs_total", "fsyncs of data files (group commits, rotations, hints, merges).")
	descFsyncTime  = metrics.Desc("shardkv_node_fsync_duration_seconds", "Time of the group-commit fsyncs, the ones appendfsync waits for.")
	descRecTrunc   = metrics.Desc("shardkv_node_recovery_truncated_records", "Records cut from the torn tail of the newest data file when the node started.")
	descRecTruncB  = metrics.Desc("shardkv_node_recovery_truncated_bytes", "Bytes cut from the torn tail of the newest data file when the node started.")
	descRecSkip    = metrics.Desc("shardkv_node_recovery_skipped_records", "Bad records skipped when the node started.")
	descRecSkipB   = metrics.Desc("shardkv_node_recovery_skipped_bytes", "Bytes of bad records skipped when the node started.")
	descRecHints   = metrics.Desc("shardkv_node_recovery_hint_files_loaded", "Data files whose key directory came from a hint file when the node started.")
	descRecScanned = metrics.Desc("shardkv_node_recovery_data_files_scanned", "Data files scanned record by record when the node started.")
	descIdxKeys    = metrics.Desc("shardkv_node_index_keys", "Keys per index.", "index")
	descIdxBytes   = metrics.Desc("shardkv_node_index_bytes", "Bytes of keys and values per index.", "index")

	nodeDescs = []*prometheus.Desc{descClients, descConns, descRejected, descNetIn, descNetOut, descProtoErrs,
		descHits, descMisses, descAssigned, descSizeLimit, descKeys, descLive, descDisk, descDead, descFiles,
		descMerges, descMergeErrs, descExpired, descFsyncs, descFsyncTime, descRecTrunc, descRecTruncB,
		descRecSkip, descRecSkipB, descRecHints, descRecScanned, descIdxKeys, descIdxBytes}
)

// Collector is the node's metrics for a Prometheus registry
// (internal/metrics.Serve).
func (s *Server) Collector() prometheus.Collector { return nodeCollector{s} }

type nodeCollector struct{ s *Server }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	nodeCommands.Describe(ch)
	for _, d := range nodeDescs {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	nodeCommands.Collect(ch, &s.obs.Commands, servedRows)
	_, in, out, hits, misses := s.totals()
	ch <- metrics.Gauge(descClients, s.nclients.Load())
	ch <- metrics.Counter(descConns, s.stats.conns.Load())
	ch <- metrics.Counter(descRejected, s.stats.rejected.Load())
	ch <- metrics.Counter(descNetIn, in)
	ch <- metrics.Counter(descNetOut, out)
	ch <- metrics.Counter(descProtoErrs, s.stats.protoErr.Load())
	ch <- metrics.Counter(descHits, hits)
	ch <- metrics.Counter(descMisses, misses)
	if a := s.assign.Load(); a != nil {
		for _, r := range a.Ranges {
			ch <- metrics.Gauge(descAssigned, 1, r.Name, rangemap.FormatPosition(r.Start), rangemap.FormatPosition(r.End))
		}
	} else {
		ch <- metrics.Gauge(descAssigned, 0, "", "", "")
	}
	ch <- metrics.Gauge(descSizeLimit, s.sizeLimit.Load())

	st := s.db.Stats()
	ch <- metrics.Gauge(descKeys, st.Keys)
	ch <- metrics.Gauge(descLive, st.LiveBytes)
	ch <- metrics.Gauge(descDisk, st.DiskBytes)
	ch <- metrics.Gauge(descDead, st.DeadBytes)
	ch <- metrics.Gauge(descFiles, int64(st.DataFiles))
	ch <- metrics.Counter(descMerges, st.Merges)
	ch <- metrics.Counter(descMergeErrs, st.MergeErrors)
	ch <- metrics.Counter(descExpired, st.ExpiredRemoved)
	ch <- metrics.Counter(descFsyncs, st.Fsyncs)
	ch <- prometheus.MustNewConstSummary(descFsyncTime, uint64(st.SyncRounds), float64(st.SyncNanos)/1e9, nil)
	ch <- metrics.Gauge(descRecTrunc, st.RecoveryTruncated)
	ch <- metrics.Gauge(descRecTruncB, st.RecoveryTruncatedBytes)
	ch <- metrics.Gauge(descRecSkip, st.RecoverySkipped)
	ch <- metrics.Gauge(descRecSkipB, st.RecoverySkippedBytes)
	ch <- metrics.Gauge(descRecHints, int64(st.HintFilesLoaded))
	ch <- metrics.Gauge(descRecScanned, int64(st.DataFilesScanned))
	for name, ns := range s.db.NamespaceStats() {
		ch <- metrics.Gauge(descIdxKeys, ns.Keys, name)
		ch <- metrics.Gauge(descIdxBytes, ns.Bytes, name)
	}
}
