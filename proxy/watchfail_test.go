package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestWatchWhileConnectionsFail: WATCH over keys of two shards while the
// proxy's connections to one of them keep failing. A connection can fail
// between the moment WATCH pins the client to it and the moment the keys
// are sent there; WATCH then answers (the pin is lost, so EXEC aborts) and
// the proxy goes on serving. Every EXEC commits, is nil or gets TRYAGAIN
// or UNCERTAIN, and once the connections stay up a transaction commits.
func TestWatchWhileConnectionsFail(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	a, b := c.keysOn(0, 1, "wf-a")[0], c.keysOn(1, 1, "wf-b")[0]
	sh := c.srv.table.Load().shards[1]
	setBoth := func(r *redis.Client, v int) error {
		return r.Watch(ctx, func(tx *redis.Tx) error {
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, a, v, 0)
				p.Set(ctx, b, v, 0)
				return nil
			})
			return err
		}, a, b)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 64; i++ {
				if conn := sh.resp2.Conn(i); conn != nil {
					conn.Fail(errors.New("failed by the test"))
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	errs := make(chan error, 8)
	var execs, nils, others atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.client(2)
			deadline := time.Now().Add(2 * time.Second)
			for i := 0; time.Now().Before(deadline); i++ {
				err := setBoth(r, i)
				switch {
				case err == nil:
					execs.Add(1)
				case errors.Is(err, redis.TxFailedErr):
					nils.Add(1)
				case strings.HasPrefix(err.Error(), "TRYAGAIN "), strings.HasPrefix(err.Error(), "UNCERTAIN "):
					others.Add(1)
				default:
					errs <- fmt.Errorf("client %d: %v", w, err)
					return
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("EXEC committed %d, nil %d; TRYAGAIN or UNCERTAIN %d", execs.Load(), nils.Load(), others.Load())
	if nils.Load() == 0 {
		t.Fatal("the run checked too little: no EXEC aborted for a lost pin")
	}
	// The connections back, the same transaction commits.
	r := c.client(2)
	eventually(t, 10*time.Second, func() error { return setBoth(r, -1) })
	if got, err := r.MGet(ctx, a, b).Result(); err != nil || fmt.Sprint(got) != "[-1 -1]" {
		t.Fatalf("after the failures: %v, %v", got, err)
	}
}
