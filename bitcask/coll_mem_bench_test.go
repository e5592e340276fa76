package bitcask

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkCollBytesPerElem: live heap per element of one collection of
// 1,000,000 16-byte members (the bench harness's big collections), after
// writing it and after reopening it:
//
//	go test -run '^$' -bench CollBytesPerElem -benchtime 1x ./bitcask/
func BenchmarkCollBytesPerElem(b *testing.B) {
	const n = 1000000
	value := benchValue
	for _, typ := range []string{"zset", "hash", "set"} {
		b.Run(typ, func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				dir := b.TempDir()
				var before, after runtime.MemStats
				settle()
				runtime.ReadMemStats(&before)
				db := mustOpen(b, dir, benchOpts(SyncNo))
				k := []byte("big")
				for i := 0; i < n; i += 1000 {
					if err := db.Update(func(tx *Tx) error {
						for j := i; j < i+1000; j++ {
							m := []byte(fmt.Sprintf("member:%09d", j))
							var err error
							switch typ {
							case "zset":
								_, err = tx.ZSetAdd(k, m, float64(j))
							case "hash":
								_, err = tx.HashSet(k, m, value)
							default:
								_, err = tx.SetAdd(k, m)
							}
							if err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/elem-written")
				db.Close()
				db = nil
				settle() // the closed DB's arena arrays go with its finalizers
				db = mustOpen(b, dir, benchOpts(SyncNo))
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/elem-reopened")
				db.Close()
			}
		})
	}
}

// settle collects twice: finalizers queued by the first collection run
// before the second.
func settle() {
	runtime.GC()
	runtime.GC()
}
