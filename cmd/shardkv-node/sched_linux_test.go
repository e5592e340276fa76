package main

import (
	"os"
	"runtime"
	"sync"
	"testing"
)

// TestBatchScheduling: every thread of the process, those running when the
// policy is set and those the runtime starts afterwards, runs under
// SCHED_BATCH. (integration/sched_linux_test.go checks the node binary's
// threads from outside, with and without -sched-batch.)
func TestBatchScheduling(t *testing.T) {
	if err := batchScheduling(); err != nil {
		t.Skipf("this sandbox refuses sched_setattr: %v", err)
	}
	before := threads(t)
	// Goroutines locked to their threads while others keep running make
	// the runtime start new threads; exiting locked, they end them, so that
	// a rerun (-count) starts new ones again.
	const extra = 4
	var running, release sync.WaitGroup
	running.Add(extra)
	release.Add(1)
	for i := 0; i < extra; i++ {
		go func() {
			runtime.LockOSThread()
			running.Done()
			release.Wait()
		}()
	}
	running.Wait()
	defer release.Done()

	started := 0
	for tid := range threads(t) {
		if !before[tid] {
			started++
		}
	}
	if started == 0 {
		t.Fatal("the runtime started no thread: nothing shows that new threads inherit the policy")
	}
	switched, err := setBatchOnce()
	if err != nil {
		t.Fatal(err)
	}
	if switched != 0 {
		t.Errorf("%d of the process's threads were not under SCHED_BATCH", switched)
	}
}

func threads(t *testing.T) map[string]bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, task := range tasks {
		m[task.Name()] = true
	}
	return m
}
