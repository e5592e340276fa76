package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Databases through the proxy and three nodes: every client library's
// database option (go-redis DB, redis-py db, ioredis db, node-redis's URL)
// reaches the nodes, and what a client does in database 3 stays there.

// dbKeys returns n keys of every shard of c.
func dbKeys(c *Cluster, prefix string, n int) []string {
	var keys []string
	for i := range c.Map.Shards {
		keys = append(keys, c.KeysOn(i, prefix, n)...)
	}
	return keys
}

// setZero writes "zero-<key>" under every key in database 0, which the
// tests then check a client of database 3 leaves alone.
func setZero(t *testing.T, c *Cluster, keys []string) *redis.Client {
	t.Helper()
	ctx := context.Background()
	z := c.Client()
	for _, k := range keys {
		if err := z.Set(ctx, k, "zero-"+k, 0).Err(); err != nil {
			t.Fatalf("SET %s in db 0: %v", k, err)
		}
	}
	return z
}

func checkZero(t *testing.T, z *redis.Client, keys []string) {
	t.Helper()
	ctx := context.Background()
	vs, err := z.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatalf("MGET in db 0: %v", err)
	}
	for i, k := range keys {
		if vs[i] != "zero-"+k {
			t.Errorf("db 0 %s = %v, want %q", k, vs[i], "zero-"+k)
		}
	}
	if n, err := z.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Errorf("DBSIZE of db 0 = %d, %v; want %d", n, err, len(keys))
	}
}

// TestDatabasesGoRedis: go-redis with DB 3: SET, GET, MGET, DEL, SCAN,
// DBSIZE and FLUSHDB in database 3, isolated from database 0; MOVE, WATCH
// and INFO keyspace per database; SWAPDB refused.
func TestDatabasesGoRedis(t *testing.T) {
	c := StartCluster(t, Options{})
	ctx := context.Background()
	keys := dbKeys(c, "godb", 3)
	z := setZero(t, c, keys)
	r := c.ClientWith(func(o *redis.Options) { o.DB = 3 })
	for _, k := range keys {
		if err := r.Set(ctx, k, "three-"+k, 0).Err(); err != nil {
			t.Fatalf("SET %s in db 3: %v", k, err)
		}
	}
	for _, k := range keys {
		if v, err := r.Get(ctx, k).Result(); err != nil || v != "three-"+k {
			t.Fatalf("GET %s in db 3 = %q, %v", k, v, err)
		}
	}
	vs, err := r.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if vs[i] != "three-"+k {
			t.Errorf("MGET %s in db 3 = %v", k, vs[i])
		}
	}
	if n, err := r.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Fatalf("DBSIZE of db 3 = %d, %v; want %d", n, err, len(keys))
	}
	var scanned []string
	iter := r.Scan(ctx, 0, "", 2).Iterator()
	for iter.Next(ctx) {
		if !slices.Contains(scanned, iter.Val()) {
			scanned = append(scanned, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(scanned)
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(scanned, want) {
		t.Fatalf("SCAN of db 3: %q, want %q", scanned, want)
	}
	checkZero(t, z, keys)
	info, err := z.Info(ctx, "keyspace").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := strconv.Itoa(len(keys))
	if !strings.Contains(info, "db0:keys="+n+",") || !strings.Contains(info, "db3:keys="+n+",") || strings.Contains(info, "db1:") {
		t.Fatalf("INFO keyspace:\n%s", info)
	}

	// DEL in db 3 leaves db 0's key.
	if n, err := r.Del(ctx, keys[0]).Result(); err != nil || n != 1 {
		t.Fatalf("DEL in db 3 = %d, %v", n, err)
	}
	// MOVE from db 0 into db 3 (each key's shard is the same in both).
	if ok, err := z.Move(ctx, keys[0], 3).Result(); err != nil || !ok {
		t.Fatalf("MOVE %s 3 = %v, %v", keys[0], ok, err)
	}
	if ok, err := z.Move(ctx, keys[1], 3).Result(); err != nil || ok {
		t.Fatalf("MOVE onto an existing key = %v, %v; want false", ok, err)
	}
	if v, err := r.Get(ctx, keys[0]).Result(); err != nil || v != "zero-"+keys[0] {
		t.Fatalf("db 3 after MOVE: %q, %v", v, err)
	}
	if n, err := z.Exists(ctx, keys[0]).Result(); err != nil || n != 0 {
		t.Fatalf("db 0 after MOVE: EXISTS %d, %v", n, err)
	}
	if ok, err := r.Move(ctx, keys[0], 0).Result(); err != nil || !ok {
		t.Fatalf("MOVE back = %v, %v", ok, err)
	}
	// A pipeline that moves a key, then selects the database it went to
	// and reads it: in order, although the two databases take different
	// node connections.
	conn := z.Conn()
	defer conn.Close()
	var get *redis.StringCmd
	if _, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Move(ctx, keys[2], 5)
		p.Select(ctx, 5)
		get = p.Get(ctx, keys[2])
		p.Move(ctx, keys[2], 0)
		p.Select(ctx, 0)
		return nil
	}); err != nil {
		t.Fatalf("MOVE, SELECT, GET pipeline: %v", err)
	}
	if get.Val() != "zero-"+keys[2] {
		t.Fatalf("GET after MOVE and SELECT in one pipeline: %q", get.Val())
	}

	// WATCH is per database: db 0's write of the key does not abort a
	// transaction watching it in db 3, db 3's does.
	watched := keys[3]
	run := func(write *redis.Client) error {
		return r.Watch(ctx, func(tx *redis.Tx) error {
			if err := write.Set(ctx, watched, "w", 0).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, watched, "tx", 0)
				return nil
			})
			return err
		}, watched)
	}
	if err := run(z); err != nil {
		t.Fatalf("EXEC after a write in another database: %v", err)
	}
	if err := run(c.ClientWith(func(o *redis.Options) { o.DB = 3 })); !errors.Is(err, redis.TxFailedErr) {
		t.Fatalf("EXEC after a write in the same database: %v, want %v", err, redis.TxFailedErr)
	}
	if err := z.Set(ctx, watched, "zero-"+watched, 0).Err(); err != nil {
		t.Fatal(err)
	}

	if err := r.Do(ctx, "SWAPDB", "0", "3").Err(); err == nil || !strings.Contains(err.Error(), "SWAPDB is not supported") {
		t.Fatalf("SWAPDB: %v", err)
	}
	// FLUSHDB of db 3 empties it on every shard and leaves db 0.
	if err := r.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of db 3 after FLUSHDB = %d, %v", n, err)
	}
	checkZero(t, z, keys)
	if err := r.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := z.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of db 0 after FLUSHALL = %d, %v", n, err)
	}
}

// TestDatabasesMoveSurvivesKill: MOVEs acknowledged before a node is
// SIGKILLed (appendfsync always) are in the target database after the
// restart, and in the source no more.
func TestDatabasesMoveSurvivesKill(t *testing.T) {
	c := StartCluster(t, Options{AppendFsync: "always"})
	ctx := context.Background()
	keys := c.KeysOn(0, "mvkill", 20)
	z := setZero(t, c, keys)
	for _, k := range keys {
		if ok, err := z.Move(ctx, k, 9).Result(); err != nil || !ok {
			t.Fatalf("MOVE %s 9 = %v, %v", k, ok, err)
		}
	}
	c.Nodes[0].Signal(t, syscall.SIGKILL)
	c.Nodes[0].WaitExit(t)
	c.StartNode(0)
	c.WaitServing()
	r := c.ClientWith(func(o *redis.Options) { o.DB = 9 })
	for _, k := range keys {
		if v, err := r.Get(ctx, k).Result(); err != nil || v != "zero-"+k {
			t.Fatalf("db 9 %s after restart = %q, %v", k, v, err)
		}
	}
	if n, err := z.Exists(ctx, keys...).Result(); err != nil || n != 0 {
		t.Fatalf("db 0 holds %d moved keys after restart (%v)", n, err)
	}
}

// dbScriptOut is what each client library's script prints.
type dbScriptOut struct {
	Got, Mget, Zero, ZeroAfterFlush []*string
	Dbsize, ZeroDbsize              int64
	Scan                            []string
	Del, DbsizeAfterDel             int64
	DbsizeAfterFlush                int64
}

// checkDBScript checks a client script that ran in database 3 over keys,
// writing "<lib>-<key>", while database 0 held "zero-<key>".
func checkDBScript(t *testing.T, z *redis.Client, keys []string, lib string, out *dbScriptOut) {
	t.Helper()
	value := func(k string) string { return lib + "-" + k }
	zero := func(k string) string { return "zero-" + k }
	checkScriptValues(t, "GET", keys, out.Got, value)
	checkScriptValues(t, "MGET", keys, out.Mget, value)
	checkScriptValues(t, "GET in db 0", keys, out.Zero, zero)
	checkScriptValues(t, "GET in db 0 after FLUSHDB of db 3", keys, out.ZeroAfterFlush, zero)
	n := int64(len(keys))
	if out.Dbsize != n || out.ZeroDbsize != n || out.Del != 1 || out.DbsizeAfterDel != n-1 || out.DbsizeAfterFlush != 0 {
		t.Errorf("counts: %+v (want DBSIZE %d in both, DEL 1, then %d, then 0)", out, n, n-1)
	}
	slices.Sort(out.Scan)
	if want := slices.Sorted(slices.Values(keys)); !slices.Equal(out.Scan, want) {
		t.Errorf("SCAN of db 3: %q, want %q", out.Scan, want)
	}
	checkZero(t, z, keys)
}

const redisPyDBScript = `
import json, sys, redis
addr, keys = sys.argv[1], json.loads(sys.argv[2])
host, port = addr.rsplit(":", 1)
r = redis.Redis(host=host, port=int(port), db=3)
z = redis.Redis(host=host, port=int(port), db=0)
dec = lambda v: None if v is None else v.decode()
for k in keys:
    r.set(k, "py-" + k)
out = {
    "got": [dec(r.get(k)) for k in keys],
    "mget": [dec(v) for v in r.mget(keys)],
    "dbsize": r.dbsize(),
    "scan": sorted(set(k.decode() for k in r.scan_iter(count=2))),
    "zero": [dec(z.get(k)) for k in keys],
    "zerodbsize": z.dbsize(),
    "del": r.delete(keys[0]),
    "dbsizeafterdel": r.dbsize(),
}
r.flushdb()
out["dbsizeafterflush"] = r.dbsize()
out["zeroafterflush"] = [dec(z.get(k)) for k in keys]
r.close()
z.close()
print(json.dumps(out))
`

// TestDatabasesRedisPy: redis-py's Redis with db=3.
func TestDatabasesRedisPy(t *testing.T) {
	needBinaries(t)
	py := redisPython()
	if py == "" {
		t.Skip("no python3 with redis-py (Debian: apt-get install python3-redis; .ci/run does)")
	}
	runDBScript(t, "py", py, nil, "db.py", redisPyDBScript)
}

// runDBScript runs a client library's script (one of the ...DBScript) with
// bin over keys of every shard, database 0 holding other values under the
// same keys, and checks what it printed.
func runDBScript(t *testing.T, lib, bin string, env []string, name, src string) {
	t.Helper()
	c := StartCluster(t, Options{})
	keys := dbKeys(c, lib+"db", 3)
	z := setZero(t, c, keys)
	script := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out dbScriptOut
	runClientScript(t, &out, env, bin, script, c.ProxyAddr, jsonString(t, keys))
	checkDBScript(t, z, keys, lib, &out)
}

const ioredisDBScript = `
const Redis = require("ioredis");
const [addr, keysJSON] = process.argv.slice(2);
const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
const keys = JSON.parse(keysJSON);
(async () => {
	const r = new Redis({ host, port, db: 3 });
	const z = new Redis({ host, port, db: 0 });
	try {
		for (const k of keys) await r.set(k, "io-" + k);
		const out = { got: [], zero: [], zeroafterflush: [] };
		for (const k of keys) out.got.push(await r.get(k));
		out.mget = await r.mget(...keys);
		out.dbsize = await r.dbsize();
		const seen = new Set();
		let cur = "0";
		do {
			const [next, ks] = await r.scan(cur, "COUNT", 2);
			cur = next;
			ks.forEach((k) => seen.add(k));
		} while (cur !== "0");
		out.scan = [...seen];
		for (const k of keys) out.zero.push(await z.get(k));
		out.zerodbsize = await z.dbsize();
		out.del = await r.del(keys[0]);
		out.dbsizeafterdel = await r.dbsize();
		await r.flushdb();
		out.dbsizeafterflush = await r.dbsize();
		for (const k of keys) out.zeroafterflush.push(await z.get(k));
		console.log(JSON.stringify(out));
	} finally {
		r.disconnect();
		z.disconnect();
	}
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestDatabasesIoredis: ioredis with db: 3.
func TestDatabasesIoredis(t *testing.T) {
	nodeBin, env := needNodeModule(t, ioredisDir(), "ioredis", ioredisVersion)
	runDBScript(t, "io", nodeBin, env, "db.js", ioredisDBScript)
}

// nodeRedisVersion is the node-redis the test runs; .ci/run installs the
// same version into nodeRedisDir.
const nodeRedisVersion = "4.7.0"

func nodeRedisDir() string { return npmDir("node-redis-" + nodeRedisVersion) }

const nodeRedisDBScript = `
const { createClient } = require("redis");
const [addr, keysJSON] = process.argv.slice(2);
const keys = JSON.parse(keysJSON);
(async () => {
	const r = createClient({ url: "redis://" + addr + "/3" });
	const z = createClient({ url: "redis://" + addr + "/0" });
	r.on("error", (e) => { console.error(e); process.exit(1); });
	z.on("error", (e) => { console.error(e); process.exit(1); });
	await r.connect();
	await z.connect();
	try {
		for (const k of keys) await r.set(k, "node-" + k);
		const out = { got: [], zero: [], zeroafterflush: [] };
		for (const k of keys) out.got.push(await r.get(k));
		out.mget = await r.mGet(keys);
		out.dbsize = await r.dbSize();
		const seen = new Set();
		for await (const k of r.scanIterator({ COUNT: 2 })) seen.add(k);
		out.scan = [...seen];
		for (const k of keys) out.zero.push(await z.get(k));
		out.zerodbsize = await z.dbSize();
		out.del = await r.del(keys[0]);
		out.dbsizeafterdel = await r.dbSize();
		await r.flushDb();
		out.dbsizeafterflush = await r.dbSize();
		for (const k of keys) out.zeroafterflush.push(await z.get(k));
		console.log(JSON.stringify(out));
	} finally {
		await r.quit();
		await z.quit();
	}
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestDatabasesNodeRedis: node-redis 4 with the database in its URL.
func TestDatabasesNodeRedis(t *testing.T) {
	nodeBin, env := needNodeModule(t, nodeRedisDir(), "redis", nodeRedisVersion)
	runDBScript(t, "node", nodeBin, env, "db.js", nodeRedisDBScript)
}

// TestDatabasesFlushDBNeedsEveryShard: FLUSHDB in database 3 with a node
// down is refused with TRYAGAIN before anything is deleted, as in
// database 0.
func TestDatabasesFlushDBNeedsEveryShard(t *testing.T) {
	c := StartCluster(t, Options{})
	ctx := context.Background()
	r := c.ClientWith(func(o *redis.Options) { o.DB = 3 })
	keys := dbKeys(c, "flushdown", 2)
	for _, k := range keys {
		if err := r.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Nodes[2].Signal(t, syscall.SIGKILL)
	c.Nodes[2].WaitExit(t)
	if err := r.FlushDB(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), c.TryAgainPrefix(2)) {
		t.Fatalf("FLUSHDB with s2 down: %v, want %q...", err, c.TryAgainPrefix(2))
	}
	for _, k := range keys {
		if c.ShardOf(k) == 2 {
			continue
		}
		if v, err := r.Get(ctx, k).Result(); err != nil || v != "v" {
			t.Fatalf("db 3 %s after the refused FLUSHDB = %q, %v", k, v, err)
		}
	}
}
