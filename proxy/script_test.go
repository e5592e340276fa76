package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestScriptsThroughProxy: SCRIPT LOAD reaches every node, EVALSHA runs on
// the node of its keys, keys on two shards get CROSSSHARD, a node that
// lost its scripts (restarted) or never had one (EVAL went elsewhere) is
// given it transparently, in and out of MULTI; SCRIPT FLUSH empties every
// cache, the proxy's too; SCRIPT KILL with nothing running is NOTBUSY.
func TestScriptsThroughProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	forEachProto(t, func(t *testing.T, proto int) {
		r := c.client(proto)
		if err := r.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := r.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		incr := "return redis.call('incrby', KEYS[1], ARGV[1])"
		sha, err := r.ScriptLoad(ctx, incr).Result()
		if err != nil {
			t.Fatal(err)
		}
		other := strings.Repeat("f", 40)
		if got, err := r.ScriptExists(ctx, sha, other).Result(); err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("SCRIPT EXISTS: %v %v", got, err)
		}
		var keys []string
		for i := range c.nodes {
			k := c.keysOn(i, 1, fmt.Sprintf("lua%d:", proto))[0]
			keys = append(keys, k)
			if got, err := r.EvalSha(ctx, sha, []string{k}, 5).Int64(); err != nil || got != 5 {
				t.Fatalf("EVALSHA on shard %d: %v %v", i, got, err)
			}
		}
		if err := r.Eval(ctx, "return redis.call('mget', KEYS[1], KEYS[2])", keys[:2]).Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSHARD") {
			t.Fatalf("keys on two shards: %v", err)
		}
		if got, err := r.Eval(ctx, "return 'no keys'", nil).Text(); err != nil || got != "no keys" {
			t.Fatalf("EVAL without keys: %q %v", got, err)
		}
		// EVAL caches its script on the node it ran on only; an EVALSHA
		// of it with a key elsewhere is given the script.
		body := fmt.Sprintf("return redis.call('get', KEYS[1]) .. '-%d'", proto)
		if err := r.Eval(ctx, body, []string{keys[0]}).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := r.EvalSha(ctx, scriptSha([]byte(body)), []string{keys[2]}).Text(); err != nil || got != "5-"+fmt.Sprint(proto) {
			t.Fatalf("EVALSHA of an EVAL'd script on another shard: %q %v", got, err)
		}
		// A restarted node has no scripts.
		n := c.nodes[1]
		n.stop()
		n.start(t)
		c.waitReachable()
		direct := n.client(t)
		if got, err := direct.ScriptExists(ctx, sha).Result(); err != nil || got[0] {
			t.Fatalf("restarted node still has the script: %v %v", got, err)
		}
		if got, err := r.EvalSha(ctx, sha, []string{keys[1]}, 1).Int64(); err != nil || got != 6 {
			t.Fatalf("EVALSHA on the restarted node: %v %v", got, err)
		}
		n.stop()
		n.start(t)
		c.waitReachable()
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.EvalSha(ctx, sha, []string{keys[1]}, 1)
			p.EvalSha(ctx, sha, []string{keys[1]}, 1)
			return nil
		})
		if err != nil || len(cmds) != 2 || cmds[1].(*redis.Cmd).Val() != int64(8) {
			t.Fatalf("EVALSHA in MULTI on a restarted node: %v %v", cmds, err)
		}
		if err := r.Do(ctx, "SCRIPT", "KILL").Err(); err == nil || err.Error() != "NOTBUSY No scripts in execution right now." {
			t.Fatalf("SCRIPT KILL: %v", err)
		}
		if err := r.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ScriptExists(ctx, sha).Result(); err != nil || got[0] {
			t.Fatalf("SCRIPT EXISTS after FLUSH: %v %v", got, err)
		}
		if err := r.EvalSha(ctx, sha, []string{keys[0]}, 1).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Fatalf("EVALSHA after SCRIPT FLUSH: %v", err)
		}
	})
}
