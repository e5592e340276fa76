package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// The proxy answers CLUSTER as a Redis Cluster of one master owning every
// slot, at the address the client connected to, so cluster-aware clients
// at their default settings send everything to it. These tests hold the
// replies to redis-server 7.0.15's in cluster mode (shapes; ids, addresses
// and ports differ) and run go-redis, ioredis and redis-py cluster clients
// through the real binaries.

// clusterStep is a command whose reply from the proxy must have the shape
// of redis-server's. "<myid>" in args stands for the target's node id.
type clusterStep []string

var clusterSteps = []clusterStep{
	{"CLUSTER", "SLOTS"}, {"CLUSTER", "SHARDS"}, {"CLUSTER", "NODES"}, {"CLUSTER", "INFO"},
	{"CLUSTER", "MYID"}, {"CLUSTER", "KEYSLOT", "foo"}, {"CLUSTER", "keyslot", "{user}x"}, {"CLUSTER", "HELP"},
	{"CLUSTER", "LINKS"}, {"CLUSTER", "REPLICAS", "<myid>"}, {"CLUSTER", "SLAVES", "<myid>"},
	{"CLUSTER", "COUNT-FAILURE-REPORTS", "<myid>"}, {"CLUSTER", "REPLICAS", "nosuch"},
	// Redis's errors: arity of the command and of each subcommand, the
	// unknown subcommand.
	{"CLUSTER"}, {"CLUSTER", "FOO"}, {"CLUSTER", "KEYSLOT"}, {"CLUSTER", "KEYSLOT", "a", "b"},
	{"CLUSTER", "MYID", "x"}, {"CLUSTER", "INFO", "x"}, {"CLUSTER", "SLOTS", "x"}, {"CLUSTER", "SHARDS", "x"},
	{"CLUSTER", "NODES", "x"}, {"CLUSTER", "HELP", "x"}, {"CLUSTER", "LINKS", "x"}, {"CLUSTER", "MEET", "1.2.3.4"},
	{"CLUSTER", "ADDSLOTS"}, {"CLUSTER", "GETKEYSINSLOT", "1"}, {"CLUSTER", "REPLICAS"},
	{"READONLY"}, {"READWRITE"}, {"READONLY", "x"}, {"READWRITE", "x"},
}

// clusterTarget is one server under comparison and what differs by server.
type clusterTarget struct {
	rc       *rawClient
	id, ip   string
	port     int64
	nodeAddr *regexp.Regexp
}

// TestClusterCommandsLikeRedis compares the proxy's CLUSTER replies with
// those of redis-server --cluster-enabled yes owning slots 0-16383, in RESP2
// and RESP3, and CLUSTER KEYSLOT of many keys with hash tags.
func TestClusterCommandsLikeRedis(t *testing.T) {
	redisAddr := redistest.StartCluster(t)
	c := StartCluster(t, Options{Shards: 2})
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			proxy := newClusterTarget(t, c.ProxyAddr, proto)
			redis := newClusterTarget(t, redisAddr, proto)
			if proxy.ip != "127.0.0.1" {
				t.Errorf("the proxy's CLUSTER SLOTS gives ip %q, want the address the client connected to, 127.0.0.1", proxy.ip)
			}
			for _, st := range clusterSteps {
				got, want := proxy.do(t, st), redis.do(t, st)
				if got != want {
					t.Errorf("%q:\nproxy        %s\nredis-server %s", []string(st), got, want)
				}
			}
		})
	}

	t.Run("KEYSLOT", func(t *testing.T) {
		proxy, redis := dialRaw(t, c.ProxyAddr), dialRaw(t, redisAddr)
		for _, key := range slotKeys(600) {
			got, want := proxy.do(t, "CLUSTER", "KEYSLOT", key), redis.do(t, "CLUSTER", "KEYSLOT", key)
			if got != want {
				t.Errorf("CLUSTER KEYSLOT %q: proxy %q, redis-server %q", key, got, want)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		proxy := dialRaw(t, c.ProxyAddr)
		for _, args := range [][]string{
			{"CLUSTER", "ADDSLOTS", "1"}, {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"}, {"CLUSTER", "MEET", "127.0.0.1", "7000"},
			{"CLUSTER", "FAILOVER"}, {"CLUSTER", "RESET"}, {"CLUSTER", "SETSLOT", "1", "STABLE"}, {"CLUSTER", "FORGET", "x"},
			{"CLUSTER", "SAVECONFIG"}, {"CLUSTER", "COUNTKEYSINSLOT", "1"}, {"CLUSTER", "GETKEYSINSLOT", "1", "10"},
		} {
			want := "-ERR CLUSTER " + strings.ToUpper(args[1]) + " is not supported: "
			if got := proxy.do(t, args...); !strings.HasPrefix(got, want) {
				t.Errorf("%q: %q, want an error beginning %q", args, got, want)
			}
		}
	})

	// READONLY is connection state on both servers (CLIENT INFO flags=r,
	// as Redis shows it) until READWRITE or RESET.
	t.Run("READONLY flag", func(t *testing.T) {
		for name, addr := range map[string]string{"proxy": c.ProxyAddr, "node": c.Map.Shards[0].Addr(), "redis-server": redisAddr} {
			rc := dialRaw(t, addr)
			flags := func() string {
				return regexp.MustCompile(` flags=(\S+)`).FindStringSubmatch(rc.do(t, "CLIENT", "INFO"))[1]
			}
			for _, st := range []struct{ cmd, flags string }{{"READONLY", "r"}, {"READWRITE", "N"}, {"READONLY", "r"}, {"RESET", "N"}} {
				rc.do(t, st.cmd)
				if got := flags(); got != st.flags {
					t.Errorf("%s: after %s CLIENT INFO flags=%s, want %s", name, st.cmd, got, st.flags)
				}
			}
		}
	})

	// redis-py's RedisCluster reads INFO's cluster_enabled before anything.
	t.Run("INFO cluster_enabled", func(t *testing.T) {
		if got := infoField(dialRaw(t, c.ProxyAddr).do(t, "INFO"), "cluster_enabled"); got != "1" {
			t.Errorf("INFO cluster_enabled:%q, want 1", got)
		}
	})
}

func newClusterTarget(t *testing.T, addr, proto string) *clusterTarget {
	t.Helper()
	rc := dialRaw(t, addr)
	if proto == "3" {
		if r := rc.do(t, "HELLO", "3"); r[0] != '%' {
			t.Fatalf("%s: HELLO 3: %q", addr, r)
		}
	}
	tg := &clusterTarget{rc: rc}
	v := parseReply(t, rc.do(t, "CLUSTER", "SLOTS"))
	if len(v.Elems) != 1 || len(v.Elems[0].Elems) < 3 || len(v.Elems[0].Elems[2].Elems) < 3 {
		t.Fatalf("%s: CLUSTER SLOTS of one node owning every slot: %+v", addr, v)
	}
	node := v.Elems[0].Elems[2].Elems
	tg.ip, tg.port, tg.id = string(node[0].Str), node[1].Int, string(node[2].Str)
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(tg.id) {
		t.Fatalf("%s: node id %q is not 40 hex digits", addr, tg.id)
	}
	tg.nodeAddr = regexp.MustCompile(regexp.QuoteMeta(tg.ip) + `:` + strconv.FormatInt(tg.port, 10) + `@\d+`)
	return tg
}

// do runs st and renders its reply with what differs by server (the node
// id, ip, port, the cluster bus port) replaced by placeholders.
func (tg *clusterTarget) do(t *testing.T, st clusterStep) string {
	t.Helper()
	args := make([]string, len(st))
	for i, a := range st {
		args[i] = strings.ReplaceAll(a, "<myid>", tg.id)
	}
	return tg.render(parseReply(t, tg.rc.do(t, args...)))
}

func (tg *clusterTarget) render(v resp.Value) string {
	switch {
	case v.Null:
		return string(v.Type) + "null"
	case v.Type == ':' && v.Int == tg.port:
		return ":<port>"
	case v.Type == ':':
		return ":" + strconv.FormatInt(v.Int, 10)
	case v.IsAggregate():
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = tg.render(e)
		}
		return string(v.Type) + "[" + strings.Join(parts, " ") + "]"
	}
	s := string(v.Str)
	if s == tg.ip {
		return string(v.Type) + "<ip>"
	}
	s = tg.nodeAddr.ReplaceAllString(strings.ReplaceAll(s, tg.id, "<id>"), "<addr>")
	return string(v.Type) + strconv.Quote(s)
}

func parseReply(t *testing.T, raw string) resp.Value {
	t.Helper()
	v, _, err := resp.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("reply %q: %v", raw, err)
	}
	return v
}

// slotKeys returns n keys, the same every run, that exercise the hash tag
// rule: braces anywhere, empty tags, nested and unclosed ones, bytes of
// every value.
func slotKeys(n int) []string {
	r := rand.New(rand.NewPCG(12, 12))
	alphabet := []byte("{}{}ab:x\x00\xff")
	keys := []string{"", "{user}x", "{}x", "x{y}", "{{}}", "foo{}{bar}", "foo{bar}{zap}"}
	for len(keys) < n {
		b := make([]byte, r.IntN(12))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		keys = append(keys, string(b))
	}
	return keys
}

// clusterKeys returns keys with prefix, two on every shard, so that the
// clients' MGET spans shards and the proxy splits it.
func clusterKeys(c *Cluster, prefix string) []string {
	var keys []string
	for i := range c.Map.Shards {
		keys = append(keys, c.KeysOn(i, prefix, 2)...)
	}
	return keys
}

// checkStored reads keys back through a plain client of the proxy: the
// cluster client's writes are where everyone else sees them.
func checkClusterStored(t *testing.T, c *Cluster, keys []string, value func(string) string) {
	t.Helper()
	got, err := c.Client().MGet(context.Background(), keys...).Result()
	if err != nil {
		t.Fatalf("MGET through a plain client: %v", err)
	}
	for i, k := range keys {
		if got[i] != value(k) {
			t.Errorf("%s: plain client reads %v, want %q", k, got[i], value(k))
		}
	}
}

// TestGoRedisClusterClient: go-redis's NewClusterClient, given only the
// proxy's address, at default settings (RESP3) and with RESP2.
func TestGoRedisClusterClient(t *testing.T) {
	c := StartCluster(t, Options{})
	ctx := context.Background()
	for _, proto := range []int{0, 2} {
		t.Run(fmt.Sprintf("Protocol=%d", proto), func(t *testing.T) {
			cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.ProxyAddr}, Protocol: proto})
			defer cc.Close()
			keys := clusterKeys(c, fmt.Sprintf("gocluster%d", proto))
			value := func(k string) string { return "go-" + k }
			for _, k := range keys {
				if err := cc.Set(ctx, k, value(k), 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
			}
			for _, k := range keys {
				if got, err := cc.Get(ctx, k).Result(); err != nil || got != value(k) {
					t.Errorf("GET %s: %q, %v; want %q", k, got, err, value(k))
				}
			}
			got, err := cc.MGet(ctx, append(keys, "gocluster-missing")...).Result()
			if err != nil {
				t.Fatalf("MGET: %v", err)
			}
			for i, k := range keys {
				if got[i] != value(k) {
					t.Errorf("MGET[%d] %s: %v, want %q", i, k, got[i], value(k))
				}
			}
			if got[len(keys)] != nil {
				t.Errorf("MGET of a missing key: %v, want nil", got[len(keys)])
			}
			checkClusterStored(t, c, keys, value)
		})
	}
}

// ioredisVersion is the ioredis the test runs; .ci/run installs the same
// version into the same directory (ioredisDir).
const ioredisVersion = "5.9.3"

// ioredisDir is where ioredis is installed.
func ioredisDir() string { return npmDir("ioredis-" + ioredisVersion) }

// npmDir is where .ci/run installs an npm package for the tests: the
// user's cache, outside the repository, shared between runs.
func npmDir(name string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "shardkv", name)
}

const ioredisScript = `
const Redis = require("ioredis");
const [addr, keysJSON] = process.argv.slice(2);
const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
const keys = JSON.parse(keysJSON);
(async () => {
	const cluster = new Redis.Cluster([{ host, port }]);
	try {
		for (const k of keys) await cluster.set(k, "io-" + k);
		const got = [];
		for (const k of keys) got.push(await cluster.get(k));
		const mget = await cluster.mget(...keys);
		console.log(JSON.stringify({ got, mget }));
	} finally {
		cluster.disconnect();
	}
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestIoredisCluster: ioredis's Cluster, seeded with the proxy's address, at
// default settings, through Node.js.
func TestIoredisCluster(t *testing.T) {
	nodeBin, env := needNodeModule(t, ioredisDir(), "ioredis", ioredisVersion)
	c := StartCluster(t, Options{})
	keys := clusterKeys(c, "iocluster")
	script := filepath.Join(t.TempDir(), "cluster.js")
	if err := os.WriteFile(script, []byte(ioredisScript), 0o644); err != nil {
		t.Fatal(err)
	}
	var out struct{ Got, Mget []*string }
	runClientScript(t, &out, env, nodeBin, script, c.ProxyAddr, jsonString(t, keys))
	value := func(k string) string { return "io-" + k }
	checkScriptValues(t, "GET", keys, out.Got, value)
	checkScriptValues(t, "MGET", keys, out.Mget, value)
	checkClusterStored(t, c, keys, value)
}

// needNodeModule skips the test unless the binaries, Node.js and the npm
// package pkg at version ver (installed in dir by .ci/run) are there; it
// returns node's path and the environment that finds the package.
func needNodeModule(t *testing.T, dir, pkg, ver string) (nodeBin string, env []string) {
	t.Helper()
	needBinaries(t)
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node (Node.js) not installed; .ci/run installs it")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		t.Skipf("%s %s not installed in %s: npm install --prefix %q %s@%s (.ci/run does)", pkg, ver, dir, dir, pkg, ver)
	}
	return nodeBin, []string{"NODE_PATH=" + filepath.Join(dir, "node_modules")}
}

const redisPyScript = `
import json, sys
from redis.cluster import RedisCluster
addr, keys, tagged = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
host, port = addr.rsplit(":", 1)
rc = RedisCluster(host=host, port=int(port))
try:
    for k in keys + tagged:
        rc.set(k, "py-" + k)
    dec = lambda vs: [None if v is None else v.decode() for v in vs]
    print(json.dumps({
        "got": dec([rc.get(k) for k in keys]),
        "mget_nonatomic": dec(rc.mget_nonatomic(keys)),
        "mget_tagged": dec(rc.mget(tagged)),
    }))
finally:
    rc.close()
`

// redisPython returns a Python interpreter that has redis-py with
// RedisCluster (4.1 or later): SHARDKV_PYTHON when set, else python3 on
// PATH, else the system interpreter Debian's python3-redis installs for
// (a python3 on PATH may be another one, such as pyenv's).
func redisPython() string {
	candidates := []string{os.Getenv("SHARDKV_PYTHON")}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	for _, p := range candidates {
		if p == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := exec.CommandContext(ctx, p, "-c", "from redis.cluster import RedisCluster").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	return ""
}

// TestRedisPyCluster: redis-py's RedisCluster, seeded with the proxy's
// address, at default settings. redis-py refuses a cross-slot MGET itself
// (before it sends anything), so MGET runs over keys that share a hash tag,
// which the proxy still spreads over the shards (its positions ignore
// tags), and mget_nonatomic, which groups keys by slot, over keys of every
// shard.
func TestRedisPyCluster(t *testing.T) {
	needBinaries(t)
	py := redisPython()
	if py == "" {
		t.Skip("no python3 with redis-py's RedisCluster (Debian: apt-get install python3-redis; .ci/run does)")
	}
	c := StartCluster(t, Options{})
	keys := clusterKeys(c, "pycluster")
	var tagged []string
	seen := map[int]bool{}
	for j := 0; len(seen) < len(c.Map.Shards); j++ {
		k := "{pytag}k-" + strconv.Itoa(j)
		if sh := c.ShardOf(k); !seen[sh] {
			seen[sh] = true
			tagged = append(tagged, k)
		}
	}
	script := filepath.Join(t.TempDir(), "cluster.py")
	if err := os.WriteFile(script, []byte(redisPyScript), 0o644); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Got           []*string
		MgetNonatomic []*string `json:"mget_nonatomic"`
		MgetTagged    []*string `json:"mget_tagged"`
	}
	runClientScript(t, &out, nil, py, script, c.ProxyAddr, jsonString(t, keys), jsonString(t, tagged))
	value := func(k string) string { return "py-" + k }
	checkScriptValues(t, "GET", keys, out.Got, value)
	checkScriptValues(t, "mget_nonatomic", keys, out.MgetNonatomic, value)
	checkScriptValues(t, "MGET {pytag}", tagged, out.MgetTagged, value)
	checkClusterStored(t, c, append(keys, tagged...), value)
}

// runClientScript runs a client script with a deadline (the process is
// killed when it passes) and decodes the JSON it prints into out.
func runClientScript(t *testing.T, out any, env []string, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), filepath.Base(args[0]), err, stdout, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("%s %s printed %q: %v\nstderr: %s", filepath.Base(bin), filepath.Base(args[0]), stdout, err, stderr.String())
	}
}

func checkScriptValues(t *testing.T, what string, keys []string, got []*string, value func(string) string) {
	t.Helper()
	if len(got) != len(keys) {
		t.Fatalf("%s: %d values for %d keys", what, len(got), len(keys))
	}
	for i, k := range keys {
		if got[i] == nil || *got[i] != value(k) {
			t.Errorf("%s %s: %v, want %q", what, k, got[i], value(k))
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
