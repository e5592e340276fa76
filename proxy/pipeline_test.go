package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/resp"
)

// One write holding commands for every node, local commands, a split
// command and a protocol switch: the replies come back in the client's
// order, each in the protocol in force when its command was read.
func TestPipelinedBatchOrder(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	raw := dialRaw(t, c.addr)
	k0, k1, k2 := c.keysOn(0, 1, "pl")[0], c.keysOn(1, 1, "pl")[0], c.keysOn(2, 1, "pl")[0]
	var in []byte
	cmds := [][]string{
		{"SET", k0, "a"}, {"SET", k1, "b"}, {"PING"}, {"SET", k2, "c"},
		{"GET", k2}, {"ECHO", "x"}, {"MGET", k0, "nokey", k1, k2}, {"GET", "nokey"},
		{"HELLO", "3"}, {"GET", "nokey"}, {"MGET", k2, "nokey", k0}, {"DEL", k0, k1, "nokey"},
		{"EXISTS", k0, k1, k2}, {"SHARD.LOCATE", k1},
	}
	for _, a := range cmds {
		in = resp.AppendCommandStrings(in, a...)
	}
	if _, err := raw.nc.Write(in); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"+OK\r\n", "+OK\r\n", "+PONG\r\n", "+OK\r\n",
		"$1\r\nc\r\n", "$1\r\nx\r\n", "*4\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n$1\r\nc\r\n", "$-1\r\n",
		"HELLO", "_\r\n", "*3\r\n$1\r\nc\r\n_\r\n$1\r\na\r\n", ":2\r\n",
		":1\r\n", "SHARD.LOCATE",
	}
	for i, w := range want {
		got := raw.read()
		switch w {
		case "HELLO":
			if !strings.HasPrefix(got, "%7\r\n") {
				t.Fatalf("reply %d (%v) = %q", i, cmds[i], got)
			}
		case "SHARD.LOCATE":
			if !strings.Contains(got, "$2\r\ns1\r\n") {
				t.Fatalf("reply %d (%v) = %q", i, cmds[i], got)
			}
		default:
			if got != w {
				t.Fatalf("reply %d (%v) = %q, want %q", i, cmds[i], got, w)
			}
		}
	}
}

// Many clients pipelining on the shared node connections: every increment
// lands once and each client reads its own replies in order.
func TestConcurrentPipelines(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	const clients, rounds, perRound = 16, 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: 2 + g%2, PoolSize: 1})
			defer r.Close()
			for round := 0; round < rounds; round++ {
				pipe := r.Pipeline()
				var incrs []*redis.IntCmd
				var gets []*redis.StringCmd
				for i := 0; i < perRound; i++ {
					incrs = append(incrs, pipe.Incr(ctx, fmt.Sprintf("ctr%d", i)))
					own := fmt.Sprintf("own%d-%d", g, i)
					pipe.Set(ctx, own, fmt.Sprint(round), 0)
					gets = append(gets, pipe.Get(ctx, own))
				}
				if _, err := pipe.Exec(ctx); err != nil {
					errs <- err
					return
				}
				for i, gcmd := range gets {
					if gcmd.Val() != fmt.Sprint(round) {
						errs <- fmt.Errorf("client %d round %d: own%d = %q", g, round, i, gcmd.Val())
						return
					}
					if incrs[i].Val() < 1 {
						errs <- fmt.Errorf("INCR reply %d", incrs[i].Val())
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := c.client(2)
	for i := 0; i < perRound; i++ {
		if n, _ := r.Get(ctx, fmt.Sprintf("ctr%d", i)).Int(); n != clients*rounds {
			t.Fatalf("ctr%d = %d, want %d", i, n, clients*rounds)
		}
	}
}

// Shutdown answers the batches in flight, closes clients, and makes Serve
// return ErrServerClosed.
func TestShutdown(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	srv := c.srv
	ctx := context.Background()
	r := c.client(3)
	if err := r.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pipe := r.Pipeline()
			for i := 0; i < 50; i++ {
				pipe.Incr(ctx, "during")
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				// After shutdown: a closed connection, never a wrong reply.
				for _, cmd := range cmds {
					if cmd.Err() == nil {
						continue
					}
					if s := cmd.Err().Error(); !strings.Contains(s, "EOF") && !strings.Contains(s, "refused") && !strings.Contains(s, "reset") && !strings.Contains(s, "closed") {
						t.Errorf("during shutdown: %v", cmd.Err())
						return
					}
				}
			}
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err := srv.Serve(nil); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
