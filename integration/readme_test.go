package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/rangemap"
)

// crossShard is the proxy's error for an atomic command whose keys live on
// two shards (docs/INTERNALS.md).
func crossShard(cmd, a, b string) string {
	return fmt.Sprintf("CROSSSHARD keys of '%s' live on different shards (%s, %s); %s is atomic only within one shard", cmd, a, b, cmd)
}

// TestReadmeClaims checks what README.md promises about commands, cross-shard
// semantics, ownership and limits, against a running cluster.
func TestReadmeClaims(t *testing.T) {
	c := StartCluster(t, Options{})
	rdb := c.Client()
	ctx := context.Background()
	name := func(i int) string { return c.Map.Shards[i].Name }
	// Keys on shards 0, 1 and 2, and a second key on shard 0.
	a0, a1, a2 := c.KeysOn(0, "rd:a", 1)[0], c.KeysOn(1, "rd:a", 1)[0], c.KeysOn(2, "rd:a", 1)[0]
	b0 := c.KeysOn(0, "rd:b", 1)[0]

	t.Run("connecting", func(t *testing.T) {
		must(t, rdb.Set(ctx, "idx:a", "1", 0).Err())
		if got, err := rdb.Get(ctx, "idx:a").Result(); err != nil || got != "1" {
			t.Fatalf("GET idx:a = %q, %v", got, err)
		}
		loc, err := rdb.Do(ctx, "SHARD.LOCATE", "idx:a").StringSlice()
		s := c.Map.Shards[c.ShardOf("idx:a")]
		if err != nil || len(loc) != 4 || loc[3] != "idx:a" || loc[0] != rangemap.FormatPosition(rangemap.PositionString("idx:a")) || loc[1] != s.Name || loc[2] != s.Addr() {
			t.Fatalf("SHARD.LOCATE idx:a = %q, %v; want position, %s, %s", loc, err, s.Name, s.Addr())
		}
		r2 := c.ClientWith(func(o *redis.Options) { o.Protocol = 2 })
		hello, err := r2.Do(ctx, "HELLO", "3").Result()
		if err != nil {
			t.Fatalf("HELLO 3: %v", err)
		}
		if fmt.Sprint(hello) == "" || !strings.Contains(fmt.Sprint(hello), "proto:3") && !strings.Contains(fmt.Sprint(hello), "proto 3") {
			t.Fatalf("HELLO 3 reply %v does not say proto 3", hello)
		}
	})

	t.Run("SET options", func(t *testing.T) {
		must(t, rdb.SetArgs(ctx, a0, "v1", redis.SetArgs{TTL: time.Hour}).Err())
		if ttl := rdb.TTL(ctx, a0).Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("SET EX: TTL %v", ttl)
		}
		must(t, rdb.SetArgs(ctx, a0, "v2", redis.SetArgs{KeepTTL: true}).Err())
		if ttl := rdb.TTL(ctx, a0).Val(); ttl <= 0 {
			t.Fatalf("SET KEEPTTL dropped the TTL: %v", ttl)
		}
		at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
		must(t, rdb.SetArgs(ctx, a0, "v3", redis.SetArgs{ExpireAt: at}).Err())
		if exp := rdb.Do(ctx, "EXPIRETIME", a0).Val(); exp != at.Unix() {
			t.Fatalf("SET EXAT: EXPIRETIME %v, want %d", exp, at.Unix())
		}
		must(t, rdb.Do(ctx, "SET", a0, "v4", "PXAT", at.UnixMilli()+5).Err())
		if exp := rdb.Do(ctx, "PEXPIRETIME", a0).Val(); exp != at.UnixMilli()+5 {
			t.Fatalf("SET PXAT: PEXPIRETIME %v, want %d", exp, at.UnixMilli()+5)
		}
		must(t, rdb.Do(ctx, "SET", a0, "v5", "PX", 60000).Err())
		if pttl := rdb.PTTL(ctx, a0).Val(); pttl <= 0 || pttl > time.Minute {
			t.Fatalf("SET PX: PTTL %v", pttl)
		}
		if err := rdb.SetXX(ctx, "rd:none", "v", 0).Err(); err != nil {
			t.Fatalf("SET XX of a missing key: %v", err)
		}
		if err := rdb.Get(ctx, "rd:none").Err(); err != redis.Nil {
			t.Fatalf("SET XX created a key: %v", err)
		}
		if old, err := rdb.SetArgs(ctx, a0, "v6", redis.SetArgs{Get: true}).Result(); err != nil || old != "v5" {
			t.Fatalf("SET GET = %q, %v; want v5", old, err)
		}
		if typ := rdb.Type(ctx, a0).Val(); typ != "string" {
			t.Fatalf("TYPE = %q", typ)
		}
		if typ := rdb.Type(ctx, "rd:none").Val(); typ != "none" {
			t.Fatalf("TYPE of a missing key = %q", typ)
		}
	})

	t.Run("split by shard", func(t *testing.T) {
		must(t, rdb.MSet(ctx, a0, "0", a1, "1", a2, "2", b0, "b").Err())
		vals, err := rdb.MGet(ctx, a2, "rd:missing", a0, a1, b0).Result()
		want := []any{"2", nil, "0", "1", "b"}
		if err != nil || fmt.Sprint(vals) != fmt.Sprint(want) {
			t.Fatalf("MGET = %v, %v; want %v", vals, err, want)
		}
		if n := rdb.Exists(ctx, a0, a1, a2, "rd:missing", a0).Val(); n != 4 {
			t.Fatalf("EXISTS summed = %d, want 4", n)
		}
		if n := rdb.Touch(ctx, a0, a1, a2).Val(); n != 3 {
			t.Fatalf("TOUCH summed = %d, want 3", n)
		}
		if n := rdb.Del(ctx, a1, a2, "rd:missing").Val(); n != 2 {
			t.Fatalf("DEL summed = %d, want 2", n)
		}
		if n := rdb.Unlink(ctx, a0, b0).Val(); n != 2 {
			t.Fatalf("UNLINK summed = %d, want 2", n)
		}
	})

	t.Run("one shard", func(t *testing.T) {
		// Across shards MSETNX is a cross-shard transaction: all or none.
		if ok, err := rdb.MSetNX(ctx, a0, "x", a1, "y").Result(); err != nil || !ok {
			t.Fatalf("MSETNX across shards = %v, %v", ok, err)
		}
		if ok, err := rdb.MSetNX(ctx, a1, "z", a2, "w").Result(); err != nil || ok {
			t.Fatalf("MSETNX across shards over an existing key = %v, %v", ok, err)
		}
		if n := rdb.Exists(ctx, a2).Val(); n != 0 {
			t.Fatalf("a failed MSETNX stored a key")
		}
		must(t, rdb.Del(ctx, a0, a1).Err())
		if ok, err := rdb.MSetNX(ctx, a0, "x", b0, "y").Result(); err != nil || !ok {
			t.Fatalf("MSETNX within one shard = %v, %v", ok, err)
		}
		// RENAME, RENAMENX and COPY across shards run, of strings and
		// collections.
		must(t, rdb.Rename(ctx, a0, a1).Err())
		if ok, err := rdb.RenameNX(ctx, a1, a2).Result(); err != nil || !ok {
			t.Fatalf("RENAMENX across shards = %v, %v", ok, err)
		}
		if n, err := rdb.Copy(ctx, a2, a0, 0, false).Result(); err != nil || n != 1 {
			t.Fatalf("COPY across shards = %d, %v", n, err)
		}
		must(t, rdb.Del(ctx, a2).Err())
		must(t, rdb.SAdd(ctx, a2, "m").Err())
		must(t, rdb.Rename(ctx, a2, a1).Err())
		if got := rdb.SMembers(ctx, a1).Val(); len(got) != 1 || got[0] != "m" {
			t.Fatalf("RENAME of a set across shards: %v", got)
		}
		must(t, rdb.Del(ctx, a1).Err())
		// A blocking move across shards stays refused: its wait would
		// hold the other shard's lock.
		if err := rdb.BLMove(ctx, a2, a1, "LEFT", "LEFT", time.Second).Err(); err == nil || !strings.HasPrefix(err.Error(), crossShard("blmove", name(2), name(1))) {
			t.Fatalf("BLMOVE across shards: %v", err)
		}
		if got := rdb.Get(ctx, a0).Val(); got != "x" {
			t.Fatalf("COPY across shards: %q", got)
		}
		must(t, rdb.Rename(ctx, a0, b0).Err())
		if got := rdb.Get(ctx, b0).Val(); got != "x" {
			t.Fatalf("RENAME within one shard: %q", got)
		}
		if n, err := rdb.Copy(ctx, b0, a0, 0, false).Result(); err != nil || n != 1 {
			t.Fatalf("COPY within one shard = %d, %v", n, err)
		}
		if n, err := rdb.Copy(ctx, b0, b0, 1, true).Result(); err != nil || n != 1 {
			t.Fatalf("COPY ... DB 1 (the README: databases 0-15) = %d, %v", n, err)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a0, "t", 0)
			p.Set(ctx, a1, "t", 0)
			return nil
		})
		// Across shards: a cross-shard transaction.
		if err != nil {
			t.Fatalf("MULTI/EXEC across shards: %v", err)
		}
		if got := rdb.Get(ctx, a1).Val(); got != "t" {
			t.Fatalf("a cross-shard transaction: GET %s: %q", a1, got)
		}
		must(t, rdb.Del(ctx, a1).Err())
		if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a0, "t0", 0)
			p.Set(ctx, b0, "t0", 0)
			return nil
		}); err != nil {
			t.Fatalf("MULTI/EXEC within one shard: %v", err)
		}
		if n := rdb.Exists(ctx, a0, b0).Val(); n != 2 {
			t.Fatalf("after a transaction within one shard EXISTS = %d, want 2", n)
		}
		_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.DBSize(ctx)
			return nil
		})
		if err == nil || !strings.HasPrefix(err.Error(), "CROSSSHARD 'dbsize' runs on every shard") && !strings.HasPrefix(err.Error(), "EXECABORT") {
			t.Fatalf("DBSIZE inside MULTI: %v; want a CROSSSHARD refusal", err)
		}
		must(t, rdb.Watch(ctx, func(*redis.Tx) error { return nil }, a0, a1)) // WATCH across shards
		// WATCH within one shard: a change by another client aborts EXEC.
		err = rdb.Watch(ctx, func(tx *redis.Tx) error {
			must(t, c.Client().Set(ctx, a0, "changed", 0).Err())
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, a0, "from-tx", 0)
				return nil
			})
			return err
		}, a0)
		if err != redis.TxFailedErr {
			t.Fatalf("EXEC after a watched key changed: %v; want %v", err, redis.TxFailedErr)
		}
		if got := rdb.Get(ctx, a0).Val(); got != "changed" {
			t.Fatalf("watched key = %q, want changed", got)
		}
	})

	t.Run("every shard", func(t *testing.T) {
		must(t, rdb.FlushAll(ctx).Err())
		if n := rdb.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("DBSIZE after FLUSHALL = %d", n)
		}
		must(t, rdb.MSet(ctx, a0, "0", a1, "1", a2, "2").Err())
		if n := rdb.DBSize(ctx).Val(); n != 3 {
			t.Fatalf("DBSIZE summed = %d, want 3", n)
		}
		keys := rdb.Keys(ctx, "rd:*").Val()
		sort.Strings(keys)
		want := []string{a0, a1, a2}
		sort.Strings(want)
		if fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Fatalf("KEYS rd:* = %v, want %v", keys, want)
		}
		if k := rdb.RandomKey(ctx).Val(); k != a0 && k != a1 && k != a2 {
			t.Fatalf("RANDOMKEY = %q", k)
		}
		must(t, rdb.FlushDB(ctx).Err())
		if err := rdb.RandomKey(ctx).Err(); err != redis.Nil {
			t.Fatalf("RANDOMKEY of an empty cluster: %v; want nil", err)
		}
	})

	t.Run("indexes", func(t *testing.T) {
		must(t, rdb.Do(ctx, "INDEX.CREATE", "people").Err())
		must(t, rdb.Do(ctx, "INDEX.CREATE", "people").Err()) // creating again is fine
		if err := rdb.Do(ctx, "INDEX.CREATE", "a:b").Err(); err == nil {
			t.Fatal("INDEX.CREATE a:b accepted a name with ':'")
		}
		for i := range c.Map.Shards {
			for _, k := range c.KeysOn(i, "people:p", 2) {
				must(t, rdb.Set(ctx, k, "x", 0).Err())
			}
		}
		if n := indexCounts(t, rdb)["people"]; n != 6 {
			t.Fatalf("INDEX.LIST people = %d, want 6 (summed over shards)", n)
		}
		if n, err := rdb.Do(ctx, "INDEX.DROP", "people").Int(); err != nil || n != 6 {
			t.Fatalf("INDEX.DROP people = %d, %v; want 6", n, err)
		}
		if keys := rdb.Keys(ctx, "people:*").Val(); len(keys) != 0 {
			t.Fatalf("keys left after INDEX.DROP: %v", keys)
		}
	})

	t.Run("connection and server commands", func(t *testing.T) {
		must(t, rdb.Do(ctx, "SELECT", "0").Err())
		if err := rdb.Do(ctx, "SELECT", "16").Err(); err == nil {
			t.Fatal("SELECT 16 accepted")
		}
		cn := rdb.Conn()
		defer cn.Close()
		must(t, cn.ClientSetName(ctx, "readme").Err())
		if got := cn.ClientGetName(ctx).Val(); got != "readme" {
			t.Fatalf("CLIENT GETNAME = %q", got)
		}
		if id := cn.ClientID(ctx).Val(); id <= 0 {
			t.Fatalf("CLIENT ID = %d", id)
		}
		if info := cn.Do(ctx, "CLIENT", "INFO").String(); !strings.Contains(info, "name=readme") {
			t.Fatalf("CLIENT INFO = %s", info)
		}
		if list := rdb.ClientList(ctx).Val(); !strings.Contains(list, "name=readme") {
			t.Fatalf("CLIENT LIST lacks the named client: %s", list)
		}
		if n, err := rdb.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || n < 60 {
			t.Fatalf("COMMAND COUNT = %d, %v", n, err)
		}
		if err := rdb.Do(ctx, "COMMAND", "INFO", "get").Err(); err != nil {
			t.Fatalf("COMMAND INFO get: %v", err)
		}
		if err := rdb.Do(ctx, "COMMAND", "DOCS", "get").Err(); err != nil {
			t.Fatalf("COMMAND DOCS get: %v", err)
		}
		if err := rdb.ConfigGet(ctx, "maxmemory").Err(); err != nil {
			t.Fatalf("CONFIG GET: %v", err)
		}
		if err := rdb.Time(ctx).Err(); err != nil {
			t.Fatalf("TIME: %v", err)
		}
		info := rdb.Info(ctx, "shards").Val()
		for _, s := range c.Map.Shards {
			if !strings.Contains(info, "# Shard_"+s.Name) {
				t.Fatalf("INFO shards lacks # Shard_%s:\n%s", s.Name, info)
			}
		}
		if info := rdb.Info(ctx).Val(); !strings.Contains(info, "redis_version:") || !strings.Contains(info, "loading:0") {
			t.Fatalf("INFO lacks redis_version or loading:0")
		}
		wantErr(t, "SHARD.ASSIGN via the proxy", rdb.Do(ctx, "SHARD.ASSIGN", "s0", "0", "1", "0").Err(),
			"ERR unknown command 'SHARD.ASSIGN', with args beginning with: 's0' '0' '1' '0' ")
		wantErr(t, "XADD", rdb.Do(ctx, "XADD", "s", "*").Err(), "ERR unknown command 'XADD', with args beginning with: 's' '*' ")
		entries, err := rdb.Do(ctx, "SHARD.MAP").Slice()
		if err != nil || len(entries) != len(c.Map.Shards) {
			t.Fatalf("SHARD.MAP = %v, %v", entries, err)
		}
		for i, e := range entries {
			f, ok := e.([]any)
			s := c.Map.Shards[i]
			if !ok || len(f) != 6 || f[0] != s.Name || f[1] != rangemap.FormatPosition(s.Start) || f[2] != rangemap.FormatPosition(s.End) || f[3] != s.Addr() || f[4] != int64(1) || f[5] != "ok" {
				t.Fatalf("SHARD.MAP entry %d = %v; want [%s %v %v %s 1 ok]", i, e, s.Name, s.Start, s.End, s.Addr())
			}
		}
		must(t, rdb.Do(ctx, "SHARD.RELOAD").Err())
	})

	t.Run("nodes refuse keys outside their range", func(t *testing.T) {
		node0 := c.NodeClient(0, "")
		s0 := c.Map.Shards[0]
		want := fmt.Sprintf("WRONGSHARD %s not in [%s,%s) of %s", rangemap.FormatPosition(rangemap.PositionString(a1)),
			rangemap.FormatPosition(s0.Start), rangemap.FormatPosition(s0.End), s0.Name)
		wantErr(t, "SET of another shard's key on s0", node0.Set(ctx, a1, "x", 0).Err(), want)
		if err := rdb.Get(ctx, a1).Err(); err != redis.Nil {
			t.Fatalf("a refused key was stored: %v", err)
		}
		other := c.Map.Shards[1]
		err := node0.Do(ctx, "SHARD.ASSIGN", other.Name, rangemap.FormatPosition(other.Start), rangemap.FormatPosition(other.End), "0").Err()
		wantAssigned := fmt.Sprintf("ERR shard node already assigned %s [%s,%s) size 0; add FORCE to replace it",
			s0.Name, rangemap.FormatPosition(s0.Start), rangemap.FormatPosition(s0.End))
		wantErr(t, "a different SHARD.ASSIGN", err, wantAssigned)
	})

	t.Run("protocol limits", func(t *testing.T) {
		for _, tt := range []struct{ send, want string }{
			{"*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length"},
			{"*1048577\r\n", "-ERR Protocol error: invalid multibulk length"},
			{strings.Repeat("x", 70<<10), "-ERR Protocol error: too big inline request"},
		} {
			conn, err := net.Dial("tcp", c.ProxyAddr)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			go conn.Write([]byte(tt.send))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if strings.TrimRight(line, "\r\n") != tt.want {
				t.Errorf("sending %.20q...: reply %q, %v; want %q", tt.send, line, err, tt.want)
			}
			conn.Close()
		}
	})
}
