package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Texts the servers must reply exactly (ARCHITECTURE.md, docs/INTERNALS.md).
const (
	errOOM = "OOM command not allowed when used memory > 'maxmemory'."
)

func errNoSuchIndex(name string) string { return "ERR no such index '" + name + "'" }

// indexCounts reads INDEX.LIST, a flat array name, count, ... (RESP2) or a
// map (RESP3).
func indexCounts(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	v, err := rdb.Do(context.Background(), "INDEX.LIST").Result()
	if err != nil {
		t.Fatalf("INDEX.LIST: %v", err)
	}
	out := map[string]int64{}
	switch v := v.(type) {
	case map[any]any:
		for k, n := range v {
			out[fmt.Sprint(k)] = toInt(t, n)
		}
	case []any:
		if len(v)%2 != 0 {
			t.Fatalf("INDEX.LIST: odd flat array %v", v)
		}
		for i := 0; i < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = toInt(t, v[i+1])
		}
	default:
		t.Fatalf("INDEX.LIST: unexpected reply %T %v", v, v)
	}
	return out
}

func toInt(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(int64)
	if !ok {
		t.Fatalf("expected an integer, got %T %v", v, v)
	}
	return n
}

func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("%s: error %v, want %q", what, err, want)
	}
}

// TestPyshardBehaviours runs pyshard's behaviours against a strict-index
// cluster whose shard s1 has a size limit: create an index, write then read,
// pop, a missing key, overwrite versus NX, the size limit, strict indexes.
func TestPyshardBehaviours(t *testing.T) {
	const limit = 32 << 10
	c := StartCluster(t, Options{StrictIndexes: true, Sizes: []int64{0, limit, 0}})
	rdb := c.Client()
	ctx := context.Background()

	t.Run("create index, write then read", func(t *testing.T) {
		if err := rdb.Do(ctx, "INDEX.CREATE", "users").Err(); err != nil {
			t.Fatalf("INDEX.CREATE users: %v", err)
		}
		// One key on every shard, so each node's copy of the index is used.
		for i := range c.Map.Shards {
			k := c.KeysOn(i, "users:u", 1)[0]
			if err := rdb.Set(ctx, k, "alice-"+k, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
			if got, err := rdb.Get(ctx, k).Result(); err != nil || got != "alice-"+k {
				t.Fatalf("GET %s = %q, %v; want %q", k, got, err, "alice-"+k)
			}
		}
		if n := indexCounts(t, rdb)["users"]; n != int64(len(c.Map.Shards)) {
			t.Fatalf("INDEX.LIST users = %d keys, want %d", n, len(c.Map.Shards))
		}
	})

	t.Run("pop then read gives nil", func(t *testing.T) {
		if err := rdb.Set(ctx, "users:pop", "bob", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := rdb.GetDel(ctx, "users:pop").Result(); err != nil || got != "bob" {
			t.Fatalf("GETDEL users:pop = %q, %v; want bob", got, err)
		}
		if got, err := rdb.Get(ctx, "users:pop").Result(); err != redis.Nil {
			t.Fatalf("GET after GETDEL = %q, %v; want nil", got, err)
		}
		if got, err := rdb.GetDel(ctx, "users:pop").Result(); err != redis.Nil {
			t.Fatalf("second GETDEL = %q, %v; want nil", got, err)
		}
	})

	t.Run("missing key", func(t *testing.T) {
		if got, err := rdb.Get(ctx, "users:nobody").Result(); err != redis.Nil {
			t.Fatalf("GET users:nobody = %q, %v; want nil", got, err)
		}
		if n, err := rdb.Exists(ctx, "users:nobody").Result(); err != nil || n != 0 {
			t.Fatalf("EXISTS users:nobody = %d, %v; want 0", n, err)
		}
	})

	t.Run("overwrite versus NX", func(t *testing.T) {
		must(t, rdb.Set(ctx, "users:ow", "first", 0).Err())
		must(t, rdb.Set(ctx, "users:ow", "second", 0).Err())
		if got, _ := rdb.Get(ctx, "users:ow").Result(); got != "second" {
			t.Fatalf("after two SETs GET = %q, want second (last write wins)", got)
		}
		if ok, err := rdb.SetNX(ctx, "users:nx", "first", 0).Result(); err != nil || !ok {
			t.Fatalf("SET NX of a new key = %v, %v; want true", ok, err)
		}
		if ok, err := rdb.SetNX(ctx, "users:nx", "second", 0).Result(); err != nil || ok {
			t.Fatalf("SET NX of an existing key = %v, %v; want false", ok, err)
		}
		if n, err := rdb.Do(ctx, "SETNX", "users:nx", "third").Int(); err != nil || n != 0 {
			t.Fatalf("SETNX of an existing key = %d, %v; want 0", n, err)
		}
		if got, _ := rdb.Get(ctx, "users:nx").Result(); got != "first" {
			t.Fatalf("with NX GET = %q, want first (first write wins)", got)
		}
	})

	t.Run("strict indexes", func(t *testing.T) {
		// A write to an index never created is refused, on every shard.
		for i := range c.Map.Shards {
			k := c.KeysOn(i, "nosuch:k", 1)[0]
			wantErr(t, "SET "+k, rdb.Set(ctx, k, "v", 0).Err(), errNoSuchIndex("nosuch"))
			if got, err := rdb.Get(ctx, k).Result(); err != redis.Nil {
				t.Fatalf("GET %s after a refused SET = %q, %v; want nil (nothing stored)", k, got, err)
			}
		}
		wantErr(t, "SETNX", rdb.SetNX(ctx, "nosuch:nx", "v", 0).Err(), errNoSuchIndex("nosuch"))
		// The unnamed index always exists.
		must(t, rdb.Set(ctx, "plainkey", "v", 0).Err())
		// Once created, the index takes writes.
		must(t, rdb.Do(ctx, "INDEX.CREATE", "nosuch").Err())
		must(t, rdb.Set(ctx, "nosuch:k", "v", 0).Err())
		if _, ok := indexCounts(t, rdb)["nosuch"]; !ok {
			t.Fatalf("INDEX.LIST lacks the created index nosuch")
		}
	})

	t.Run("size limit", func(t *testing.T) {
		must(t, rdb.Do(ctx, "INDEX.CREATE", "big").Err())
		value := strings.Repeat("x", 1000)
		keys := c.KeysOn(1, "big:k", 200)
		rec := len(keys[0]) + len(value) // every key here has the same length or one more
		accepted := 0
		var oomErr error
		for _, k := range keys {
			err := rdb.Set(ctx, k, value, 0).Err()
			if err != nil {
				oomErr = err
				break
			}
			accepted++
		}
		wantErr(t, fmt.Sprintf("SET after %d accepted writes of ~%d bytes to a shard limited to %d bytes", accepted, rec, limit), oomErr, errOOM)
		// Live data is keys plus values: the node refuses either the write
		// that would go past the limit or the first one after it went past.
		lo, hi := limit/(rec+2), limit/rec+1
		if accepted < lo || accepted > hi {
			t.Fatalf("s1 accepted %d writes of %d bytes before OOM; a %d-byte limit allows %d to %d", accepted, rec, limit, lo, hi)
		}
		full := keys[accepted]
		wantErr(t, "SET of another key on the full shard", rdb.Set(ctx, keys[accepted+1], value, 0).Err(), errOOM)
		// The full shard still serves reads, and other shards still take writes.
		if got, err := rdb.Get(ctx, keys[0]).Result(); err != nil || got != value {
			t.Fatalf("GET on the full shard = %d bytes, %v", len(got), err)
		}
		if got, err := rdb.Get(ctx, full).Result(); err != redis.Nil {
			t.Fatalf("GET of the refused key = %q, %v; want nil (nothing stored)", got, err)
		}
		for _, i := range []int{0, 2} {
			k := c.KeysOn(i, "big:other", 1)[0]
			must(t, rdb.Set(ctx, k, value, 0).Err())
		}
		// Deletes are allowed on a full shard and make room again.
		if n, err := rdb.Del(ctx, keys[0], keys[1], keys[2]).Result(); err != nil || n != 3 {
			t.Fatalf("DEL of three keys on the full shard = %d, %v; want 3", n, err)
		}
		if err := rdb.Set(ctx, full, value, 0).Err(); err != nil {
			t.Fatalf("SET after deletes made room: %v", err)
		}
		if got, err := rdb.Get(ctx, full).Result(); err != nil || got != value {
			t.Fatalf("GET after the accepted write = %d bytes, %v", len(got), err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
