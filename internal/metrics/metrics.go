// Package metrics serves a server's Prometheus metrics (-metrics-addr) and
// turns the counters internal/conncmd keeps into Prometheus metrics.
//
// Nothing is counted for Prometheus on the request path: each server's
// Collector reads, at scrape time, the same atomics its INFO reads
// (per-command counters indexed by command table row, latency histograms of
// power-of-two buckets, the storage engine's Stats), so a server that is
// never scraped pays nothing for this package.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// Serve serves /metrics on addr with the Go runtime's and the process's
// metrics and those of cs, until stop is called. It returns the address it
// listens on.
func Serve(addr string, log hclog.Logger, cs ...prometheus.Collector) (bound net.Addr, stop func(), err error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, fmt.Errorf("-metrics-addr %q: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: stdLogger{log}}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return ln.Addr(), func() { _ = srv.Close() }, nil
}

type stdLogger struct{ log hclog.Logger }

func (l stdLogger) Println(v ...any) { l.log.Error("metrics", "error", fmt.Sprint(v...)) }

// exportedBounds are the histogram bounds a scrape shows: every other power
// of two of conncmd's buckets, 16 µs to 16.8 s (11 buckets, where the
// counters keep 25: a scrape of every command stays small).
var exportedBounds = func() []int {
	var out []int
	for i := 4; i < conncmd.LatencyBuckets-1; i += 2 {
		out = append(out, i)
	}
	return out
}()

// Histogram is a const Prometheus histogram, in seconds, of one of
// conncmd's latency histograms (per-bucket counts, total, sum in µs).
func Histogram(desc *prometheus.Desc, buckets [conncmd.LatencyBuckets]int64, count, usec int64, labels ...string) prometheus.Metric {
	cum := make(map[float64]uint64, len(exportedBounds))
	var n int64
	next := 0
	for _, b := range exportedBounds {
		for ; next <= b; next++ {
			n += buckets[next]
		}
		cum[float64(conncmd.BucketBound(b))/1e6] = uint64(n)
	}
	return prometheus.MustNewConstHistogram(desc, uint64(count), float64(usec)/1e6, cum, labels...)
}

// Commands is the per-command metrics of a server: prefix_commands_total,
// prefix_command_errors_total and prefix_command_duration_seconds, labelled
// by command.
type Commands struct {
	calls, errors, duration *prometheus.Desc
}

// NewCommands describes the per-command metrics under prefix (shardkv_node,
// shardkv_proxy); durationHelp says what the server's latency covers.
func NewCommands(prefix, durationHelp string) Commands {
	l := []string{"cmd"}
	return Commands{
		calls:    prometheus.NewDesc(prefix+"_commands_total", "Commands answered, by command (rejected and failed ones included).", l, nil),
		errors:   prometheus.NewDesc(prefix+"_command_errors_total", "Commands answered with an error, by command (refused before running or failed).", l, nil),
		duration: prometheus.NewDesc(prefix+"_command_duration_seconds", durationHelp, l, nil),
	}
}

// Describe sends the descriptions.
func (m Commands) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.calls
	ch <- m.errors
	ch <- m.duration
}

// Collect sends the metrics of every row of rows that answered a command.
func (m Commands) Collect(ch chan<- prometheus.Metric, s *conncmd.CommandStats, rows []*cmdtable.Command) {
	for _, ci := range rows {
		c := s.Get(ci.Index)
		if c.Count == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.calls, prometheus.CounterValue, float64(c.Count), ci.Name)
		ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(c.Failed+c.Rejected), ci.Name)
		ch <- Histogram(m.duration, c.Buckets, c.Count, c.Usec, ci.Name)
	}
}

// Desc is prometheus.NewDesc without constant labels.
func Desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Counter and Gauge make const metrics.
func Counter(d *prometheus.Desc, v int64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func Gauge(d *prometheus.Desc, v int64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}
