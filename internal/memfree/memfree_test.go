package memfree

import (
	"testing"
	"time"
)

// A release past the threshold runs FreeOSMemory once, later; smaller ones
// do not.
func TestReleasedRunsOnceOverThreshold(t *testing.T) {
	mu.Lock()
	before := last
	mu.Unlock()
	Released(1 << 20)
	Released(threshold)
	Released(threshold) // while one is pending: no second run
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := !pending && last != before
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FreeOSMemory did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := released.Load(); n != 0 {
		t.Errorf("released after the run = %d, want 0", n)
	}
}
