package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/internal/config"
)

// TestNodeSecret: the first run makes a random secret in a 0600 file, later
// runs read the same one back, a file others could read is made 0600, and a
// file that holds no password is refused rather than replaced.
func TestNodeSecret(t *testing.T) {
	dir := t.TempDir()
	log := hclog.NewNullLogger()
	s1, err := nodeSecret(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(s1); err != nil || len(b) != secretBytes {
		t.Fatalf("secret %q is not %d bytes in hex", s1, secretBytes)
	}
	path := filepath.Join(dir, secretFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode().Perm())
	}
	if s2, err := nodeSecret(dir, log); err != nil || s2 != s1 {
		t.Fatalf("second read = %q, %v; want the first secret", s2, err)
	}
	if other, _ := nodeSecret(t.TempDir(), log); other == s1 {
		t.Fatal("two data directories got the same secret")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if s3, err := nodeSecret(dir, log); err != nil || s3 != s1 {
		t.Fatalf("read of a 0644 file = %q, %v", s3, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a 0644 password file stays %v", fi.Mode().Perm())
	}

	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeSecret(dir, log); err == nil || !strings.Contains(err.Error(), "must hold one line") {
		t.Errorf("an empty password file: %v", err)
	}
}

// TestWriteSecretConf: the file handed to -config sets the one directive to
// the secret, whatever bytes it holds, and only its owner can read it.
func TestWriteSecretConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), nodeConfFile)
	const secret = `a "quoted" secret\ with # and 'quotes'`
	if err := writeSecretConf(path, "requirepass", secret); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := config.Parse(f)
	if err != nil || len(lines) != 1 || lines[0].Name != "requirepass" || len(lines[0].Args) != 1 || lines[0].Args[0] != secret {
		t.Fatalf("the file reads back as %+v, %v", lines, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}
