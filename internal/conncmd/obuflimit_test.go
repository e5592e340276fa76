package conncmd

import "testing"

// The CONFIG SET values and what redis-server 7.0.15 replied to each,
// starting from its defaults, one after the other.
func TestOutputLimitsAsRedis(t *testing.T) {
	const (
		wrongNumber = "Wrong number of arguments in buffer limit configuration."
		badClass    = "Invalid client class specified in buffer limit configuration."
		badValue    = "Error in hard, soft or soft_seconds setting in buffer limit configuration."
	)
	o := NewOutputLimits()
	if got, want := o.String(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"; got != want {
		t.Fatalf("defaults: %q, want %q", got, want)
	}
	steps := []struct {
		set, reason, after string
	}{
		{"x", wrongNumber, ""},
		{"normal 1mb 2mb", wrongNumber, ""},
		{"foo 1 2 3", badClass, ""},
		{"master 1 2 3", badClass, ""},
		{"normal 1x 2 3", badValue, ""},
		{"normal 1 2x 3", badValue, ""},
		{"normal 1 2 x", badValue, ""},
		{"normal 1 2 -3", badValue, ""},
		{"normal -1 2 3", badValue, ""},
		{"normal +1 0 0", badValue, ""},
		{"normal 1.5mb 2 3", badValue, ""},
		{"normal 1 2 2147483648", badValue, ""},
		{"normal 1 2 99999999999999999999", badValue, ""},
		{"normal 1 0 1k", badValue, ""},
		{"normal 1 2 3 pubsub", wrongNumber, ""},
		{" ", wrongNumber, ""},
		{" normal 1 2 3", wrongNumber, ""},
		{"normal  1   2 3 ", badClass, ""},
		{"normal 10mb 5mb 60", "", "normal 10485760 5242880 60 slave 268435456 67108864 60 pubsub 33554432 8388608 60"},
		{"pubsub 1k 2k 3 replica 5 5 5", "", "normal 10485760 5242880 60 slave 5 5 5 pubsub 1000 2000 3"},
		{"", "", "normal 10485760 5242880 60 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 0 0 0 normal 5 5 5", "", "normal 5 5 5 slave 5 5 5 pubsub 1000 2000 3"},
		{"NORMAL 1 2 3", "", "normal 1 2 3 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1 2 2147483647", "", "normal 1 2 2147483647 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1 2 4294967296", "", "normal 1 2 0 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1 2 +5", "", "normal 1 2 5 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1 2 03", "", "normal 1 2 3 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1 0 -0", "", "normal 1 0 0 slave 5 5 5 pubsub 1000 2000 3"},
		{"normal 1GB 1Kb 3", "", "normal 1073741824 1024 3 slave 5 5 5 pubsub 1000 2000 3"},
		{"Pubsub 1 0 0", "", "normal 1073741824 1024 3 slave 5 5 5 pubsub 1 0 0"},
		{"normal 18446744073709551616 0 0", "", "normal 18446744073709551615 0 0 slave 5 5 5 pubsub 1 0 0"},
		{"normal 1 2 ", "", "normal 1 2 0 slave 5 5 5 pubsub 1 0 0"},
		{"normal  0 0", "", "normal 0 0 0 slave 5 5 5 pubsub 1 0 0"},
		{"slave 1 2 3", "", "normal 0 0 0 slave 1 2 3 pubsub 1 0 0"},
	}
	for _, s := range steps {
		before := o.String()
		reason := o.Set([]byte(s.set))
		if reason != s.reason {
			t.Errorf("SET %q: reason %q, want %q", s.set, reason, s.reason)
		}
		want := s.after
		if want == "" {
			want = before
		}
		if got := o.String(); got != want {
			t.Errorf("after SET %q: %q, want %q", s.set, got, want)
		}
	}
}

func TestBufferLimitOver(t *testing.T) {
	l := BufferLimit{Hard: 100, Soft: 10, SoftSeconds: 2}
	var since int64
	check := func(used uint64, now int64, want bool) {
		t.Helper()
		if got := l.Over(used, &since, now); got != want {
			t.Errorf("Over(%d) at %d = %v, want %v", used, now, got, want)
		}
	}
	check(100, 1, true) // the hard limit at once
	check(10, 1, false) // first seen over the soft limit
	check(50, 3, false) // for 2 seconds: not more than SoftSeconds
	check(9, 4, false)  // under it again: the clock restarts
	check(10, 5, false)
	check(10, 8, true) // 3 seconds over
	if (BufferLimit{}).On() || !(BufferLimit{Soft: 1}).On() {
		t.Error("On")
	}
}
