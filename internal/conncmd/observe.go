package conncmd

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Observer is what both servers record about the commands they serve and
// report alike: per-command counts and latencies (INFO commandstats,
// LATENCY HISTOGRAM, the metrics), the slow log, the latency monitor,
// Redis's instantaneous rates and the memory peak. A server makes one with
// NewObserver and stops it with Stop.
type Observer struct {
	Commands CommandStats
	Slow     SlowLog
	Latency  LatencyMonitor

	rates [3]instant // commands, bytes in, bytes out
	reads [3]func() int64
	peak  atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// statsSamples and statsPeriod are Redis's STATS_METRIC_SAMPLES and the
// period of serverCron's trackInstantaneousMetric: a rate is the mean of the
// last 16 samples taken 100 ms apart.
const (
	statsSamples = 16
	statsPeriod  = 100 * time.Millisecond
)

// instant is one of Redis's instantaneous metrics.
type instant struct {
	samples [statsSamples]int64
	idx     int
	lastMs  int64
	lastV   int64
}

func (m *instant) sample(nowMs, v int64) {
	if m.lastMs != 0 {
		if t := nowMs - m.lastMs; t > 0 {
			m.samples[m.idx] = (v - m.lastV) * 1000 / t
		} else {
			m.samples[m.idx] = 0
		}
		m.idx = (m.idx + 1) % statsSamples
	}
	m.lastMs, m.lastV = nowMs, v
}

func (m *instant) value() int64 {
	var sum int64
	for _, s := range m.samples {
		sum += s
	}
	return sum / statsSamples
}

// NewObserver starts sampling the server's totals of commands processed,
// bytes read and bytes written every 100 ms, as Redis does, for
// instantaneous_ops_per_sec and the kbps rates.
func NewObserver(commands, netIn, netOut func() int64) *Observer {
	o := &Observer{
		Commands: newCommandStats(),
		reads:    [3]func() int64{commands, netIn, netOut},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	o.Slow.init()
	go o.sampleLoop()
	return o
}

var ratesMu sync.Mutex // guards every Observer's rates: a tick and INFO

func (o *Observer) sampleLoop() {
	defer close(o.done)
	t := time.NewTicker(statsPeriod)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case now := <-t.C:
			ms := now.UnixMilli()
			var v [3]int64
			for i, read := range o.reads {
				v[i] = read()
			}
			ratesMu.Lock()
			for i := range o.rates {
				o.rates[i].sample(ms, v[i])
			}
			ratesMu.Unlock()
			o.Memory() // keeps the peak, as Redis's cron does
		}
	}
}

// Stop ends the sampling; idempotent.
func (o *Observer) Stop() {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	<-o.done
}

// OpsPerSec is instantaneous_ops_per_sec.
func (o *Observer) OpsPerSec() int64 { return o.rate(0) }

// InputKbps and OutputKbps are instantaneous_input_kbps and _output_kbps.
func (o *Observer) InputKbps() float64  { return float64(o.rate(1)) / 1024 }
func (o *Observer) OutputKbps() float64 { return float64(o.rate(2)) / 1024 }

func (o *Observer) rate(i int) int64 {
	ratesMu.Lock()
	defer ratesMu.Unlock()
	return o.rates[i].value()
}

// MemoryFigures are the process's memory as INFO memory reports it.
type MemoryFigures struct {
	Used int64 // the Go heap's live and not yet collected objects: Redis's used_memory, what the allocator handed out
	Sys  int64 // everything the Go runtime mapped
	RSS  int64 // resident set size (Linux; 0 elsewhere)
}

var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/total:bytes"},
}

var memMu sync.Mutex // guards memSamples

// Memory reads the process's memory and raises the peak. It does not stop
// the world (runtime/metrics, not ReadMemStats), so a scrape or INFO every
// second costs the servers nothing.
func (o *Observer) Memory() MemoryFigures {
	memMu.Lock()
	metrics.Read(memSamples)
	f := MemoryFigures{
		Used: int64(memSamples[0].Value.Uint64()),
		Sys:  int64(memSamples[1].Value.Uint64()),
	}
	memMu.Unlock()
	f.RSS = readRSS()
	for {
		p := o.peak.Load()
		if f.Used <= p || o.peak.CompareAndSwap(p, f.Used) {
			break
		}
	}
	return f
}

// Peak is the largest Used seen since the start or CONFIG RESETSTAT.
func (o *Observer) Peak() int64 { return o.peak.Load() }

// readRSS reads the resident pages from /proc/self/statm.
func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// ResetStats is the Observer's part of CONFIG RESETSTAT: the command
// counts, the memory peak (the slow log stays, as in Redis).
func (o *Observer) ResetStats() {
	o.Commands.reset()
	o.peak.Store(0)
}

// Batch is what a server tells the Observer about one pipeline it answered:
// how long it took, from the moment its commands were read to the moment
// their replies were ready. It reports the latency in microseconds, whether
// the pipeline's commands go to the slow log, and whether the latency
// monitor wants a sample (the server then calls LatencySample with whether
// every command was a fast one). The server calls Commands.Observe for each
// command, and Slow.Add when slow. A fast pipeline costs two atomic loads.
func (o *Observer) Batch(d time.Duration) (usec int64, slow, sample bool) {
	usec = int64(d / time.Microsecond)
	if th := o.Latency.Threshold(); th > 0 && int64(d/time.Millisecond) >= th {
		sample = true
	}
	th := o.Slow.Threshold()
	return usec, th >= 0 && usec >= th, sample
}

// LatencySample records a slow pipeline in the latency monitor, under
// Redis's event for it: "fast-command" when every command of it is flagged
// fast, "command" otherwise.
func (o *Observer) LatencySample(d time.Duration, fastOnly bool) {
	ev := "command"
	if fastOnly {
		ev = "fast-command"
	}
	o.Latency.Add(ev, int64(d/time.Millisecond))
}

// ConfigParams are the settings of the slow log and the latency monitor,
// with Redis's names, ranges and error texts.
func (o *Observer) ConfigParams() []Param {
	return []Param{
		int64Param("latency-monitor-threshold", 0, &o.Latency.threshold),
		int64Param("slowlog-log-slower-than", -1, &o.Slow.slower),
		int64Param("slowlog-max-len", 0, &o.Slow.maxLen),
	}
}

// int64Param is a setting held in v, from lo to the largest int64.
func int64Param(name string, lo int64, v *atomic.Int64) Param {
	return Param{
		Name: name,
		Get:  func() string { return strconv.FormatInt(v.Load(), 10) },
		Check: func(b []byte) string {
			n, err := strconv.ParseInt(string(b), 10, 64)
			switch {
			case err != nil:
				return "argument couldn't be parsed into an integer"
			case n < lo:
				return "argument must be between " + strconv.FormatInt(lo, 10) + " and 9223372036854775807 inclusive"
			}
			return ""
		},
		Set: func(b []byte) {
			n, _ := strconv.ParseInt(string(b), 10, 64)
			v.Store(n)
		},
	}
}
