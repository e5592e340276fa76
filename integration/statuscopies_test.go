package integration

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// copyRow is the row of addr in status's copies table, as fields.
func copyRow(t *testing.T, out, addr string) []string {
	t.Helper()
	seen := false
	for _, l := range lines(out) {
		if l == "copies:" {
			seen = true
			continue
		}
		if f := strings.Fields(l); seen && len(f) > 1 && f[1] == addr {
			return f
		}
	}
	t.Fatalf("status has no copies row for %s:\n%s", addr, out)
	return nil
}

// TestStatusCopies: with replicas in the etcd map, `shardkv status` lists
// each shard's copies with the role the node says, its link, offset, lag
// behind the primary and health; a replica that does not answer is down.
func TestStatusCopies(t *testing.T) {
	rc := startReplCluster(t, 1, 1, 0)
	ctx := context.Background()
	m := rc.etcdMap()
	paddr, raddr := m.Shards[0].Addr(), m.Shards[0].ReplicaAddrs()[0]
	primary, replica := rc.nodeClient(paddr, false), rc.nodeClient(raddr, true)
	for _, k := range []string{"c1", "c2", "c3"} {
		must(t, rc.rdb.Set(ctx, k, "v", 0).Err())
	}
	waitCaughtUp(t, primary, replica)
	offset := nodeInfo(t, primary, "replication")["master_repl_offset"]
	status := func() string {
		res := runCLI(t, nil, "-addr", rc.proxy.Addr, "status", "--etcd", rc.etcd.endpoint(), "--cluster", etcdCluster,
			"--node-password", failoverPass)
		if res.Code != 0 {
			t.Fatalf("status: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		return res.Stdout
	}
	out := status()
	// SHARD ADDRESS MAP-ROLE ROLE LINK OFFSET LAG-WRITES LAG-SECONDS HEALTH
	if f := copyRow(t, out, paddr); strings.Join(f, " ") != "s0 "+paddr+" primary primary - "+offset+" - - up" {
		t.Errorf("primary's row %q\n%s", f, out)
	}
	// The seconds since the primary's last acknowledgement from it are a
	// number (heartbeats keep it small, but how small is timing).
	f := copyRow(t, out, raddr)
	if len(f) != 9 || strings.Join(f[:7], " ") != "s0 "+raddr+" replica replica up "+offset+" 0" || f[8] != "up" {
		t.Errorf("replica's row %q\n%s", f, out)
	} else if _, err := strconv.Atoi(f[7]); err != nil {
		t.Errorf("replica's lag in seconds %q\n%s", f[7], out)
	}

	rc.nodes[raddr].Signal(t, syscall.SIGSTOP)
	out = status()
	rc.nodes[raddr].Signal(t, syscall.SIGCONT)
	if f := copyRow(t, out, raddr); len(f) < 9 || f[8] != "down:" {
		t.Errorf("a frozen replica's row %q\n%s", f, out)
	}
}
