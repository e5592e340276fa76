package bitcask

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkOpenCollection: Open of a store holding one collection of
// 1,000,000 elements, the bench harness's big collections (16-byte
// members; 100-byte values for the hash's fields and the list's
// elements), from the hint files Close wrote and by scanning the data
// files (hints moved away):
//
//	go test -run '^$' -bench OpenCollection -benchtime 1x ./bitcask/
//
// Each collection is built once per test binary run, in Updates of 1,000
// elements as a node's pipelined passes write them.
func BenchmarkOpenCollection(b *testing.B) {
	const n = 1000000
	for _, typ := range []string{"hash", "set", "zset", "list"} {
		dir := ""
		for _, hints := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/hints=%v", typ, hints), func(b *testing.B) {
				if dir == "" {
					dir = bigCollDir(b, typ, n)
				}
				if !hints {
					ms, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
					for _, h := range ms {
						if err := os.Rename(h, h+".away"); err != nil {
							b.Fatal(err)
						}
					}
					defer func() {
						for _, h := range ms {
							os.Rename(h+".away", h)
						}
					}()
				}
				o := benchOpts(SyncNo)
				o.DisableHints = true // Close must not write hints either way
				// Smaller than the data file, which Open then leaves
				// alone (and its hint) rather than appending to it.
				o.MaxFileSize = 32 << 20
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					settleFinalized()
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					db, elapsed, cpu := timedOpen(b, dir, o)
					b.StopTimer()
					// Only the empty files earlier Opens made are scanned
					// when the hint is there.
					got, st := bigCollLen(b, db, typ), db.Stats()
					if got != n || hints && st.HintFilesLoaded != 1 || !hints && st.HintFilesLoaded != 0 {
						db.Close()
						b.Fatalf("%s of %d elements after Open, want %d; stats %+v", typ, got, n, st)
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					b.ReportMetric(elapsed.Seconds()*1000, "ms/open")
					b.ReportMetric(cpu.Seconds()*1000, "cpu-ms/open")
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-bytes/elem")
					db.Close()
					b.StartTimer()
				}
			})
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
}

// bigCollDir writes a store holding one collection "big" of type typ
// with n elements and closes it (which writes the hints).
func bigCollDir(b *testing.B, typ string, n int) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "bitcask-bench-coll-")
	if err != nil {
		b.Fatal(err)
	}
	db := mustOpen(b, dir, benchOpts(SyncNo))
	k := []byte("big")
	var m []byte
	for i := 0; i < n; i += 1000 {
		if err := db.Update(func(tx *Tx) error {
			for j := i; j < i+1000 && j < n; j++ {
				m = fmt.Appendf(m[:0], "member:%09d", j)
				var err error
				switch typ {
				case "hash":
					_, err = tx.HashSet(k, m, benchValue)
				case "set":
					_, err = tx.SetAdd(k, m)
				case "zset":
					_, err = tx.ZSetAdd(k, m, float64(j))
				default:
					_, err = tx.ListPush(k, [][]byte{benchValue}, false, false)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			os.RemoveAll(dir)
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	return dir
}

func bigCollLen(b *testing.B, db *DB, typ string) int {
	b.Helper()
	h := Hash([]byte("big"))
	var n int
	var err error
	switch typ {
	case "hash":
		n, err = db.HashLen(h, []byte("big"), 0)
	case "set":
		n, err = db.SetCard(h, []byte("big"), 0)
	case "zset":
		n, err = db.ZSetCard(h, []byte("big"), 0)
	default:
		n, err = db.ListLen(h, []byte("big"), 0)
	}
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// settleFinalized collects until the finalizers of what the last
// collection found unreachable (arena arrays of closed DBs) have run and
// what they kept is gone too.
func settleFinalized() {
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine's turn
	}
}
