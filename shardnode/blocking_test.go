package shardnode

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardkv/shardkv/bitcask"
)

// waitBlocked waits until INFO says n clients are blocked.
func waitBlocked(t *testing.T, c *rawConn, n int) {
	t.Helper()
	want := "blocked_clients:" + strconv.Itoa(n) + "\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		info := c.do("INFO", "clients")
		if strings.Contains(info, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %q:\n%s", want, info)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestBlockedServedInOrder: 20 clients block on one list (and on one
// sorted set), one after the other; 20 writes of one element each serve
// them in the order they blocked, in every serving mode, under appendfsync
// always too.
func TestBlockedServedInOrder(t *testing.T) {
	for _, policy := range []bitcask.SyncPolicy{bitcask.SyncEverySec, bitcask.SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			forEachMode(t, policy, func(t *testing.T, n *testNode) {
				const clients = 20
				ctl := n.raw()
				for _, kind := range []string{"list", "zset"} {
					blocked := make([]*rawConn, clients)
					for i := range blocked {
						blocked[i] = n.raw()
						if kind == "list" {
							blocked[i].send("BRPOP", "q", "0")
						} else {
							blocked[i].send("BZPOPMIN", "zq", "0")
						}
						waitBlocked(t, ctl, i+1)
					}
					for i := 0; i < clients; i++ {
						e := fmt.Sprintf("e%02d", i)
						if kind == "list" {
							ctl.do("LPUSH", "q", e)
						} else {
							ctl.do("ZADD", "zq", strconv.Itoa(i), e)
						}
					}
					for i, c := range blocked {
						e := fmt.Sprintf("e%02d", i)
						want := arr(bs("q"), bs(e))
						if kind == "zset" {
							want = arr(bs("zq"), bs(e), bs(strconv.Itoa(i)))
						}
						if got := c.next(); got != want {
							t.Errorf("%s client %d: %q, want %q", kind, i, got, want)
						}
						c.close()
					}
					waitBlocked(t, ctl, 0)
				}
			})
		})
	}
}

// TestBlockedDisconnectLosesNothing: a client that leaves while blocked
// is taken out and pops nothing: the element goes to the next waiter, or
// stays in the list. (Not for connections without a descriptor, whose
// leaving the node sees only once they are served.)
func TestBlockedDisconnectLosesNothing(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		if strings.Contains(t.Name(), "plain-reads") {
			t.Skip("no descriptor: the node cannot watch the socket")
		}
		ctl := n.raw()
		gone := n.raw()
		gone.send("BLPOP", "l", "0")
		waitBlocked(t, ctl, 1)
		if list := ctl.do("CLIENT", "LIST"); !strings.Contains(list, " flags=b ") || !strings.Contains(list, " cmd=blpop ") {
			t.Errorf("CLIENT LIST does not show the blocked client (flags=b, cmd=blpop):\n%s", list)
		}
		stays := n.raw()
		stays.send("BLMOVE", "l", "dst", "LEFT", "LEFT", "0")
		waitBlocked(t, ctl, 2)
		gone.close()
		waitBlocked(t, ctl, 1)
		ctl.do("RPUSH", "l", "a")
		if got := stays.next(); got != bs("a") {
			t.Fatalf("second waiter: %q", got)
		}
		gone2 := n.raw()
		gone2.send("BZPOPMAX", "z", "0")
		waitBlocked(t, ctl, 1)
		gone2.close()
		waitBlocked(t, ctl, 0)
		ctl.do("RPUSH", "l", "b")
		ctl.do("ZADD", "z", "1", "m")
		if got := ctl.do("LRANGE", "l", "0", "-1"); got != arr(bs("b")) {
			t.Fatalf("list after the gone client: %q", got)
		}
		if got := ctl.do("ZCARD", "z"); got != in(1) {
			t.Fatalf("zset after the gone client: %q", got)
		}
		if got := ctl.do("LRANGE", "dst", "0", "-1"); got != arr(bs("a")) {
			t.Fatalf("dst: %q", got)
		}
	})
}

// TestBlockedManyConcurrent: clients block, push, and leave at once on
// several loops; every element pushed is popped by a client that got its
// reply, or is still in the list: nothing popped for a client that left
// before it was served, nothing served twice.
func TestBlockedManyConcurrent(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		const consumers, perConsumer = 8, 25
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[string]int{}
		for i := 0; i < consumers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dialRaw(t, n.addr)
				defer c.close()
				for j := 0; j < perConsumer; j++ {
					r := c.do("BLPOP", "jobs", "other", "5")
					if r == nilArr {
						t.Errorf("timed out waiting for a job")
						return
					}
					mu.Lock()
					got[r]++
					mu.Unlock()
				}
			}()
		}
		p := dialRaw(t, n.addr)
		for i := 0; i < consumers*perConsumer; i++ {
			p.do("RPUSH", "jobs", fmt.Sprint("j", i))
		}
		wg.Wait()
		if len(got) != consumers*perConsumer {
			t.Fatalf("%d distinct jobs popped, want %d", len(got), consumers*perConsumer)
		}
		for r, k := range got {
			if k != 1 {
				t.Errorf("%q popped %d times", r, k)
			}
		}
		if got := p.do("LLEN", "jobs"); got != in(0) {
			t.Errorf("LLEN jobs: %q", got)
		}
	})
}

// FuzzParseTimeout: any argument either gives one of Redis's two timeout
// errors or a deadline that is none (0) or not before the command's clock.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"0", "1", "0.5", "-1", "-0.0001", "inf", "-inf", "nan", "1e300", "0x10", "0x0.1p3",
		"9223372036854775", "92233720368547758", "", " 1", "1 ", "1e-400", "+.5", "00001.5000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := &client{now: 1_700_000_000_000}
		c.srv = &Server{}
		deadline, ok := c.parseTimeout([]byte(s))
		if !ok {
			if got := string(c.out); got != "-ERR timeout is negative\r\n" && got != "-ERR timeout is not a float or out of range\r\n" {
				t.Fatalf("%q: reply %q", s, got)
			}
			return
		}
		if len(c.out) != 0 || deadline != 0 && deadline <= c.now {
			t.Fatalf("%q: deadline %d, reply %q", s, deadline, c.out)
		}
	})
}

// TestBlockedTimeoutsAmongForever: clients with short timeouts time out
// with a null while clients blocked for ever on the same key stay blocked
// and are served by the push that comes after.
func TestBlockedTimeoutsAmongForever(t *testing.T) {
	forEachMode(t, bitcask.SyncEverySec, func(t *testing.T, n *testNode) {
		ctl := n.raw()
		var forever, timed []*rawConn
		for i := 0; i < 40; i++ {
			c := n.raw()
			if i%4 == 0 {
				c.send("BLPOP", "k", "0")
				forever = append(forever, c)
			} else {
				c.send("BLPOP", "k", fmt.Sprintf("0.%03d", 20+i*5))
				timed = append(timed, c)
			}
		}
		for _, c := range timed {
			if got := c.next(); got != nilArr {
				t.Fatalf("timed client: %q", got)
			}
		}
		waitBlocked(t, ctl, len(forever))
		vals := make([]string, len(forever))
		for i := range vals {
			vals[i] = fmt.Sprint("v", i)
		}
		ctl.do(append([]string{"RPUSH", "k"}, vals...)...)
		seen := map[string]bool{}
		for _, c := range forever {
			got := c.next()
			seen[got] = true
		}
		if len(seen) != len(forever) {
			t.Fatalf("%d distinct replies for %d clients", len(seen), len(forever))
		}
		if got := ctl.do("LLEN", "k"); got != in(0) {
			t.Fatalf("LLEN: %q", got)
		}
	})
}
