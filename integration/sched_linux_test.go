package integration

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNodeSchedulingPolicy: a shard node runs every thread under
// SCHED_BATCH unless started with -sched-batch=false; the proxy keeps the
// default policy.
func TestNodeSchedulingPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantNode int
	}{
		{"default", nil, unix.SCHED_BATCH},
		{"off", []string{"-sched-batch=false"}, unix.SCHED_NORMAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := StartCluster(t, Options{Shards: 1, NodeArgs: tc.args})
			rdb := c.Client()
			if err := rdb.Set(t.Context(), "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET through the proxy: %v", err)
			}
			checkPolicy(t, "node", c.Nodes[0].Pid(), tc.wantNode)
			checkPolicy(t, "proxy", c.Proxy.Pid(), unix.SCHED_NORMAL)
		})
	}
}

// checkPolicy checks the scheduling policy of every thread of pid.
func checkPolicy(t *testing.T, what string, pid, want int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 2 {
		t.Fatalf("%s: %d threads; a Go server has several", what, len(tasks))
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
		if int(attr.Policy) != want {
			t.Errorf("%s thread %d: policy %d, want %d", what, tid, attr.Policy, want)
		}
	}
}
