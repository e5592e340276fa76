package shardnode

import "testing"

// The write clock dates a sequence number by the first sample at or above
// it: idle counts from there, is 0 for a write no sample covers yet, and
// counts from the start for a key written before it. Thinning keeps the
// start and the newest samples, and never makes a key look idler.
func TestWriteClock(t *testing.T) {
	var last uint64 = 100 // keys 1..100 were on disk at the start
	wc := &writeClock{last: func() uint64 { return last }, stop: make(chan struct{})}
	const t0 = 1_000_000
	wc.sample(t0)
	last = 105 // written in the first second
	wc.sample(t0 + 1000)
	wc.sample(t0 + 2000) // no writes: no sample
	last = 110
	wc.sample(t0 + 3000)
	for _, tc := range []struct {
		seq  uint64
		now  int64
		want int64
	}{
		{50, t0 + 5500, 5},  // before the start: since the start
		{100, t0 + 5500, 5}, // the newest at the start
		{101, t0 + 5500, 4}, // covered by the sample at t0+1000
		{105, t0 + 1500, 0},
		{106, t0 + 5500, 2}, // covered at t0+3000
		{111, t0 + 5500, 0}, // after the newest sample
		{106, t0 + 2000, 0}, // a clock read before the sample: not negative
	} {
		if got := wc.idle(tc.seq, tc.now); got != tc.want {
			t.Errorf("idle(%d, t0+%d) = %d, want %d", tc.seq, tc.now-t0, got, tc.want)
		}
	}

	for i := 0; i < 3*maxClockSamples; i++ {
		last++
		wc.sample(t0 + 4000 + int64(i)*1000)
	}
	if n := len(wc.samples); n > maxClockSamples {
		t.Fatalf("%d samples, want at most %d", n, maxClockSamples)
	}
	if wc.samples[0].seq != 100 || wc.samples[0].at != t0 {
		t.Fatalf("the start sample is gone: %+v", wc.samples[0])
	}
	for i := 1; i < len(wc.samples); i++ {
		if wc.samples[i].seq <= wc.samples[i-1].seq || wc.samples[i].at <= wc.samples[i-1].at {
			t.Fatalf("samples out of order at %d: %+v %+v", i, wc.samples[i-1], wc.samples[i])
		}
	}
	now := t0 + 4000 + int64(3*maxClockSamples)*1000
	if got := wc.idle(last, now); got != 1 {
		t.Errorf("the newest write: idle %d, want 1 (recent samples are kept)", got)
	}
	if got := wc.idle(50, now); got != (now-t0)/1000 {
		t.Errorf("a key from before the start: idle %d, want %d", got, (now-t0)/1000)
	}
	if got, exact := wc.idle(200, now), (now-(t0+4000+int64(200-111)*1000))/1000; got > exact {
		t.Errorf("an old write: idle %d, more than the exact %d", got, exact)
	}
}
