package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// batchScheduling puts every thread of the process under SCHED_BATCH;
// threads the runtime starts later inherit the policy from the thread that
// clones them.
//
// Why: a shard node is fed by the proxy. Under SCHED_OTHER the node's
// thread, woken by the proxy's write, preempted the proxy in the middle of
// that write (perf: 11,000 of the proxy's 15,000 context switches in 2 s at
// -P 1 were "R ==> shardkv-node", inside its write to a node), so the proxy
// sent its requests a few at a time and the node ran a pass for each few.
// A SCHED_BATCH thread does not preempt on wake-up: it runs on an idle CPU
// at once, or when the running thread blocks or its slice ends. This is the
// use the policy is documented for (sched(7): "workloads that want a
// deterministic scheduling policy without interactivity causing extra
// preemptions (between the workload's tasks)"); an unprivileged process may
// choose it. It leaves nice and priority as they are.
func batchScheduling() error {
	// Threads started while the list is read inherit from a thread that is
	// already switched, or show up in the next reading.
	for {
		changed, err := setBatchOnce()
		if err != nil || changed == 0 {
			return err
		}
	}
}

// setBatchOnce switches the threads not yet under SCHED_BATCH and says how
// many it switched.
func setBatchOnce() (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			if err == unix.ESRCH { // the thread has exited
				continue
			}
			return changed, fmt.Errorf("sched_getattr thread %d: %w", tid, err)
		}
		if attr.Policy == unix.SCHED_BATCH {
			continue
		}
		attr.Policy = unix.SCHED_BATCH
		attr.Priority = 0
		attr.Flags = 0
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
			if err == unix.ESRCH {
				continue
			}
			return changed, fmt.Errorf("sched_setattr SCHED_BATCH thread %d: %w", tid, err)
		}
		changed++
	}
	return changed, nil
}
