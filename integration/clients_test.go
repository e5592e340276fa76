package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestThousandClients opens 1,000 client connections to the proxy at once;
// each writes and reads its own keys, and every reply is checked.
func TestThousandClients(t *testing.T) {
	const (
		clients = 1000
		rounds  = 10
	)
	c := StartCluster(t, Options{})
	ctx := context.Background()

	conns := make([]*redis.Client, clients)
	for i := range conns {
		conns[i] = c.ClientWith(func(o *redis.Options) {
			o.PoolSize = 1
			o.MinIdleConns = 0
			o.ReadTimeout = time.Minute
			o.WriteTimeout = time.Minute
			o.DialTimeout = 30 * time.Second
			o.PoolTimeout = time.Minute
		})
	}

	var (
		connected  sync.WaitGroup
		done       sync.WaitGroup
		start      = make(chan struct{})
		failures   atomic.Int64
		firstErrMu sync.Mutex
		firstErrs  []string
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			firstErrMu.Lock()
			firstErrs = append(firstErrs, fmt.Sprintf(format, args...))
			firstErrMu.Unlock()
		}
	}
	connected.Add(clients)
	done.Add(clients)
	for i, rdb := range conns {
		go func() {
			defer done.Done()
			// Every connection is open before any client starts its work.
			err := rdb.Ping(ctx).Err()
			connected.Done()
			if err != nil {
				fail("client %d: PING: %v", i, err)
				return
			}
			<-start
			for r := 0; r < rounds; r++ {
				k := fmt.Sprintf("many:c%d:r%d", i, r)
				v := fmt.Sprintf("client %d round %d", i, r)
				if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
					fail("client %d: SET %s: %v", i, k, err)
					return
				}
				if got, err := rdb.Get(ctx, k).Result(); err != nil || got != v {
					fail("client %d: GET %s = %q, %v; want %q", i, k, got, err, v)
					return
				}
				// A key another client wrote in an earlier round.
				o := (i + 1) % clients
				if r > 0 {
					ok := fmt.Sprintf("many:c%d:r%d", o, r-1)
					want := fmt.Sprintf("client %d round %d", o, r-1)
					got, err := rdb.Get(ctx, ok).Result()
					if err != nil && err != redis.Nil || err == nil && got != want {
						fail("client %d: GET %s = %q, %v; want %q or nil", i, ok, got, err, want)
						return
					}
				}
			}
		}()
	}
	connected.Wait()
	// The proxy holds all of them at once.
	info, err := c.Client().Info(ctx, "clients").Result()
	if err != nil {
		t.Fatalf("INFO clients: %v", err)
	}
	var n int
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_clients:"); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	if n < clients {
		t.Errorf("INFO clients: connected_clients = %d with %d clients connected\n%s", n, clients, info)
	}
	close(start)
	done.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d clients failed; first errors:\n%v", n, clients, firstErrs)
	}

	// Every key is there, read back through one connection.
	rdb := c.Client()
	for i := 0; i < clients; i++ {
		keys := make([]string, rounds)
		for r := range keys {
			keys[r] = fmt.Sprintf("many:c%d:r%d", i, r)
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, rounds)
		for r, k := range keys {
			cmds[r] = pipe.Get(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		for r, cmd := range cmds {
			if got, err := cmd.Result(); err != nil || got != fmt.Sprintf("client %d round %d", i, r) {
				t.Fatalf("GET %s = %q, %v; want %q", keys[r], got, err, fmt.Sprintf("client %d round %d", i, r))
			}
		}
	}
}
