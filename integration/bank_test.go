package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The bank of issue 16, through the real binaries: 100 accounts over three
// shards, 16 clients of two proxies moving money with WATCH/MULTI/EXEC
// (and 2 more with MULTI/EXEC alone), readers summing every balance in one
// MULTI through both proxies. While the load runs, the first proxy is
// SIGKILLed and restarted, then each node in turn. Every sum read is the
// total; after recovery the total holds, the balances are exactly what the
// transfers that left a marker say (every acknowledged one among them),
// and no key stays locked past the lock timeout.
//
// Each transfer writes, in the same MULTI as its DECRBY and INCRBY, a
// marker key of its own (spread over the shards like the accounts). A
// transfer applied twice, or half, or without its marker, makes some
// account's balance differ from start + Σ in − Σ out over the markers
// present; a transfer whose reply was an error other than TRYAGAIN may
// have its marker or not, but either way the balances must agree with it.
func TestCrossShardBank(t *testing.T) {
	c := StartCluster(t, Options{Shards: 3})
	ctx := context.Background()
	proxies := []string{c.ProxyAddr, startSecondProxy(t, c)}

	const (
		accounts  = 100
		start     = 50
		maxAmount = 40 // some transfers would overdraw: WATCH must refuse them
		clients   = 16 // with WATCH
		blind     = 2  // without
		readers   = 4
		// lockTimeout is proxy/xshard.go's xLockMs, the lock timeout the
		// proxy asks of the participants; resolveMargin is the resolution
		// round trip (TX.STATUS to the primary) on a loaded machine with the
		// race detector.
		lockTimeout   = 2 * time.Second
		resolveMargin = 5 * time.Second
		// Each phase of the run (before the first kill, after each restart)
		// must acknowledge this many transfers and read this many sums
		// through each proxy, or the run checked too little.
		phaseTransfers = 50
		phaseSums      = 2
	)
	var acct []string
	for i := 0; i < 3; i++ {
		acct = append(acct, c.KeysOn(i, "acct", (accounts+2-i)/3)...)
	}
	if len(acct) != accounts {
		t.Fatalf("%d accounts, want %d", len(acct), accounts)
	}
	total := start * accounts
	seed := c.Client()
	if _, err := seed.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range acct {
			p.Set(ctx, a, start, 0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// outcome of each transfer id, recorded by its client alone.
	type outcome int
	const (
		// nil EXEC every time, refused as an overdraft, or a TRYAGAIN
		// (the proxy's word that nothing was executed): no marker
		notApplied outcome = iota
		acked              // EXEC answered: the marker must be there
		uncertain          // an error after EXEC may have been sent: either way
	)
	type transfer struct {
		id     string
		result outcome
	}
	var (
		stop       = make(chan struct{})
		errs       = make(chan error, 64)
		wg         sync.WaitGroup
		ackedN     [2]atomic.Int64 // per proxy
		sumsN      [2]atomic.Int64
		nilExecs   atomic.Int64
		overdrafts atomic.Int64
		failures   atomic.Int64
		blindAcked atomic.Int64
		tryAgains  atomic.Int64
		history    = make([][]transfer, clients+blind)
		errKinds   sync.Map
	)
	errOverdraft := errors.New("overdraft")
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// move queues one transfer's commands, its marker with them.
	move := func(p redis.Pipeliner, from, to string, amount int, marker string) error {
		p.DecrBy(ctx, from, int64(amount))
		p.IncrBy(ctx, to, int64(amount))
		p.Set(ctx, marker, fmt.Sprintf("%s,%s,%d", from, to, amount), 0)
		return nil
	}
	// watched runs one transfer with WATCH: read both balances, refuse an
	// overdraft, MULTI ... EXEC.
	watched := func(r *redis.Client, from, to string, amount int, marker string) error {
		return r.Watch(ctx, func(tx *redis.Tx) error {
			vals, err := tx.MGet(ctx, from, to).Result()
			if err != nil {
				return err
			}
			fb, err := strconv.Atoi(fmt.Sprint(vals[0]))
			if err != nil {
				return fmt.Errorf("balance of %s: %v", from, vals[0])
			}
			if _, err := strconv.Atoi(fmt.Sprint(vals[1])); err != nil {
				return fmt.Errorf("balance of %s: %v", to, vals[1])
			}
			if fb < amount {
				return errOverdraft
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error { return move(p, from, to, amount, marker) })
			return err
		}, from, to)
	}
	// Clients from `clients` on move 1 without WATCH: a MULTI that the
	// proxy itself retries after a conflict (a new txid each time), which
	// must apply once all the same. Their transfers' ids start with "b".
	for w := 0; w < clients+blind; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px := w % 2
			r := c.ClientWith(func(o *redis.Options) { o.Addr = proxies[px] })
			rng := rand.New(rand.NewPCG(uint64(w), 16))
			for i := 0; !stopped(); i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				from := acct[rng.IntN(accounts)]
				to := acct[rng.IntN(accounts)]
				if from == to {
					continue
				}
				amount := 1 + rng.IntN(maxAmount)
				if w >= clients {
					id, amount = "b"+id, 1
				}
				marker := "xfer:" + id
				res := notApplied
				// A nil EXEC applied nothing: the same transfer, with the
				// same id, is tried again.
				for attempt := 0; attempt < 100 && !stopped(); attempt++ {
					var err error
					if w < clients {
						err = watched(r, from, to, amount, marker)
					} else {
						_, err = r.TxPipelined(ctx, func(p redis.Pipeliner) error { return move(p, from, to, amount, marker) })
					}
					if errors.Is(err, redis.TxFailedErr) {
						nilExecs.Add(1)
						continue
					}
					switch {
					case err == nil:
						res = acked
						ackedN[px].Add(1)
						if w >= clients {
							blindAcked.Add(1)
						}
					case errors.Is(err, errOverdraft):
						overdrafts.Add(1)
					case strings.HasPrefix(err.Error(), "balance of "):
						errs <- err
					case strings.HasPrefix(err.Error(), "TRYAGAIN "):
						tryAgains.Add(1)
						errKinds.Store(firstWords(err.Error()), true)
						time.Sleep(10 * time.Millisecond)
					default:
						// A proxy or node down: the transfer may or may not
						// be applied, and this id is not tried again.
						res = uncertain
						failures.Add(1)
						errKinds.Store(firstWords(err.Error()), true)
						time.Sleep(10 * time.Millisecond)
					}
					break
				}
				history[w] = append(history[w], transfer{id, res})
			}
		}()
	}
	sum := func(r *redis.Client) (int, error) {
		cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range acct {
				p.Get(ctx, a)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		n := 0
		for i, cmd := range cmds {
			v, err := cmd.(*redis.StringCmd).Int()
			if err != nil {
				return 0, fmt.Errorf("balance of %s in MULTI: %v", acct[i], err)
			}
			n += v
		}
		return n, nil
	}
	for w := 0; w < readers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px := w % 2
			r := c.ClientWith(func(o *redis.Options) { o.Addr = proxies[px] })
			for !stopped() {
				n, err := sum(r)
				switch {
				case err == nil && n != total:
					errs <- fmt.Errorf("a reader of proxy %d saw the sum %d, not %d", px+1, n, total)
					return
				case err == nil:
					sumsN[px].Add(1)
				case strings.HasPrefix(err.Error(), "balance of "):
					errs <- err
					return
				default:
					time.Sleep(10 * time.Millisecond) // a proxy or node down
				}
			}
		}()
	}
	failed := func() {
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	// progress waits until both proxies acknowledged more transfers and
	// read more sums: the load goes on after each recovery.
	progress := func(phase string) {
		t.Helper()
		var a0, s0 [2]int64
		for px := range proxies {
			a0[px], s0[px] = ackedN[px].Load(), sumsN[px].Load()
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			done := true
			for px := range proxies {
				done = done && ackedN[px].Load()-a0[px] >= phaseTransfers && sumsN[px].Load()-s0[px] >= phaseSums
			}
			if done {
				return
			}
			if time.Now().After(deadline) || len(errs) > 0 {
				failed()
				t.Fatalf("%s: no progress: transfers acknowledged %d/%d more, sums %d/%d more (proxy 1/2)", phase,
					ackedN[0].Load()-a0[0], ackedN[1].Load()-a0[1], sumsN[0].Load()-s0[0], sumsN[1].Load()-s0[1])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// prepared lists the transactions the nodes hold prepared, as "node
	// txid": each holds its keys' locks.
	nodes := make([]*redis.Client, len(c.Nodes))
	for i := range c.Nodes {
		nodes[i] = c.NodeClient(i, "")
	}
	prepared := func() (map[string]bool, error) {
		held := make(map[string]bool)
		for i, n := range nodes {
			list, err := n.Do(ctx, "TX.LIST").StringSlice()
			if err != nil {
				return nil, fmt.Errorf("TX.LIST on node %d: %v", i, err)
			}
			for _, e := range list {
				if f := strings.Fields(e); len(f) > 1 && f[0] == "prepared" {
					held[fmt.Sprintf("%d %s", i, f[1])] = true
				}
			}
		}
		return held, nil
	}
	// resolved waits until none of the transactions held at since is held
	// any more, and fails the test if one still is past the lock timeout
	// (and the resolution's round trip): no key stays locked longer, even
	// for a transaction whose coordinator or participant was killed.
	resolved := func(phase string, since time.Time, snap map[string]bool) {
		t.Helper()
		for {
			held, err := prepared()
			var still []string
			for id := range held {
				if snap[id] {
					still = append(still, id)
				}
			}
			if err == nil && len(still) == 0 {
				t.Logf("%s: the %d transactions prepared then are resolved %v later", phase, len(snap), time.Since(since).Round(time.Millisecond))
				return
			}
			if time.Since(since) > lockTimeout+resolveMargin {
				failed()
				t.Fatalf("%s: %v later, nodes still hold %v of the transactions prepared then (%v)", phase, time.Since(since), still, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	snapshot := func(phase string) (time.Time, map[string]bool) {
		t.Helper()
		since := time.Now()
		for {
			snap, err := prepared()
			if err == nil {
				return since, snap
			}
			if time.Since(since) > readyTimeout {
				failed()
				t.Fatalf("%s: %v", phase, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	progress("before the kills")
	c.Proxy.Kill()
	// What the killed proxy had prepared, and not decided or not finished,
	// is left to the participants.
	since, snap := snapshot("the proxy killed")
	c.Proxy.Start(t)
	c.Proxy.WaitReady(t)
	c.WaitServing()
	resolved("the proxy killed", since, snap)
	progress("after the proxy's restart")
	for i := range c.Nodes {
		c.Nodes[i].Kill()
		c.StartNode(i)
		phase := fmt.Sprintf("node %d restarted", i)
		since, snap := snapshot(phase)
		resolved(phase, since, snap)
		progress(phase)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var tried, withMarker, uncertainN int
	for _, h := range history {
		tried += len(h)
	}
	var kinds []string
	errKinds.Range(func(k, _ any) bool { kinds = append(kinds, k.(string)); return true })
	sort.Strings(kinds)
	t.Logf("transfers acknowledged %d + %d (proxy 1 + 2; %d without WATCH), nil EXECs %d, overdrafts refused %d, TRYAGAIN %d, other errors %d, of %d tried; sums read %d + %d; errors: %q",
		ackedN[0].Load(), ackedN[1].Load(), blindAcked.Load(), nilExecs.Load(), overdrafts.Load(), tryAgains.Load(), failures.Load(), tried,
		sumsN[0].Load(), sumsN[1].Load(), kinds)
	if blindAcked.Load() < phaseTransfers {
		t.Fatalf("only %d transfers without WATCH acknowledged: the run checked too little", blindAcked.Load())
	}

	// Once the load stopped, nothing stays prepared past the lock timeout.
	since, snap = snapshot("the load stopped")
	resolved("the load stopped", since, snap)
	if held, err := prepared(); err != nil || len(held) > 0 {
		t.Fatalf("after the load, the nodes hold %v (%v)", held, err)
	}

	// The balances, read once everything is resolved.
	r := c.Client()
	vals, err := r.MGet(ctx, acct...).Result()
	if err != nil {
		t.Fatalf("MGET of the accounts after recovery: %v", err)
	}
	balance := make(map[string]int, accounts)
	got := 0
	for i, v := range vals {
		b, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("balance of %s after recovery: %v", acct[i], v)
		}
		balance[acct[i]], got = b, got+b
	}
	if got != total {
		t.Fatalf("the sum after recovery is %d, not %d", got, total)
	}
	for px, addr := range proxies {
		n, err := sum(c.ClientWith(func(o *redis.Options) { o.Addr = addr }))
		if err != nil || n != total {
			t.Fatalf("the sum in MULTI through proxy %d after recovery: %d, %v; want %d", px+1, n, err, total)
		}
	}

	// Every marker present is applied once, in full; every acknowledged
	// transfer has its marker; no transfer answered nil has one.
	want := make(map[string]int, accounts)
	blindOut := make(map[string]int, accounts)
	for _, a := range acct {
		want[a] = start
	}
	for _, h := range history {
		for chunk := h; len(chunk) > 0; {
			part := chunk[:min(len(chunk), 200)]
			chunk = chunk[len(part):]
			keys := make([]string, len(part))
			for i, tr := range part {
				keys[i] = "xfer:" + tr.id
			}
			ms, err := r.MGet(ctx, keys...).Result()
			if err != nil {
				t.Fatalf("MGET of the markers: %v", err)
			}
			for i, m := range ms {
				tr := part[i]
				switch {
				case m == nil && tr.result == acked:
					t.Errorf("transfer %s was acknowledged, and its marker is missing", tr.id)
				case m != nil && tr.result == notApplied:
					t.Errorf("transfer %s got a nil EXEC, was refused or got TRYAGAIN, and its marker %q is there", tr.id, m)
				}
				if m == nil {
					continue
				}
				withMarker++
				if tr.result == uncertain {
					uncertainN++
				}
				f := strings.Split(fmt.Sprint(m), ",")
				amount, err := strconv.Atoi(f[len(f)-1])
				if len(f) != 3 || err != nil {
					t.Fatalf("marker of %s: %q", tr.id, m)
				}
				want[f[0]] -= amount
				want[f[1]] += amount
				if tr.id[0] == 'b' {
					blindOut[f[0]] += amount
				}
			}
		}
	}
	for _, a := range acct {
		if balance[a] != want[a] {
			t.Errorf("%s holds %d; the markers present say %d", a, balance[a], want[a])
		}
		// WATCH refuses an overdraft, so only the blind transfers take a
		// balance below zero, each by what it moved at most.
		if balance[a]+blindOut[a] < 0 {
			t.Errorf("%s is overdrawn: %d, of which blind transfers explain %d", a, balance[a], blindOut[a])
		}
	}
	t.Logf("%d markers present (%d of transfers whose reply was an error)", withMarker, uncertainN)

	// A plain write to every account, on its node directly, is not refused
	// as locked.
	for _, a := range acct {
		if err := nodes[c.ShardOf(a)].Set(ctx, a, balance[a], 0).Err(); err != nil {
			t.Fatalf("SET %s on its node: %v", a, err)
		}
	}
}

// firstWords is the start of an error, without what differs between runs
// of the same kind.
func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(len(f), 6)], " ")
}
