// Package memfree gives memory back to the operating system after big
// buffers were dropped.
//
// The Go runtime returns freed heap pages to the system by itself, but
// slowly (its background scavenger works at about one percent of a CPU),
// so a server that held a gigabyte of replies for a client that did not
// read kept most of it resident for minutes after the client left. A
// server that drops a big buffer reports it with Released; once enough was
// released, debug.FreeOSMemory runs (a garbage collection and a scavenge of
// everything free), at most once per interval, in a goroutine of its own.
package memfree

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// threshold is how much must have been released since the last run.
	threshold = 32 << 20
	// interval is the least time between two runs: a run costs a full
	// garbage collection.
	interval = 2 * time.Second
)

var (
	released atomic.Int64
	mu       sync.Mutex
	pending  bool      // a run is scheduled or running
	last     time.Time // when the last run ended
)

// Released notes that a buffer of n bytes is no longer referenced.
func Released(n int) {
	if n <= 0 || released.Add(int64(n)) < threshold {
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
