package shardnode

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/bitcask"
)

// replInfo reads INFO replication's fields.
func replInfo(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	s, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// eventually waits for cond, failing the test when it is still false
// after a long bound (the bound only ends a broken run).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// caughtUp reports whether the replica took the primary's offset.
func caughtUp(t *testing.T, p, r *redis.Client) bool {
	pi, ri := replInfo(t, p), replInfo(t, r)
	return ri["master_link_status"] == "up" && ri["slave_repl_offset"] == pi["master_repl_offset"]
}

func TestReplicaSyncAndStream(t *testing.T) {
	for _, loops := range []int{0, -1} {
		t.Run("event-loops="+strconv.Itoa(loops), func(t *testing.T) {
			ctx := context.Background()
			p := startNode(t, "", func(c *Config) { c.EventLoops = loops })
			p.assignAll()
			pc := p.client(2)
			fillAllTypes(t, pc, "before", 40)
			if err := pc.Del(ctx, "before0:1:s", "before0:2:h").Err(); err != nil {
				t.Fatal(err)
			}
			// The replica starts with keys of its own, which the full sync drops.
			r := startNode(t, "", func(c *Config) { c.EventLoops = loops })
			r.assignAll()
			r.client(2).Set(ctx, "stale", "x", 0)
			if got := r.raw().do("REPLICAOF", "127.0.0.1", strings.Split(p.addr, ":")[1]); got != "+OK\r\n" {
				t.Fatalf("REPLICAOF: %q", got)
			}
			rc := r.client(2, func(o *redis.Options) {
				o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
			})
			eventually(t, "the full sync", func() bool { return caughtUp(t, pc, rc) })

			// Writes after the sync: every type, TTLs, deletes, a flush.
			fillAllTypes(t, pc, "after", 40)
			pc.Del(ctx, "before0:5:z", "after3:7:l")
			pc.PExpire(ctx, "before0:6:set", time.Hour)
			pc.Persist(ctx, "after0:0:s")
			pc.HDel(ctx, "after0:4:h", "a")
			pc.LPop(ctx, "after0:8:l")
			pc.ZIncrBy(ctx, "after0:9:z", 2, "a")
			pc.Set(ctx, "gone", "x", time.Millisecond)
			pd := p.client(2, func(o *redis.Options) { o.DB = 3; o.PoolSize = 1 })
			pd.FlushDB(ctx)
			pd.Set(ctx, "after-flush", "y", 0)
			if n, err := pd.Do(ctx, "WAIT", 1, 0).Int(); err != nil || n != 1 {
				t.Fatalf("WAIT 1 0 after a write: %d, %v", n, err)
			}
			eventually(t, "the stream", func() bool { return caughtUp(t, pc, rc) })
			all := func(string) bool { return true }
			want := dumpRange(t, streamClient(t, p.addr), all)
			got := dumpRange(t, streamClient(t, r.addr), all)
			if !reflect.DeepEqual(got, want) {
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s: replica %q, primary %q", k, got[k], v)
					}
				}
				for k, v := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("%s: only on the replica: %q", k, v)
					}
				}
				t.FailNow()
			}
			if _, ok := got["0/stale"]; ok {
				t.Fatal("the replica kept a key the primary never had")
			}

			// The replica refuses writes, and reads without READONLY.
			raw := r.raw()
			if got := raw.do("SET", "k", "v"); got != errStr("READONLY You can't write against a read only replica.") {
				t.Fatalf("SET on a replica: %q", got)
			}
			if got := raw.do("GET", "after0:1:s"); !strings.HasPrefix(got, "-REPLICA ") {
				t.Fatalf("GET on a replica without READONLY: %q", got)
			}
			raw.do("READONLY")
			if got := raw.do("GET", "after0:1:s"); got != bulkStr("v1") {
				t.Fatalf("GET on a replica after READONLY: %q", got)
			}
			if hello, err := rc.Do(ctx, "HELLO", "2").Slice(); err != nil || hello[11] != "replica" {
				t.Fatalf("HELLO's role on a replica: %v, %v", hello, err)
			}
			if got := raw.do("WAIT", "0", "0"); !strings.HasPrefix(got, "-ERR WAIT cannot be used with replica instances") {
				t.Fatalf("WAIT on a replica: %q", got)
			}
			role, err := rc.Do(ctx, "ROLE").Slice()
			if err != nil || len(role) != 5 || role[0] != "slave" || role[3] != "connected" {
				t.Fatalf("ROLE on the replica: %v, %v", role, err)
			}
			role, err = pc.Do(ctx, "ROLE").Slice()
			if err != nil || len(role) != 3 || role[0] != "master" || len(role[2].([]any)) != 1 {
				t.Fatalf("ROLE on the primary: %v, %v", role, err)
			}
			if pi := replInfo(t, pc); pi["role"] != "master" || pi["connected_slaves"] != "1" || !strings.Contains(pi["slave0"], "state=online") {
				t.Fatalf("INFO replication on the primary: %v", pi)
			}
			if ri := replInfo(t, rc); ri["role"] != "slave" || ri["master_host"] != "127.0.0.1" || ri["master_port"] != strings.Split(p.addr, ":")[1] {
				t.Fatalf("INFO replication on the replica: %v", ri)
			}
		})
	}
}

// TestWaitCounts: WAIT replies the replicas that hold the connection's
// writes, as Redis's.
func TestWaitCounts(t *testing.T) {
	p := startNode(t, "", nil)
	p.assignAll()
	c := p.raw()
	if got := c.do("WAIT", "0", "0"); got != ":0\r\n" {
		t.Fatalf("WAIT 0 0 without replicas: %q", got)
	}
	c.do("SET", "a", "1")
	if got := c.do("WAIT", "1", "50"); got != ":0\r\n" {
		t.Fatalf("WAIT 1 50 without replicas: %q", got)
	}
	if got := c.do("WAIT", "x", "0"); got != errStr(errNotInteger) {
		t.Fatalf("WAIT x 0: %q", got)
	}
	if got := c.do("WAIT", "1", "-1"); got != errStr("ERR timeout is negative") {
		t.Fatalf("WAIT 1 -1: %q", got)
	}
	r1 := startNode(t, "", func(cfg *Config) { cfg.ReplicaOf = p.addr })
	r2 := startNode(t, "", func(cfg *Config) { cfg.ReplicaOf = p.addr })
	pc := p.client(2)
	for _, r := range []*testNode{r1, r2} {
		rc := r.client(2)
		eventually(t, "the sync of "+r.addr, func() bool { return caughtUp(t, pc, rc) })
	}
	c.do("SET", "a", "2")
	if got := c.do("WAIT", "2", "0"); got != ":2\r\n" {
		t.Fatalf("WAIT 2 0 with two replicas: %q", got)
	}
	// More replicas than there are: the timeout, then the count.
	c.do("SET", "a", "3")
	if got := c.do("WAIT", "3", "100"); got != ":2\r\n" {
		t.Fatalf("WAIT 3 100 with two replicas: %q", got)
	}
	// A connection that wrote nothing counts every replica at once.
	if got := p.raw().do("WAIT", "2", "0"); got != ":2\r\n" {
		t.Fatalf("WAIT 2 0 on a connection without writes: %q", got)
	}
	r2.stop()
	c.do("SET", "a", "4")
	if got := c.do("WAIT", "2", "200"); got != ":1\r\n" {
		t.Fatalf("WAIT 2 200 with one replica gone: %q", got)
	}
}

// TestMinAcks: with min-acks 1 a write's reply waits until the replica
// holds it, and a primary without a good replica refuses writes.
func TestMinAcks(t *testing.T) {
	for _, loops := range []int{0, -1} {
		t.Run("event-loops="+strconv.Itoa(loops), func(t *testing.T) {
			ctx := context.Background()
			p := startNode(t, "", func(c *Config) { c.EventLoops = loops; c.MinAcks = 1 })
			p.assignAll()
			c := p.raw()
			if got := c.do("SET", "a", "1"); got != errStr(errNoReplicas) {
				t.Fatalf("SET without a replica under min-acks 1: %q", got)
			}
			if got := c.do("GET", "a"); got != "$-1\r\n" {
				t.Fatalf("the refused SET ran: %q", got)
			}
			r := startNode(t, "", func(cfg *Config) { cfg.ReplicaOf = p.addr; cfg.EventLoops = loops })
			rc := r.client(2, func(o *redis.Options) {
				o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
			})
			pc := p.client(2)
			eventually(t, "the sync", func() bool { return caughtUp(t, pc, rc) })
			// Every acknowledged write is on the replica when its reply
			// comes, pipelined or not, in a transaction or not.
			for i := 0; i < 200; i++ {
				k := fmt.Sprintf("k%d", i)
				if i%2 == 0 {
					pl := pc.Pipeline()
					pl.Set(ctx, k, i, 0)
					pl.HSet(ctx, k+":h", "f", i)
					if _, err := pl.Exec(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					if _, err := pc.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Set(ctx, k, i, 0)
						p.HSet(ctx, k+":h", "f", i)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				if v, err := rc.Get(ctx, k).Result(); err != nil || v != strconv.Itoa(i) {
					t.Fatalf("write %d acknowledged but the replica has %q, %v\n%s", i, v, err, p.logs.String())
				}
				if v, err := rc.HGet(ctx, k+":h", "f").Result(); err != nil || v != strconv.Itoa(i) {
					t.Fatalf("hash write %d acknowledged but the replica has %q, %v", i, v, err)
				}
			}
			// The replica gone: writes are refused once it is not good.
			r.stop()
			eventually(t, "the replica's stream to end", func() bool { return replInfo(t, pc)["connected_slaves"] == "0" })
			if got := c.do("SET", "b", "1"); got != errStr(errNoReplicas) {
				t.Fatalf("SET after the replica left: %q", got)
			}
		})
	}
}

// TestReplicaWithMerges: a long run of overwrites, deletes and expiries
// with background merges on the primary and on the replica (each merges
// its own files): the replica ends equal to the primary, key by key with
// expiry times.
func TestReplicaWithMerges(t *testing.T) {
	ctx := context.Background()
	merging := func(c *Config) {
		c.MaxFileSize = 64 << 10
		c.Storage = func(o *bitcask.Options) {
			o.MergeCheckInterval = 20 * time.Millisecond
			o.MergeMinDeadBytes = 16 << 10
			o.MergeDeadRatio = 0.3
		}
	}
	p := startNode(t, "", merging)
	p.assignAll()
	r := startNode(t, "", func(c *Config) { merging(c); c.ReplicaOf = p.addr })
	pc := p.client(2)
	for round := 0; round < 30; round++ {
		pipe := pc.Pipeline()
		for i := 0; i < 200; i++ {
			k := fmt.Sprintf("k%d", i)
			pipe.Set(ctx, k+":s", fmt.Sprintf("%d-%s", round, strings.Repeat("x", 100)), 0)
			pipe.HSet(ctx, k+":h", "f"+strconv.Itoa(round%7), round)
			pipe.ZAdd(ctx, k+":z", redis.Z{Score: float64(round), Member: strconv.Itoa(i % 5)})
			pipe.RPush(ctx, k+":l", round)
			pipe.LTrim(ctx, k+":l", -5, -1)
			switch {
			case (i+round)%11 == 0:
				pipe.Del(ctx, k+":h")
			case (i+round)%13 == 0:
				pipe.PExpire(ctx, k+":s", time.Duration(1+i%3)*time.Hour)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rc := r.client(2, func(o *redis.Options) {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	})
	eventually(t, "the replica", func() bool { return caughtUp(t, pc, rc) })
	eventually(t, "merges on both", func() bool {
		return p.srv.db.Stats().Merges > 0 && r.srv.db.Stats().Merges > 0
	})
	all := func(string) bool { return true }
	want, got := dumpRange(t, streamClient(t, p.addr), all), dumpRange(t, streamClient(t, r.addr), all)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the replica differs after merges: %d keys vs %d", len(got), len(want))
	}
}
