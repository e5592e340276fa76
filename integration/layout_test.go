package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph holds the layout to the architecture: the proxy and the
// shard node meet only on the wire (neither imports the other), the storage
// engine imports nothing of shardkv, and resp/ is the protocol alone.
func TestImportGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/shardkv/shardkv/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var ours []string
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, mod) && d != mod+pkg {
				ours = append(ours, strings.TrimPrefix(d, mod))
			}
		}
		return ours
	}
	forbid := map[string][]string{
		"proxy":     {"shardnode", "bitcask"},
		"shardnode": {"proxy"},
		"bitcask":   {""}, // "" matches every package of the module
		"resp":      {""},
		"rangemap":  {""},
		// Every binary imports these two, so they import nothing of ours:
		// the CLI would otherwise pull in a server.
		"internal/config":  {""},
		"internal/version": {""},
	}
	for pkg, bad := range forbid {
		for _, d := range deps(pkg) {
			for _, b := range bad {
				if b == "" || d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s imports %s", pkg, d)
				}
			}
		}
	}
}
