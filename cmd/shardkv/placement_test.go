package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/rangemap"
)

// clusterPlacement: a new data directory gets hash tags with the default
// map, an old one (shard files, no record) keeps whole-key positions, and a
// recorded mode wins over the default and refuses a map that differs.
func TestClusterPlacement(t *testing.T) {
	old := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "s0"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "s0", "000001.data"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	withRecord := func(mode string) func(t *testing.T) string {
		return func(t *testing.T) string {
			dir := old(t)
			os.WriteFile(filepath.Join(dir, placementFile), []byte(mode+"\n"), 0o644)
			return dir
		}
	}
	fresh := func(t *testing.T) string { return t.TempDir() }
	for _, c := range []struct {
		name     string
		dir      func(t *testing.T) string
		mapGiven bool
		mapTags  bool
		want     bool
		wantErr  string
	}{
		{"new dir, default map", fresh, false, false, true, ""},
		{"old dir, default map", old, false, false, false, ""},
		{"recorded tags, default map", withRecord(placementTags), false, false, true, ""},
		{"recorded whole, default map", withRecord(placementWhole), false, false, false, ""},
		{"new dir, map without tags", fresh, true, false, false, ""},
		{"new dir, map with tags", fresh, true, true, true, ""},
		{"old dir, map with tags", old, true, true, false, "holds shard data written with whole-key placement"},
		{"old dir, map without tags", old, true, false, false, ""},
		{"recorded whole, map with tags", withRecord(placementWhole), true, true, false, "cannot change"},
		{"recorded tags, map without tags", withRecord(placementTags), true, false, false, "cannot change"},
		{"bad record", withRecord("maybe"), false, false, false, "must say"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			m := rangemap.Default()
			m.HashTags = c.mapTags
			err := clusterPlacement(dir, m, c.mapGiven)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || m.HashTags != c.want {
				t.Fatalf("hash tags %v, %v; want %v", m.HashTags, err, c.want)
			}
			rec, err := os.ReadFile(filepath.Join(dir, placementFile))
			wantRec := placementWhole
			if c.want {
				wantRec = placementTags
			}
			if err != nil || strings.TrimSpace(string(rec)) != wantRec {
				t.Fatalf("recorded %q, %v; want %s", rec, err, wantRec)
			}
			// The next run agrees, whatever the directory holds by then.
			again := rangemap.Default()
			if err := clusterPlacement(dir, again, false); err != nil || again.HashTags != c.want {
				t.Fatalf("next run: %v, %v", again.HashTags, err)
			}
		})
	}
}
