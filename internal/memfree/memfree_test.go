package memfree

import (
	"testing"
	"time"
)

// A release below the threshold schedules nothing; one past it runs
// FreeOSMemory, which starts the count again.
func TestReleasedRunsOverThreshold(t *testing.T) {
	waitFor(t, func() bool { return !pending })
	released.Store(0)
	Released(1 << 20)
	mu.Lock()
	scheduled, before := pending, last
	mu.Unlock()
	if scheduled {
		t.Fatal("a release under the threshold scheduled a run")
	}
	Released(threshold)
	waitFor(t, func() bool { return !pending && last != before })
	if n := released.Load(); n != 0 {
		t.Errorf("released after the run = %d, want 0", n)
	}
}

// A connection that went with a few megabytes is enough.
func TestGoneRunsOverItsThreshold(t *testing.T) {
	waitFor(t, func() bool { return !pending })
	released.Store(0)
	mu.Lock()
	before := last
	mu.Unlock()
	Gone(goneThreshold - 1)
	mu.Lock()
	scheduled := pending
	mu.Unlock()
	if scheduled {
		t.Fatal("a release under the threshold scheduled a run")
	}
	Gone(1)
	waitFor(t, func() bool { return !pending && last != before })
}

// waitFor waits until cond holds under mu.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("FreeOSMemory did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
