package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestJobQueueSurvivesKill is the reliable-queue pattern on lists through
// the real proxy and nodes under appendfsync always: producers LPUSH jobs,
// consumers RPOPLPUSH each into a processing list and LREM it there when
// done. The queue's node is SIGKILLed while they run and restarted: every
// job whose LPUSH was acknowledged is then done (its LREM acknowledged, or
// in flight at the kill), waiting in the queue, or in the processing list;
// none is in two places, and no job whose LREM was acknowledged is back.
func TestJobQueueSurvivesKill(t *testing.T) {
	c := StartCluster(t, Options{AppendFsync: "always"})
	ctx := context.Background()
	const victim = 1
	ks := c.KeysOn(victim, "jobs", 2)
	queue, processing := ks[0], ks[1]

	var (
		mu        sync.Mutex
		produced  []string
		done      = map[string]bool{} // LREM acknowledged
		maybeDone = map[string]bool{} // LREM sent, no reply
		errs      = map[string]int{}
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	noteErr := func(err error) {
		time.Sleep(time.Millisecond) // the node is down: do not spin
		mu.Lock()
		defer mu.Unlock()
		switch msg := err.Error(); {
		case strings.HasPrefix(msg, c.TryAgainPrefix(victim)):
			errs["TRYAGAIN"]++
		case strings.HasPrefix(msg, c.UncertainPrefix(victim)):
			errs["UNCERTAIN"]++
		default:
			errs[msg]++
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for p := 0; p < 4; p++ {
		rdb := c.Client()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stopped(); i++ {
				job := fmt.Sprintf("job:p%d:%d:%s", p, i, strings.Repeat("x", i%40))
				if err := rdb.LPush(ctx, queue, job).Err(); err != nil {
					noteErr(err)
					continue
				}
				mu.Lock()
				produced = append(produced, job)
				mu.Unlock()
			}
		}()
	}
	var consumed sync.WaitGroup
	for w := 0; w < 4; w++ {
		rdb := c.Client()
		wg.Add(1)
		consumed.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for !stopped() {
				job, err := rdb.RPopLPush(ctx, queue, processing).Result()
				if errors.Is(err, redis.Nil) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					noteErr(err)
					continue
				}
				for {
					n, err := rdb.LRem(ctx, processing, 1, job).Result()
					if err == nil {
						mu.Lock()
						if n == 1 {
							done[job] = true
						} else {
							// An earlier LREM of it was applied and its
							// reply lost.
							maybeDone[job] = true
						}
						mu.Unlock()
						break
					}
					noteErr(err)
					mu.Lock()
					maybeDone[job] = true
					mu.Unlock()
					if stopped() {
						break
					}
				}
				if first {
					first = false
					consumed.Done()
				}
			}
		}()
	}
	consumed.Wait()                          // every consumer finished a job: the queue is in use
	guard := time.Now().Add(2 * time.Minute) // a guard, not a speed check
	for {
		mu.Lock()
		n := len(done)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(guard) {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d jobs done before the kill: errors %v", n, errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Nodes[victim].Signal(t, syscall.SIGKILL)
	c.Nodes[victim].WaitExit(t)
	c.StartNode(victim)
	// Run on after the restart until each side did some more work.
	mu.Lock()
	nProduced, nDone := len(produced), len(done)
	mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute) // a guard, not a speed check
	for {
		mu.Lock()
		more := len(produced) > nProduced+100 && len(done) > nDone+100
		mu.Unlock()
		if more {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("no progress after the restart: errors %v", errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	rdb := c.Client()
	q, err := rdb.LRange(ctx, queue, 0, -1).Result()
	must(t, err)
	pr, err := rdb.LRange(ctx, processing, 0, -1).Result()
	must(t, err)
	where := map[string]string{}
	for _, j := range q {
		if w, dup := where[j]; dup {
			t.Errorf("job %s in the queue and in %s", j, w)
		}
		where[j] = "queue"
	}
	for _, j := range pr {
		if w, dup := where[j]; dup {
			t.Errorf("job %s in processing and in %s", j, w)
		}
		where[j] = "processing"
	}
	lost := 0
	for _, j := range produced {
		_, present := where[j]
		switch {
		case done[j] && present:
			t.Errorf("job %s done (LREM acknowledged) but back in the %s", j, where[j])
		case !done[j] && !maybeDone[j] && !present:
			if lost++; lost <= 10 {
				t.Errorf("job %s acknowledged and lost", j)
			}
		}
	}
	for e, n := range errs {
		if e != "TRYAGAIN" && e != "UNCERTAIN" {
			t.Errorf("%d commands failed with an unexpected error: %s", n, e)
		}
	}
	t.Logf("%d jobs produced, %d done (%d maybe), %d queued, %d processing; errors %v",
		len(produced), len(done), len(maybeDone), len(q), len(pr), errs)
	if !slices.ContainsFunc(produced, func(j string) bool { return done[j] }) {
		t.Fatal("no job was done: the test proves nothing")
	}
}
