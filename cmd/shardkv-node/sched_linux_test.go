package main

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBatchScheduling: every thread of the process, those running when the
// policy is set and those the runtime starts afterwards, runs under
// SCHED_BATCH.
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

	tasks := threads(t)
	old := map[string]bool{}
	for _, task := range before {
		old[task.Name()] = true
	}
	started := 0
	for _, task := range tasks {
		if !old[task.Name()] {
			started++
		}
	}
	if started == 0 {
		t.Fatal("the runtime started no thread: nothing shows that new threads inherit the policy")
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			t.Fatalf("task %q", task.Name())
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err == unix.ESRCH {
			continue
		}
		if err != nil {
			t.Fatalf("sched_getattr %d: %v", tid, err)
		}
		if attr.Policy != unix.SCHED_BATCH {
			t.Errorf("thread %d: policy %d, want SCHED_BATCH (%d)", tid, attr.Policy, unix.SCHED_BATCH)
		}
	}
}

func threads(t *testing.T) []os.DirEntry {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}
