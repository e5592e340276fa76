package conncmd

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// BenchmarkObserve is what recording one command costs a server: a
// latency into its row's histogram, and the per-batch threshold checks.
func BenchmarkObserve(b *testing.B) {
	o := NewObserver(func() int64 { return 0 }, func() int64 { return 0 }, func() int64 { return 0 })
	defer o.Stop()
	b.Run("command", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			o.Commands.Observe(3, int64(i&1023))
		}
	})
	b.Run("batch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			o.Batch(time.Duration(i & 1023))
		}
	})
	b.Run("clock", func(b *testing.B) {
		t := time.Now()
		for i := 0; i < b.N; i++ {
			_ = time.Since(t)
		}
	})
}

// Redis's trackInstantaneousMetric: each sample is the rate since the
// previous one; the metric is the mean of the last 16 samples.
func TestInstantRate(t *testing.T) {
	var m instant
	m.sample(1000, 0) // the first sample only sets the base
	if m.value() != 0 {
		t.Fatalf("after one sample: %d", m.value())
	}
	for i := int64(1); i <= 16; i++ {
		m.sample(1000+100*i, 50*i) // 50 per 100 ms: 500/s
	}
	if v := m.value(); v != 500 {
		t.Errorf("16 samples of 500/s: %d", v)
	}
	for i := int64(17); i <= 24; i++ {
		m.sample(1000+100*i, 800+0*i) // idle: the counter stops
	}
	if v := m.value(); v != 250 {
		t.Errorf("8 samples of 500/s and 8 of 0: %d", v)
	}
}

func TestBucketOf(t *testing.T) {
	for usec, want := range map[int64]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 1024: 10, 1025: 11, 1 << 24: 24, 1<<24 + 1: 25, 1 << 40: 25} {
		if got := bucketOf(usec); got != want {
			t.Errorf("bucketOf(%d) = %d, want %d", usec, got, want)
		}
	}
}

func TestRedacted(t *testing.T) {
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"AUTH", "pw"}, "AUTH (redacted)"},
		{[]string{"auth", "user", "pw"}, "auth (redacted) (redacted)"},
		{[]string{"HELLO", "3", "AUTH", "default", "pw", "SETNAME", "auth"}, "HELLO 3 AUTH (redacted) (redacted) SETNAME auth"},
		{[]string{"HELLO", "3", "SETNAME", "auth"}, "HELLO 3 SETNAME auth"},
		{[]string{"SET", "auth", "pw"}, "SET auth pw"},
	} {
		a := args(tc.args...)
		red := Redacted(a)
		var got []string
		for i, x := range a {
			if red(i) {
				got = append(got, "(redacted)")
			} else {
				got = append(got, string(x))
			}
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, g, tc.want)
		}
	}
}

// fakeHost is a Host with nothing but an Observer and the command table.
type fakeHost struct{ o *Observer }

func (h fakeHost) RequirePass() string               { return "" }
func (h fakeHost) Databases() int                    { return 1 }
func (h fakeHost) Sessions() []*Session              { return nil }
func (h fakeHost) ConfigParams() []Param             { return h.o.ConfigParams() }
func (h fakeHost) ResetStats()                       { h.o.ResetStats() }
func (h fakeHost) Observer() *Observer               { return h.o }
func (h fakeHost) Lookup(n []byte) *cmdtable.Command { return cmdtable.Lookup(n) }
func (h fakeHost) Side() cmdtable.Side               { return cmdtable.SideProxy }
func (h fakeHost) Commands() []*cmdtable.Command {
	out := make([]*cmdtable.Command, len(cmdtable.Commands))
	for i := range cmdtable.Commands {
		out[i] = &cmdtable.Commands[i]
	}
	return out
}

type fakeConn struct{ s Session }

func (c *fakeConn) Session() *Session        { return &c.s }
func (c *fakeConn) SwitchProto(p resp.Proto) {}
func (c *fakeConn) ResetConn()               {}

func run(h Host, c Conn, args ...string) string {
	a := make([][]byte, len(args))
	for i, x := range args {
		a[i] = []byte(x)
	}
	return string(Handlers[strings.ToLower(args[0])](h, c, nil, a))
}

// TestLatencyMonitor: samples at or over the threshold are recorded, one
// per second (the largest), with the largest ever; LATEST, HISTORY and
// RESET reply Redis's shapes.
func TestLatencyMonitor(t *testing.T) {
	o := NewObserver(func() int64 { return 0 }, func() int64 { return 0 }, func() int64 { return 0 })
	defer o.Stop()
	h, c := fakeHost{o}, &fakeConn{}
	c.s.Init(1, "a", "b", "")
	if _, _, sample := o.Batch(50 * time.Millisecond); sample {
		t.Fatal("a sample with latency-monitor-threshold 0")
	}
	o.Latency.threshold.Store(10)
	for _, d := range []time.Duration{5, 20, 40, 30} {
		if _, _, sample := o.Batch(d * time.Millisecond); sample {
			o.LatencySample(d*time.Millisecond, false)
		} else if d >= 10 {
			t.Errorf("%d ms not sampled", d)
		}
	}
	now := time.Now().Unix()
	latest := run(h, c, "LATENCY", "LATEST")
	want := fmt.Sprintf("*1\r\n*4\r\n$7\r\ncommand\r\n:%d\r\n:40\r\n:40\r\n", now)
	if latest != want && latest != strings.Replace(want, strconv.FormatInt(now, 10), strconv.FormatInt(now-1, 10), 1) {
		t.Errorf("LATENCY LATEST %q, want %q", latest, want)
	}
	if hist := run(h, c, "LATENCY", "HISTORY", "command"); !strings.HasPrefix(hist, "*1\r\n*2\r\n:") || !strings.HasSuffix(hist, ":40\r\n") {
		t.Errorf("LATENCY HISTORY command %q", hist)
	}
	if r := run(h, c, "LATENCY", "RESET", "command", "nosuch"); r != ":1\r\n" {
		t.Errorf("LATENCY RESET command nosuch: %q", r)
	}
	if r := run(h, c, "LATENCY", "LATEST"); r != "*0\r\n" {
		t.Errorf("LATENCY LATEST after RESET: %q", r)
	}
	// HISTOGRAM: cumulative counts at the bounds where they grow.
	get := cmdtable.Lookup([]byte("get")).Index
	for _, us := range []int64{1, 3, 3, 700} {
		o.Commands.Observe(get, us)
	}
	want = "*2\r\n$3\r\nget\r\n*4\r\n$5\r\ncalls\r\n:4\r\n$14\r\nhistogram_usec\r\n*6\r\n:1\r\n:1\r\n:4\r\n:3\r\n:1024\r\n:4\r\n"
	if r := run(h, c, "LATENCY", "HISTOGRAM", "get", "set"); r != want {
		t.Errorf("LATENCY HISTOGRAM get set:\n got %q\nwant %q", r, want)
	}
}
