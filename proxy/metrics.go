package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardkv/shardkv/internal/metrics"
)

// The proxy's Prometheus metrics, read at scrape time from the counters
// INFO reads: serving a command counts nothing more for Prometheus.

var (
	proxyCommands = metrics.NewCommands("shardkv_proxy",
		"Latency of commands, by command: from the moment the proxy parsed the batch a command came in to the moment the batch's replies were there, the shard nodes' round trips included (what a client waits for, less the network).")

	descClients    = metrics.Desc("shardkv_proxy_connected_clients", "Client connections.")
	descConns      = metrics.Desc("shardkv_proxy_connections_received_total", "Connections accepted.")
	descRejected   = metrics.Desc("shardkv_proxy_rejected_connections_total", "Connections refused over maxclients.")
	descNetIn      = metrics.Desc("shardkv_proxy_net_input_bytes_total", "Bytes read from clients.")
	descNetOut     = metrics.Desc("shardkv_proxy_net_output_bytes_total", "Bytes written to clients.")
	descMonitors   = metrics.Desc("shardkv_proxy_monitors", "Connections in MONITOR.")
	descShardUp    = metrics.Desc("shardkv_proxy_shard_up", "1 when the proxy has a usable connection to the shard's node and the node holds the map's assignment, else 0.", "shard", "addr")
	descBackendLat = metrics.Desc("shardkv_proxy_backend_duration_seconds", "Round trips to a shard's node, sampled (about one per write to a node connection): from the write to the reply of the last request it carried.", "shard")
)

// Collector is the proxy's metrics for a Prometheus registry
// (internal/metrics.Serve).
func (s *Server) Collector() prometheus.Collector { return proxyCollector{s} }

type proxyCollector struct{ s *Server }

func (c proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	proxyCommands.Describe(ch)
	for _, d := range []*prometheus.Desc{descClients, descConns, descRejected, descNetIn, descNetOut, descMonitors, descShardUp, descBackendLat} {
		ch <- d
	}
}

func (c proxyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	proxyCommands.Collect(ch, &s.obs.Commands, proxyRows)
	ch <- metrics.Gauge(descClients, s.nclients.Load())
	ch <- metrics.Counter(descConns, s.connsReceived.Load())
	ch <- metrics.Counter(descRejected, s.rejected.Load())
	ch <- metrics.Counter(descNetIn, s.netIn.Load())
	ch <- metrics.Counter(descNetOut, s.netOut.Load())
	n := 0
	if p := s.monitors.Load(); p != nil {
		n = len(*p)
	}
	ch <- metrics.Gauge(descMonitors, int64(n))
	for _, sh := range s.table.Load().nodes {
		up := int64(0)
		if sh.healthy() {
			up = 1
		}
		ch <- metrics.Gauge(descShardUp, up, sh.name, sh.addr)
		b, count, usec := sh.lat.Get()
		ch <- metrics.Histogram(descBackendLat, b, count, usec, sh.name)
	}
}
