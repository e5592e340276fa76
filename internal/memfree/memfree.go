// Package memfree gives memory back to the operating system after big
// buffers were dropped.
//
// The Go runtime returns freed heap pages to the system by itself, but
// slowly (its background scavenger works at about one percent of a CPU),
// so a server that held a gigabyte of replies for a client that did not
// read kept most of it resident for minutes after the client left. A
// server reports a big buffer it drops with Released, and a closed
// connection's buffers with Gone; once enough was released since the last
// run (threshold, or goneThreshold when a connection went, whose memory
// should be back soon after it left), debug.FreeOSMemory runs (a garbage
// collection and a scavenge of everything free), at most once per interval,
// in a goroutine of its own.
package memfree

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

const (
	threshold     = 32 << 20
	goneThreshold = 4 << 20
	// interval is the least time between two runs: a run costs a full
	// garbage collection.
	interval = 2 * time.Second
)

var (
	released atomic.Int64 // bytes released since the last run began
	mu       sync.Mutex
	pending  bool      // a run is scheduled or running
	last     time.Time // when the last run ended
)

// Released notes that a buffer of n bytes is no longer referenced.
func Released(n int) { release(n, threshold) }

// Gone notes that a closed connection's buffers, n bytes, are no longer
// referenced.
func Gone(n int) { release(n, goneThreshold) }

// Big is n if it is the size of a big buffer (over 64 KiB), else 0: small
// buffers are the ordinary churn the runtime handles well.
func Big(n int) int {
	if n > 64<<10 {
		return n
	}
	return 0
}

func release(n int, enough int64) {
	if released.Add(int64(max(n, 0))) < enough {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if pending {
		return
	}
	pending = true
	wait := time.Until(last.Add(interval))
	time.AfterFunc(max(wait, 0), run)
}

func run() {
	released.Store(0)
	debug.FreeOSMemory()
	mu.Lock()
	pending = false
	last = time.Now()
	mu.Unlock()
}
