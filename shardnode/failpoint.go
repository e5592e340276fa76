package shardnode

import (
	"os"
	"strings"
	"syscall"
)

// Fail points for the crash tests of cross-shard transactions
// (docs/TRANSACTIONS.md, "Testing each crash point"): SHARDKV_FAILPOINTS
// names steps, comma separated; a node reaching a named step kills itself
// with SIGKILL, so a test sees the crash exactly there. Only the
// integration tests set it.
var failPoints = func() map[string]bool {
	v := os.Getenv("SHARDKV_FAILPOINTS")
	if v == "" {
		return nil
	}
	m := make(map[string]bool)
	for _, p := range strings.Split(v, ",") {
		m[strings.TrimSpace(p)] = true
	}
	return m
}()

func failPoint(name string) bool { return failPoints[name] }

func crashNow() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
