package conncmd

import (
	"math/bits"
	"strconv"
	"sync/atomic"

	"github.com/shardkv/shardkv/internal/cmdtable"
)

// LatencyBuckets is the number of buckets of a command's latency histogram:
// bucket 0 counts latencies up to 1 µs, bucket i (0 < i < LatencyBuckets-1)
// those in (2^(i-1), 2^i] µs, and the last one everything above 2^24 µs
// (16.8 s). Powers of two are what LATENCY HISTOGRAM replies, and finding
// the bucket is one instruction, so recording a command costs two atomic
// adds.
const LatencyBuckets = 26

// BucketBound is the upper bound of bucket i in microseconds (the last
// bucket has none: it is given twice the one before).
func BucketBound(i int) int64 { return 1 << i }

func bucketOf(usec int64) int {
	if usec <= 1 {
		return 0
	}
	return min(bits.Len64(uint64(usec-1)), LatencyBuckets-1)
}

// LatencyHistogram counts latencies in LatencyBuckets buckets, with their
// sum; safe for concurrent use.
type LatencyHistogram struct {
	buckets [LatencyBuckets]atomic.Int64
	usec    atomic.Int64
}

// Observe records one latency of usec microseconds.
func (h *LatencyHistogram) Observe(usec int64) { h.ObserveN(usec, 1) }

// ObserveN records n latencies of usec microseconds each.
func (h *LatencyHistogram) ObserveN(usec, n int64) {
	h.buckets[bucketOf(usec)].Add(n)
	h.usec.Add(n * usec)
}

// Get returns the counts per bucket (not cumulative), their total and the
// sum of the latencies in microseconds.
func (h *LatencyHistogram) Get() (buckets [LatencyBuckets]int64, count, usec int64) {
	for i := range h.buckets {
		buckets[i] = h.buckets[i].Load()
		count += buckets[i]
	}
	return buckets, count, h.usec.Load()
}

func (h *LatencyHistogram) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.usec.Store(0)
}

// commandStat is one command table row's counters.
type commandStat struct {
	lat      LatencyHistogram
	failed   atomic.Int64
	rejected atomic.Int64
}

// CommandStats counts, per row of the command table (cmdtable.Command.Index),
// the commands a server answered, their latency, and how many of them were
// refused before running (rejected) or replied an error (failed). The
// counters are written by the connections and read by INFO commandstats,
// LATENCY HISTOGRAM and the metrics scrape.
type CommandStats struct {
	rows []commandStat
}

func newCommandStats() CommandStats {
	return CommandStats{rows: make([]commandStat, len(cmdtable.Commands))}
}

// Observe records one command of row answered after usec microseconds (a
// rejected or failed one too).
func (s *CommandStats) Observe(row int, usec int64) {
	s.rows[row].lat.Observe(usec)
}

// ObserveN records n commands of row answered after usec microseconds
// each: a pipeline's run of one command is two atomic adds, not two per
// command.
func (s *CommandStats) ObserveN(row int, usec, n int64) {
	s.rows[row].lat.ObserveN(usec, n)
}

// Failed records that a command of row replied an error.
func (s *CommandStats) Failed(row int) { s.rows[row].failed.Add(1) }

// Rejected records that a command of row was refused before it ran
// (arity, authentication, the node's ownership checks).
func (s *CommandStats) Rejected(row int) { s.rows[row].rejected.Add(1) }

// CommandCounts is a snapshot of one row's counters.
type CommandCounts struct {
	Count    int64 // commands answered, rejected and failed ones included
	Usec     int64 // their latencies added up
	Failed   int64
	Rejected int64
	Buckets  [LatencyBuckets]int64 // per bucket, not cumulative
}

// Calls is Redis's calls: the commands that ran (answered, less rejected).
func (c CommandCounts) Calls() int64 { return c.Count - c.Rejected }

// Get returns row's counters.
func (s *CommandStats) Get(row int) CommandCounts {
	r := &s.rows[row]
	var c CommandCounts
	c.Buckets, c.Count, c.Usec = r.lat.Get()
	c.Failed, c.Rejected = r.failed.Load(), r.rejected.Load()
	return c
}

// Errors is the number of error replies over every row (INFO's
// total_error_replies).
func (s *CommandStats) Errors() int64 {
	var n int64
	for i := range s.rows {
		n += s.rows[i].failed.Load() + s.rows[i].rejected.Load()
	}
	return n
}

func (s *CommandStats) reset() {
	for i := range s.rows {
		r := &s.rows[i]
		r.lat.reset()
		r.failed.Store(0)
		r.rejected.Store(0)
	}
}

// WriteCommandStats writes INFO's Commandstats section, Redis's lines for
// every row of rows that answered a command. usec is the time from the
// moment the server had the command to the moment its reply was ready
// (the whole pipeline it came in, see docs/INTERNALS.md), not Redis's CPU
// time in the command.
func WriteCommandStats(w *InfoWriter, s *CommandStats, rows []*cmdtable.Command) {
	w.Section("Commandstats")
	for _, ci := range rows {
		c := s.Get(ci.Index)
		if c.Count == 0 {
			continue
		}
		b := make([]byte, 0, 96)
		b = append(b, "calls="...)
		b = strconv.AppendInt(b, c.Calls(), 10)
		b = append(b, ",usec="...)
		b = strconv.AppendInt(b, c.Usec, 10)
		b = append(b, ",usec_per_call="...)
		b = strconv.AppendFloat(b, float64(c.Usec)/float64(c.Count), 'f', 2, 64)
		b = append(b, ",rejected_calls="...)
		b = strconv.AppendInt(b, c.Rejected, 10)
		b = append(b, ",failed_calls="...)
		b = strconv.AppendInt(b, c.Failed, 10)
		w.Field("cmdstat_"+ci.Name, string(b))
	}
}
