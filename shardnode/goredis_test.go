package shardnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/resp"
)

// TestGoRedis drives the node through go-redis's typed API in RESP2 and
// RESP3: the client's handshake (HELLO, CLIENT SETINFO, maintenance
// notifications) succeeds and every reply parses into the type go-redis
// expects.
func TestGoRedis(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			rdb := n.client(proto, func(o *redis.Options) { o.ClientName = "tester" })
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(rdb.FlushAll(ctx).Err())
			must(rdb.Set(ctx, "k", "v", 0).Err())
			if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
				t.Fatalf("GET: %q %v", v, err)
			}
			if _, err := rdb.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("GET missing: %v", err)
			}
			if ok, err := rdb.SetNX(ctx, "k", "x", 0).Result(); err != nil || ok {
				t.Fatalf("SETNX: %v %v", ok, err)
			}
			must(rdb.Set(ctx, "t", "v", 100*time.Second).Err())
			if d, err := rdb.TTL(ctx, "t").Result(); err != nil || d != 100*time.Second {
				t.Fatalf("TTL: %v %v", d, err)
			}
			if d, err := rdb.PTTL(ctx, "t").Result(); err != nil || d <= 99*time.Second || d > 100*time.Second {
				t.Fatalf("PTTL: %v %v", d, err)
			}
			if tm, err := rdb.ExpireTime(ctx, "t").Result(); err != nil || tm < time.Duration(time.Now().Unix())*time.Second {
				t.Fatalf("EXPIRETIME: %v %v", tm, err)
			}
			if ok, err := rdb.ExpireGT(ctx, "t", 50*time.Second).Result(); err != nil || ok {
				t.Fatalf("EXPIRE GT: %v %v", ok, err)
			}
			if n, err := rdb.Incr(ctx, "n").Result(); err != nil || n != 1 {
				t.Fatalf("INCR: %v %v", n, err)
			}
			if f, err := rdb.IncrByFloat(ctx, "f", 2.5).Result(); err != nil || f != 2.5 {
				t.Fatalf("INCRBYFLOAT: %v %v", f, err)
			}
			if err := rdb.Incr(ctx, "k").Err(); err == nil || err.Error() != "ERR value is not an integer or out of range" {
				t.Fatalf("INCR on a string: %v", err)
			}
			vals, err := rdb.MGet(ctx, "k", "missing", "n").Result()
			if err != nil || len(vals) != 3 || vals[0] != "v" || vals[1] != nil || vals[2] != "1" {
				t.Fatalf("MGET: %#v %v", vals, err)
			}
			must(rdb.MSet(ctx, "a", "1", "b", "2").Err())
			if s, err := rdb.GetRange(ctx, "k", 0, -1).Result(); err != nil || s != "v" {
				t.Fatalf("GETRANGE: %q %v", s, err)
			}
			if v, err := rdb.GetEx(ctx, "a", time.Minute).Result(); err != nil || v != "1" {
				t.Fatalf("GETEX: %q %v", v, err)
			}
			if v, err := rdb.GetDel(ctx, "a").Result(); err != nil || v != "1" {
				t.Fatalf("GETDEL: %q %v", v, err)
			}
			if typ, err := rdb.Type(ctx, "b").Result(); err != nil || typ != "string" {
				t.Fatalf("TYPE: %q %v", typ, err)
			}
			if n, err := rdb.Exists(ctx, "b", "b", "zz").Result(); err != nil || n != 2 {
				t.Fatalf("EXISTS: %v %v", n, err)
			}
			must(rdb.Rename(ctx, "b", "c").Err())
			if ok, err := rdb.Copy(ctx, "c", "d", 0, false).Result(); err != nil || ok != 1 {
				t.Fatalf("COPY: %v %v", ok, err)
			}
			keys, err := rdb.Keys(ctx, "*").Result()
			if err != nil || len(keys) != 6 {
				t.Fatalf("KEYS: %v %v", keys, err)
			}
			var scanned []string
			iter := rdb.Scan(ctx, 0, "", 2).Iterator()
			for iter.Next(ctx) {
				scanned = append(scanned, iter.Val())
			}
			if iter.Err() != nil || len(scanned) != 6 {
				t.Fatalf("SCAN: %v %v", scanned, iter.Err())
			}
			if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 6 {
				t.Fatalf("DBSIZE: %v %v", n, err)
			}
			if k, err := rdb.RandomKey(ctx).Result(); err != nil || k == "" {
				t.Fatalf("RANDOMKEY: %q %v", k, err)
			}
			if enc, err := rdb.ObjectEncoding(ctx, "n").Result(); err != nil || enc != "int" {
				t.Fatalf("OBJECT ENCODING: %q %v", enc, err)
			}
			if name, err := rdb.ClientGetName(ctx).Result(); err != nil || name != "tester" {
				t.Fatalf("CLIENT GETNAME: %q %v", name, err)
			}
			if info, err := rdb.ClientInfo(ctx).Result(); err != nil || info.Name != "tester" || info.LibName == "" {
				t.Fatalf("CLIENT INFO: %+v %v", info, err)
			}
			if list, err := rdb.ClientList(ctx).Result(); err != nil || !strings.Contains(list, "name=tester") {
				t.Fatalf("CLIENT LIST: %q %v", list, err)
			}
			cfg, err := rdb.ConfigGet(ctx, "*").Result()
			if err != nil || cfg["appendfsync"] != "everysec" || cfg["databases"] != "1" || cfg["maxmemory"] != "0" {
				t.Fatalf("CONFIG GET: %v %v", cfg, err)
			}
			info, err := rdb.Info(ctx).Result()
			if err != nil || !strings.Contains(info, "redis_version:") || !strings.Contains(info, "loading:0") ||
				!strings.Contains(info, "db0:keys=6,expires=1,avg_ttl=0") || !strings.Contains(info, "shard_name:all") {
				t.Fatalf("INFO: %q %v", info, err)
			}
			if m, err := rdb.InfoMap(ctx, "keyspace").Result(); err != nil || m["Keyspace"]["db0"] == "" {
				t.Fatalf("INFO keyspace map: %v %v", m, err)
			}
			if tm, err := rdb.Time(ctx).Result(); err != nil || time.Since(tm) > time.Minute {
				t.Fatalf("TIME: %v %v", tm, err)
			}
			if n, err := rdb.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || n < 50 {
				t.Fatalf("COMMAND COUNT: %v %v", n, err)
			}
			cmds, err := rdb.Command(ctx).Result()
			if err != nil || cmds["get"] == nil || cmds["get"].Arity != 2 || !cmds["get"].ReadOnly {
				t.Fatalf("COMMAND: %v %v", cmds["get"], err)
			}
			if docs, err := rdb.Do(ctx, "COMMAND", "DOCS", "set").Result(); err != nil || docs == nil {
				t.Fatalf("COMMAND DOCS: %v", err)
			}
			// Raw Do replies: a map in RESP3, a flat list in RESP2.
			idx, err := rdb.Do(ctx, "INDEX.LIST").Result()
			switch v := idx.(type) {
			case map[any]any:
				if proto != 3 || v[""] != int64(6) {
					t.Fatalf("INDEX.LIST RESP%d: %#v", proto, v)
				}
			case []any:
				if proto != 2 || len(v) != 2 || v[0] != "" || v[1] != int64(6) {
					t.Fatalf("INDEX.LIST RESP%d: %#v", proto, v)
				}
			default:
				t.Fatalf("INDEX.LIST: %#v %v", idx, err)
			}
			// Transactions.
			res, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "tx", "1", 0)
				p.Incr(ctx, "tx")
				return nil
			})
			if err != nil || len(res) != 2 || res[1].(*redis.IntCmd).Val() != 2 {
				t.Fatalf("MULTI/EXEC: %v %v", res, err)
			}
			// A pipeline.
			pipe := rdb.Pipeline()
			for i := 0; i < 100; i++ {
				pipe.Set(ctx, fmt.Sprintf("p%d", i), i, 0)
				pipe.Get(ctx, fmt.Sprintf("p%d", i))
			}
			out, err := pipe.Exec(ctx)
			if err != nil || len(out) != 200 || out[199].(*redis.StringCmd).Val() != "99" {
				t.Fatalf("pipeline: %v", err)
			}
			if n, err := rdb.Del(ctx, "k", "c", "zz").Result(); err != nil || n != 2 {
				t.Fatalf("DEL: %v %v", n, err)
			}
		})
	}
}

// TestWatch: EXEC after a watched key changed on another connection replies
// a null and applies nothing; go-redis reports redis.TxFailedErr.
func TestWatch(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		rdb := n.client(proto)
		other := n.client(proto)
		rdb.Set(ctx, "w", "0", 0)
		err := rdb.Watch(ctx, func(tx *redis.Tx) error {
			if err := other.Set(ctx, "w", "changed", 0).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "w", "mine", 0)
				return nil
			})
			return err
		}, "w")
		if !errors.Is(err, redis.TxFailedErr) {
			t.Fatalf("RESP%d: WATCH after a change: %v", proto, err)
		}
		if v := rdb.Get(ctx, "w").Val(); v != "changed" {
			t.Fatalf("RESP%d: value %q", proto, v)
		}
		// Unchanged: EXEC applies.
		err = rdb.Watch(ctx, func(tx *redis.Tx) error {
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "w", "mine", 0)
				return nil
			})
			return err
		}, "w")
		if err != nil || rdb.Get(ctx, "w").Val() != "mine" {
			t.Fatalf("RESP%d: WATCH unchanged: %v", proto, err)
		}
		// Expiry counts as a change; creating a watched missing key too.
		rdb.Set(ctx, "exp", "v", 50*time.Millisecond)
		c := n.raw()
		c.do("WATCH", "exp", "created")
		time.Sleep(80 * time.Millisecond)
		c.do("MULTI")
		c.do("SET", "x", "1")
		if got := c.do("EXEC"); got != "*-1\r\n" {
			t.Fatalf("EXEC after the watched key expired: %q", got)
		}
		c.do("WATCH", "created")
		other.Set(ctx, "created", "1", 0)
		c.do("MULTI")
		c.do("SET", "x", "1")
		if got := c.do("EXEC"); got != "*-1\r\n" {
			t.Fatalf("EXEC after a watched key was created: %q", got)
		}
	}
}

// TestConcurrentIncr: INCR from many connections and MULTI/EXEC blocks are
// atomic: no increment is lost.
func TestConcurrentIncr(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	ctx := context.Background()
	rdb := n.client(3, func(o *redis.Options) { o.PoolSize = 16 })
	var wg sync.WaitGroup
	const workers, each = 8, 200
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if i%2 == 0 {
					rdb.Incr(ctx, "ctr")
				} else {
					rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Incr(ctx, "ctr")
						p.IncrBy(ctx, "ctr2", 2)
						return nil
					})
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := rdb.Get(ctx, "ctr").Int(); v != workers*each {
		t.Fatalf("ctr = %d, want %d", v, workers*each)
	}
	if v, _ := rdb.Get(ctx, "ctr2").Int(); v != workers*each {
		t.Fatalf("ctr2 = %d, want %d", v, workers*each)
	}
}

func TestRequirePass(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.RequirePass = "s3cret" })
	n.assignAll2("s3cret")
	c := n.raw()
	noauth := er("NOAUTH Authentication required.")
	wrongpass := er("WRONGPASS invalid username-password pair or user is disabled.")
	for _, st := range []step{
		x(noauth, "GET", "k"),
		x(noauth, "PING"),
		x(noauth, "CLIENT", "SETNAME", "x"),
		x(er("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"), "HELLO", "3"),
		x(wrongpass, "AUTH", "nope"),
		x(wrongpass, "AUTH", "other", "s3cret"),
		x(wrongpass, "HELLO", "3", "AUTH", "default", "nope"),
		x(ok, "AUTH", "s3cret"),
		x("+PONG\r\n", "PING"),
		x("+RESET\r\n", "RESET"),
		x(noauth, "PING"),
		x(ok, "AUTH", "default", "s3cret"),
		x(ok, "SET", "k", "v"),
	} {
		if got := c.do(st.args...); got != st.want {
			t.Errorf("%q: got %q, want %q", st.args, got, st.want)
		}
	}
	// MULTI before AUTH: the refused command aborts EXEC.
	c2 := n.raw()
	c2.do("MULTI")
	c2.do("GET", "k")
	// An unauthenticated client may not send big requests (Redis's limits).
	c3 := n.raw()
	c3.send(strings.Split("GET a b c d e f g h i j k", " ")...)
	if got := c3.readAll(2 * time.Second); got != er("ERR Protocol error: unauthenticated multibulk length") {
		t.Errorf("unauthenticated large multibulk: %q", got)
	}
	c4 := n.raw()
	c4.send("SET", "k", strings.Repeat("v", 20000))
	if got := c4.readAll(2 * time.Second); got != er("ERR Protocol error: unauthenticated bulk length") {
		t.Errorf("unauthenticated large bulk: %q", got)
	}
	// A large command pipelined right behind AUTH is parsed after AUTH ran,
	// as in Redis, so the unauthenticated limits do not apply to it.
	c5 := n.raw()
	big := append([]string{"MSET"}, strings.Fields("a 1 b 2 c 3 d 4 e 5 f 6")...)
	pipelined := append(resp.AppendCommandStrings(nil, "AUTH", "s3cret"), resp.AppendCommandStrings(nil, big...)...)
	pipelined = append(pipelined, resp.AppendCommandStrings(nil, "SET", "v", strings.Repeat("x", 20000))...)
	c5.nc.Write(pipelined)
	for i, want := range []string{ok, ok, ok} {
		if got := c5.next(); got != want {
			t.Errorf("pipelined after AUTH, reply %d: %q", i, got)
		}
	}
	// go-redis authenticates through HELLO AUTH.
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		rdb := n.client(proto, func(o *redis.Options) { o.Password = "s3cret" })
		if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("RESP%d with password: %q %v", proto, v, err)
		}
		bad := n.client(proto, func(o *redis.Options) { o.Password = "wrong" })
		if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("RESP%d wrong password: %v", proto, err)
		}
	}
}

// assignAll2 is assignAll for a node with a password.
func (n *testNode) assignAll2(pass string) {
	n.t.Helper()
	c := n.raw()
	defer c.close()
	c.do("AUTH", pass)
	if got := c.do("SHARD.ASSIGN", "all", "0", "1", "0"); got != ok {
		n.t.Fatalf("SHARD.ASSIGN: %q", got)
	}
}

func TestMaxClients(t *testing.T) {
	n := startNode(t, "", func(c *Config) { c.MaxClients, c.ProxyReserve = 3, 0 })
	var conns []*rawConn
	for i := 0; i < 3; i++ {
		c := n.raw()
		if got := c.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("client %d: %q", i, got)
		}
		conns = append(conns, c)
	}
	// Without a reserve for proxies, refused at accept, as by Redis.
	extra := n.raw()
	if got := extra.readAll(2 * time.Second); got != er("ERR max number of clients reached") {
		t.Fatalf("fourth client: %q", got)
	}
	conns[0].close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialRaw(t, n.addr)
		c.send("PING")
		got := c.readAll(300 * time.Millisecond)
		c.close()
		if got == "+PONG\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a client left: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info := conns[1].do("INFO", "stats"); !strings.Contains(info, "rejected_connections:") ||
		strings.Contains(info, "rejected_connections:0\r\n") {
		t.Errorf("INFO stats: %q", info)
	}
}

func TestQuitAndReset(t *testing.T) {
	n := startNode(t, "", nil)
	c := n.raw()
	c.do("HELLO", "3", "SETNAME", "x")
	c.do("MULTI")
	if got := c.do("RESET"); got != "+RESET\r\n" {
		t.Fatalf("RESET: %q", got)
	}
	if got := c.do("CLIENT", "GETNAME"); got != nul {
		t.Errorf("name after RESET: %q (RESP2 null expected)", got)
	}
	if got := c.do("EXEC"); got != er("ERR EXEC without MULTI") {
		t.Errorf("EXEC after RESET: %q", got)
	}
	c.send("QUIT")
	c.send("PING") // never answered
	if got := c.readAll(2 * time.Second); got != ok {
		t.Errorf("QUIT: %q", got)
	}
}
