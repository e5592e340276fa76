package conncmd

import (
	"testing"
	"time"
)

// BenchmarkObserve is what recording one command costs a server: a
// latency into its row's histogram, and the per-batch threshold checks.
func BenchmarkObserve(b *testing.B) {
	o := NewObserver(func() int64 { return 0 }, func() int64 { return 0 }, func() int64 { return 0 })
	defer o.Stop()
	b.Run("command", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			o.Commands.Observe(3, int64(i&1023))
		}
	})
	b.Run("batch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			o.Batch(time.Duration(i & 1023))
		}
	})
	b.Run("clock", func(b *testing.B) {
		t := time.Now()
		for i := 0; i < b.N; i++ {
			_ = time.Since(t)
		}
	})
}
