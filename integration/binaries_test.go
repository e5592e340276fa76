package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/version"
	"github.com/shardkv/shardkv/rangemap"
)

// TestVersionFlag: every binary prints the one shardkv version for
// --version and -version, and exits 0 without starting anything.
func TestVersionFlag(t *testing.T) {
	needBinaries(t)
	for _, name := range []string{"shardkv-node", "shardkv-proxy", "shardkv"} {
		for _, flag := range []string{"--version", "-version"} {
			out, err := exec.Command(bin(name), flag).CombinedOutput()
			if want := name + " " + version.Version + "\n"; err != nil || string(out) != want {
				t.Errorf("%s %s = %q, %v; want %q", name, flag, out, err, want)
			}
		}
	}
	if out, err := exec.Command(bin("shardkv"), "version").CombinedOutput(); err != nil || string(out) != "shardkv "+version.Version+"\n" {
		t.Errorf("shardkv version = %q, %v", out, err)
	}
}

// TestConfigFile starts a node and a proxy from config files in redis.conf
// syntax alone (redis.conf's names and our flag names, quotes, comments),
// with one flag on the command line that overrides the file, and checks
// that each setting took effect. A file with a directive shardkv does not
// have is refused with its line.
func TestConfigFile(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	ports := freePorts(t, 2)
	m := &rangemap.Map{Shards: []rangemap.Shard{{Name: "s0", Start: 0, End: 1, Host: "127.0.0.1", Port: ports[0]}}}
	mapFile := filepath.Join(dir, "map.json")
	writeMap(t, mapFile, m)
	const nodePass, clientPass = "node secret #1", `it's "quoted"`
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nodeConf := write("node.conf", fmt.Sprintf(`# shardkv-node, the way redis.conf says it
PORT %d
bind 127.0.0.1
dir %s
appendfsync always
requirepass "node secret #1"
maxclients 50
loglevel notice
Strict-Indexes yes
client-output-buffer-limit normal 0 0 0
client-output-buffer-limit pubsub 64mb 16mb 90
client-output-buffer-limit normal 10mb 5mb 30
`, ports[0], filepath.Join(dir, "node-data")))
	proxyConf := write("proxy.conf", fmt.Sprintf(`port %d
bind 127.0.0.1
map %s
node-password 'node secret #1'
requirepass "it's \"quoted\""
timeout 3s
client-output-buffer-limit normal 20mb 0 0
`, ports[1], mapFile))

	node := &Proc{Name: "s0", Bin: bin("shardkv-node"), Args: []string{"-config", nodeConf, "-maxclients", "77"},
		Addr: m.Shards[0].Addr(), Password: nodePass, LogPath: filepath.Join(dir, "logs", "s0.log")}
	proxy := &Proc{Name: "proxy", Bin: bin("shardkv-proxy"), Args: []string{"-config", proxyConf},
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[1]), Password: clientPass, LogPath: filepath.Join(dir, "logs", "proxy.log")}
	t.Cleanup(func() {
		for _, p := range []*Proc{proxy, node} {
			p.Kill()
			p.checkLog(t)
		}
	})
	node.Start(t)
	node.WaitReady(t)
	proxy.Start(t)
	proxy.WaitReady(t)
	ctx := context.Background()

	direct := redis.NewClient(&redis.Options{Addr: node.Addr, MaxRetries: -1})
	defer direct.Close()
	if err := direct.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING to the node without the file's requirepass: %v; want NOAUTH", err)
	}
	authed := redis.NewClient(&redis.Options{Addr: node.Addr, Password: nodePass, MaxRetries: -1})
	defer authed.Close()
	for param, want := range map[string]string{
		"maxclients":  "77", // the command line wins over the file's 50
		"appendfsync": "always",
		"dir":         filepath.Join(dir, "node-data"),
		// The file's lines in order, each class as its last line set it.
		"client-output-buffer-limit": "normal 10485760 5242880 30 slave 268435456 67108864 60 pubsub 67108864 16777216 90",
	} {
		got, err := authed.ConfigGet(ctx, param).Result()
		if err != nil || got[param] != want {
			t.Errorf("node CONFIG GET %s = %v, %v; want %q", param, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node-data")); err != nil {
		t.Errorf("the node's data is not in the file's dir: %v", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr, Password: clientPass, MaxRetries: -1})
	defer rdb.Close()
	// strict-indexes yes: an index must be created first.
	if err := rdb.Set(ctx, "cf:a", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "no such index 'cf'") {
		t.Errorf("SET into an index never created with strict-indexes yes: %v", err)
	}
	must(t, rdb.Do(ctx, "INDEX.CREATE", "cf").Err())
	must(t, rdb.Set(ctx, "cf:a", "1", 0).Err())
	if got, err := rdb.Get(ctx, "cf:a").Result(); err != nil || got != "1" {
		t.Errorf("GET cf:a through the proxy = %q, %v", got, err)
	}
	if got, err := rdb.ConfigGet(ctx, "client-output-buffer-limit").Result(); err != nil ||
		got["client-output-buffer-limit"] != "normal 20971520 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60" {
		t.Errorf("proxy CONFIG GET client-output-buffer-limit = %v, %v; want the file's normal class", got, err)
	}
	anon := redis.NewClient(&redis.Options{Addr: proxy.Addr, MaxRetries: -1})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING to the proxy without the file's requirepass: %v; want NOAUTH", err)
	}

	bad := write("bad.conf", "port 7001\n# copied from redis.conf:\nsave 3600 1\n")
	for _, b := range []string{"shardkv-node", "shardkv-proxy"} {
		out, err := exec.Command(bin(b), "-config", bad).CombinedOutput()
		if want := bad + `:3: unknown directive "save"`; err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s -config with a save line: %v\n%s\nwant it refused with %q", b, err, out, want)
		}
	}
}
