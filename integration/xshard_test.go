package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Each crash point of docs/TRANSACTIONS.md, through the real binaries: a
// process armed with a fail point (SHARDKV_FAILPOINTS on a node,
// SHARDKV_PROXY_FAILPOINTS on the proxy) kills itself with SIGKILL at
// that step of a cross-shard MSET; the test restarts it unarmed and checks
// that the MSET is applied on both shards or on none, as the doc's table
// says, and that no key stays locked.
func TestCrossShardCrashPoints(t *testing.T) {
	c := StartCluster(t, Options{Shards: 2})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		proc    func() *Proc
		node    int // the node to wait for after a restart; -1 for the proxy
		env     string
		applied bool
	}{
		// 1: the coordinator dies before any prepare.
		{"proxy-before-prepare", func() *Proc { return c.Proxy }, -1, "SHARDKV_PROXY_FAILPOINTS=start", false},
		// 4: a participant dies before its prepare is durable.
		{"participant-before-prepare-durable", func() *Proc { return c.Nodes[1] }, 1, "SHARDKV_FAILPOINTS=prepare-locked", false},
		// 2: the coordinator dies after the prepares: the lock timeout
		// asks the primary, which records ABORT.
		{"proxy-after-prepare", func() *Proc { return c.Proxy }, -1, "SHARDKV_PROXY_FAILPOINTS=prepared", false},
		// 3: the coordinator dies after the decision: the participant
		// asks the primary and applies.
		{"proxy-after-decision", func() *Proc { return c.Proxy }, -1, "SHARDKV_PROXY_FAILPOINTS=decided", true},
		// 5: a participant dies after its prepare is durable, before it
		// replies: the coordinator aborts; the restarted node asks.
		{"participant-after-prepare", func() *Proc { return c.Nodes[1] }, 1, "SHARDKV_FAILPOINTS=prepare-written", false},
		// 5 on the primary: its own prepare is in doubt; it records ABORT.
		{"primary-after-prepare", func() *Proc { return c.Nodes[0] }, 0, "SHARDKV_FAILPOINTS=prepare-written", false},
		// 6/7: a participant dies after writing the applied states, before
		// dropping its prepare: it asks again and applies again, the same.
		{"participant-after-apply", func() *Proc { return c.Nodes[1] }, 1, "SHARDKV_FAILPOINTS=apply-written", true},
		// 8/9: the primary dies once its decision is durable: the
		// coordinator retries TX.DECIDE and gets the recorded COMMIT.
		{"primary-after-decision", func() *Proc { return c.Nodes[0] }, 0, "SHARDKV_FAILPOINTS=decided", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.KeysOn(0, "crash-"+tc.name+"-a", 1)[0]
			b := c.KeysOn(1, "crash-"+tc.name+"-b", 1)[0]
			p := tc.proc()
			p.Kill()
			p.Env = []string{tc.env}
			p.Start(t)
			p.WaitReady(t)
			c.WaitServing()
			r := c.Client()
			done := make(chan error, 1)
			go func() { done <- r.MSet(ctx, a, "1", b, "1").Err() }()
			p.WaitExit(t) // the fail point's SIGKILL
			p.Env = nil
			p.Start(t)
			p.WaitReady(t)
			err := <-done
			c.WaitServing()
			t.Logf("the client got: %v", err)
			if err == nil && !tc.applied {
				t.Fatalf("MSET acknowledged at a crash point where nothing applies")
			}
			// The keys are readable once the transaction is resolved (the
			// proxy retries reads of locked keys; the lock timeout is 2 s).
			r2 := c.Client()
			var got []any
			deadline := time.Now().Add(60 * time.Second)
			for {
				got, err = r2.MGet(ctx, a, b).Result()
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("MGET after recovery: %v", err)
			}
			want := "[<nil> <nil>]"
			if tc.applied {
				want = "[1 1]"
			}
			if fmt.Sprint(got) != want {
				t.Fatalf("after recovery: %v, want %s", got, want)
			}
			for i := range c.Nodes {
				n := c.NodeClient(i, "")
				for {
					list, err := n.Do(ctx, "TX.LIST").StringSlice()
					held := false
					for _, e := range list {
						held = held || strings.HasPrefix(e, "prepared ")
					}
					if err == nil && !held {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("node %d still holds %v (%v)", i, list, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			if err := r2.Set(ctx, b, "free", 0).Err(); err != nil {
				t.Fatalf("a key still locked: %v", err)
			}
		})
	}
}

// Readers never see a cross-shard MSET half applied, through the real
// binaries, while a node is SIGKILLed and restarted in the middle: every
// acknowledged pair is whole, and every pair read is whole.
func TestCrossShardPairsSurviveKill(t *testing.T) {
	c := StartCluster(t, Options{Shards: 3})
	ctx := context.Background()
	var keys [][2]string
	for i := 0; i < 3; i++ {
		keys = append(keys, [2]string{c.KeysOn(i, fmt.Sprintf("pair%d-x", i), 1)[0], c.KeysOn((i+1)%3, fmt.Sprintf("pair%d-y", i), 1)[0]})
	}
	stop := make(chan struct{})
	errs := make(chan error, 16)
	acked := make([]int, len(keys))
	doneW := make(chan struct{})
	go func() {
		defer close(doneW)
		r := c.Client()
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			for i, k := range keys {
				if err := r.MSet(ctx, k[0], v, k[1], v).Err(); err == nil {
					acked[i] = v
				}
			}
		}
	}()
	reader := func(r *redis.Client) {
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Get(ctx, k[0])
				p.Get(ctx, k[1])
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return // a node is down: the read fails, that is all
		}
		for i := 0; i+1 < len(cmds); i += 2 {
			x, y := cmds[i].(*redis.StringCmd).Val(), cmds[i+1].(*redis.StringCmd).Val()
			if x != y {
				errs <- fmt.Errorf("a half-applied pair: %q %q", x, y)
			}
		}
	}
	r := c.Client()
	for i := 0; i < 30; i++ {
		reader(r)
	}
	c.Nodes[1].Kill()
	for i := 0; i < 10; i++ {
		reader(r)
	}
	c.StartNode(1)
	for i := 0; i < 30; i++ {
		reader(r)
	}
	close(stop)
	<-doneW
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Once resolved, each pair holds one version, at least the last
	// acknowledged one.
	deadline := time.Now().Add(60 * time.Second)
	for i, k := range keys {
		for {
			got, err := r.MGet(ctx, k[0], k[1]).Result()
			if err == nil {
				if got[0] != got[1] {
					t.Fatalf("pair %d after recovery: %v", i, got)
				}
				var v int
				fmt.Sscan(fmt.Sprint(got[0]), &v)
				if v < acked[i] {
					t.Fatalf("pair %d: %d, but %d was acknowledged", i, v, acked[i])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pair %d unreadable: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
