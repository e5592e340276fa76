package conncmd

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// latencyTSLen is how many samples Redis's latency monitor keeps per event.
const latencyTSLen = 160

// LatencyMonitor is Redis's latency monitor: per event ("command",
// "fast-command"), the latest samples of at least
// latency-monitor-threshold milliseconds, at most one per second, and the
// largest ever. The threshold is 0 by default, which records nothing.
type LatencyMonitor struct {
	threshold atomic.Int64 // ms; 0: off

	mu     sync.Mutex
	events map[string]*latencySeries
}

type latencySeries struct {
	samples [latencyTSLen]latencySample
	idx     int
	max     int64
}

type latencySample struct{ unix, ms int64 }

// Threshold is latency-monitor-threshold in milliseconds, 0 when off.
func (l *LatencyMonitor) Threshold() int64 { return l.threshold.Load() }

// Add records a sample of ms milliseconds for event, as Redis's
// latencyAddSample: a sample in the same second as the previous one only
// raises it.
func (l *LatencyMonitor) Add(event string, ms int64) {
	now := time.Now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil {
		l.events = map[string]*latencySeries{}
	}
	ts := l.events[event]
	if ts == nil {
		ts = &latencySeries{}
		l.events[event] = ts
	}
	ts.max = max(ts.max, ms)
	prev := &ts.samples[(ts.idx+latencyTSLen-1)%latencyTSLen]
	if prev.unix == now {
		prev.ms = max(prev.ms, ms)
		return
	}
	ts.samples[ts.idx] = latencySample{now, ms}
	ts.idx = (ts.idx + 1) % latencyTSLen
}

func (l *LatencyMonitor) names() []string {
	names := make([]string, 0, len(l.events))
	for n := range l.events {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

var latencyHelp = []string{
	"HISTORY <event>", "    Return time-latency samples for the <event> class.",
	"LATEST", "    Return the latest latency samples for all events.",
	"RESET [<event> ...]", "    Reset latency data of one or more <event> classes.",
	"    (default: reset all data for all event classes)",
	"HISTOGRAM [COMMAND ...]", "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
	"    If no commands are specified then all histograms are replied.",
}

// Latency is LATENCY LATEST | HISTORY event | RESET [event ...] |
// HISTOGRAM [command ...] | HELP. DOCTOR and GRAPH, Redis's reports for a
// person, are not there.
func Latency(h Host, c Conn, out []byte, args [][]byte) []byte {
	o := h.Observer()
	l := &o.Latency
	sub := strings.ToLower(string(args[1]))
	arityErr := func() []byte { return resp.AppendError(out, cmdtable.ErrWrongArity("latency|"+sub)) }
	switch sub {
	case "latest":
		if len(args) != 2 {
			return arityErr()
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		names := l.names()
		out = resp.AppendArray(out, len(names))
		for _, n := range names {
			ts := l.events[n]
			last := ts.samples[(ts.idx+latencyTSLen-1)%latencyTSLen]
			out = resp.AppendArray(out, 4)
			out = resp.AppendBulkString(out, n)
			out = resp.AppendInt(out, last.unix)
			out = resp.AppendInt(out, last.ms)
			out = resp.AppendInt(out, ts.max)
		}
		return out
	case "history":
		if len(args) != 3 {
			return arityErr()
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		ts := l.events[string(args[2])]
		if ts == nil {
			return resp.AppendArray(out, 0)
		}
		var kept []latencySample
		for j := 0; j < latencyTSLen; j++ {
			if s := ts.samples[(ts.idx+j)%latencyTSLen]; s.unix != 0 {
				kept = append(kept, s)
			}
		}
		out = resp.AppendArray(out, len(kept))
		for _, s := range kept {
			out = resp.AppendArray(out, 2)
			out = resp.AppendInt(out, s.unix)
			out = resp.AppendInt(out, s.ms)
		}
		return out
	case "reset":
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		if len(args) == 2 {
			n = len(l.events)
			l.events = nil
		}
		for _, e := range args[2:] {
			if _, ok := l.events[string(e)]; ok {
				delete(l.events, string(e))
				n++
			}
		}
		return resp.AppendInt(out, int64(n))
	case "histogram":
		return latencyHistogram(h, c.Session().Proto, out, args[2:])
	case "help":
		if len(args) != 2 {
			return arityErr()
		}
		return AppendHelp(out, "LATENCY", latencyHelp)
	}
	return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("latency", string(args[1])))
}

// latencyHistogram is LATENCY HISTOGRAM: per command that answered any,
// its count and the cumulative count at each power-of-two bound in
// microseconds where the count grew, Redis's shape.
func latencyHistogram(h Host, proto resp.Proto, out []byte, names [][]byte) []byte {
	s := &h.Observer().Commands
	var rows []*cmdtable.Command
	if len(names) == 0 {
		rows = h.Commands()
	} else {
		for _, n := range names {
			if ci := h.Lookup(n); ci != nil && !slices.Contains(rows, ci) {
				rows = append(rows, ci)
			}
		}
	}
	type hist struct {
		name   string
		counts CommandCounts
	}
	var hs []hist
	for _, ci := range rows {
		if c := s.Get(ci.Index); c.Count > 0 {
			hs = append(hs, hist{ci.Name, c})
		}
	}
	out = resp.AppendMap(out, proto, len(hs))
	for _, x := range hs {
		out = resp.AppendBulkString(out, x.name)
		out = resp.AppendMap(out, proto, 2)
		out = resp.AppendBulkString(out, "calls")
		out = resp.AppendInt(out, x.counts.Count)
		out = resp.AppendBulkString(out, "histogram_usec")
		n := 0
		for _, b := range x.counts.Buckets {
			if b > 0 {
				n++
			}
		}
		out = resp.AppendMap(out, proto, n)
		var cum int64
		for i, b := range x.counts.Buckets {
			if b == 0 {
				continue
			}
			cum += b
			out = resp.AppendInt(out, BucketBound(i))
			out = resp.AppendInt(out, cum)
		}
	}
	return out
}
