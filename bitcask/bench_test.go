package bitcask

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Benchmarks (none runs without -bench):
//
//	go test -run '^$' -bench 'Put|Get' ./bitcask/
//	go test -run '^$' -bench 'Open1M|KeydirBytes' -benchtime 1x ./bitcask/

const benchValueSize = 100

var benchValue = func() []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}()

func benchKey(buf []byte, i int) []byte {
	return strconv.AppendInt(append(buf[:0], "key:"...), int64(i), 10)
}

func benchOpts(p SyncPolicy) Options {
	o := DefaultOptions()
	o.Sync = p
	o.MergeCheckInterval = 0
	return o
}

var policies = []SyncPolicy{SyncAlways, SyncEverySec, SyncNo}

// BenchmarkPut: Puts of 100-byte values under each fsync policy, from one
// goroutine and from 64 concurrent ones (group commit under always).
func BenchmarkPut(b *testing.B) {
	for _, p := range policies {
		for _, par := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", p, par), func(b *testing.B) {
				db, err := Open(b.TempDir(), benchOpts(p))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				var n atomic.Int64
				b.ReportAllocs()
				b.SetBytes(benchValueSize)
				b.ResetTimer()
				var wg sync.WaitGroup
				per := (b.N + par - 1) / par
				for g := 0; g < par; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var kb []byte
						for i := 0; i < per; i++ {
							kb = benchKey(kb, int(n.Add(1)))
							if err := db.Put(kb, benchValue, 0); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(per*par)/b.Elapsed().Seconds(), "puts/s")
				b.ReportMetric(float64(db.Stats().Fsyncs)/float64(per*par), "fsyncs/put")
			})
		}
	}
}

// BenchmarkGet: Gets of 100-byte values (100,000 keys) under each policy,
// from GOMAXPROCS goroutines.
func BenchmarkGet(b *testing.B) {
	const keys = 100_000
	for _, p := range policies {
		b.Run(p.String(), func(b *testing.B) {
			db, err := Open(b.TempDir(), benchOpts(SyncNo))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var kb []byte
			for i := 0; i < keys; i++ {
				kb = benchKey(kb, i)
				if err := db.Put(kb, benchValue, 0); err != nil {
					b.Fatal(err)
				}
			}
			db.SetSyncPolicy(p)
			b.ReportAllocs()
			b.SetBytes(benchValueSize)
			b.ResetTimer()
			var seed atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				var kb, vb []byte
				i := int(seed.Add(7919))
				for pb.Next() {
					i = (i + 104729) % keys
					kb = benchKey(kb, i)
					v, _, err := db.GetAppend(vb[:0], kb)
					if err != nil || len(v) != benchValueSize {
						b.Errorf("Get: %v", err)
						return
					}
					vb = v
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
		})
	}
	b.Run("alloc-api", func(b *testing.B) {
		db, err := Open(b.TempDir(), benchOpts(SyncNo))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		var kb []byte
		for i := 0; i < keys; i++ {
			kb = benchKey(kb, i)
			db.Put(kb, benchValue, 0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var kb []byte
			i := 0
			for pb.Next() {
				i = (i + 104729) % keys
				kb = benchKey(kb, i)
				if _, _, err := db.Get(kb); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
	})
}

const millionKeys = 1_000_000

var (
	millionOnce sync.Once
	millionDir  string
	millionErr  error
)

// millionKeyDir builds, once per test binary run, a directory with
// 1,000,000 keys of 100-byte values in 32 MiB files and their hints.
func millionKeyDir(b *testing.B) string {
	millionOnce.Do(func() {
		millionDir, millionErr = os.MkdirTemp("", "bitcask-bench-1m-")
		if millionErr != nil {
			return
		}
		o := benchOpts(SyncNo)
		o.MaxFileSize = 32 << 20
		var db *DB
		db, millionErr = Open(millionDir, o)
		if millionErr != nil {
			return
		}
		var kb []byte
		for i := 0; i < millionKeys; i++ {
			kb = benchKey(kb, i)
			if millionErr = db.Put(kb, benchValue, 0); millionErr != nil {
				return
			}
		}
		millionErr = db.Close()
	})
	if millionErr != nil {
		b.Fatal(millionErr)
	}
	return millionDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if millionDir != "" {
		os.RemoveAll(millionDir)
	}
	os.Exit(code)
}

// BenchmarkOpen1M: Open of 1,000,000 keys from hint files, and by scanning
// the data files (hints moved away).
func BenchmarkOpen1M(b *testing.B) {
	dir := millionKeyDir(b)
	for _, hints := range []bool{true, false} {
		b.Run(fmt.Sprintf("hints=%v", hints), func(b *testing.B) {
			o := benchOpts(SyncNo)
			o.MaxFileSize = 32 << 20
			o.DisableHints = true // Close must not write hints either way
			var moved []string
			if !hints {
				ms, _ := filepath.Glob(filepath.Join(dir, "*"+hintSuffix))
				for _, h := range ms {
					if err := os.Rename(h, h+".away"); err != nil {
						b.Fatal(err)
					}
					moved = append(moved, h)
				}
				defer func() {
					for _, h := range moved {
						os.Rename(h+".away", h)
					}
				}()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runtime.GC()
				db, elapsed, cpu := timedOpen(b, dir, o)
				st := db.Stats()
				if db.Len() != millionKeys {
					b.Fatalf("%d keys", db.Len())
				}
				if hints && st.DataFilesScanned != 0 || !hints && st.HintFilesLoaded != 0 {
					b.Fatalf("stats %+v", st)
				}
				b.StopTimer()
				db.Close()
				b.ReportMetric(elapsed.Seconds()*1000, "ms/open")
				b.ReportMetric(cpu.Seconds()*1000, "cpu-ms/open")
				b.StartTimer()
			}
		})
	}
}

// timedOpen opens dir and returns how long it took, in wall and in CPU
// time.
func timedOpen(b *testing.B, dir string, o Options) (*DB, time.Duration, time.Duration) {
	b.Helper()
	cpu0 := cpuTime()
	start := time.Now()
	db, err := Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	return db, time.Since(start), cpuTime() - cpu0
}

// cpuTime is the process's user+system CPU time, which a busy shared
// machine distorts less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkKeydirBytesPerKey: live heap after opening 1,000,000 keys,
// per key, in total and beyond the key's own bytes.
func BenchmarkKeydirBytesPerKey(b *testing.B) {
	dir := millionKeyDir(b)
	o := benchOpts(SyncNo)
	o.MaxFileSize = 32 << 20
	o.DisableHints = true
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		db, err := Open(dir, o)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		var keyBytes int64
		db.Range(func(k []byte, _ Meta) bool { keyBytes += int64(len(k)); return true })
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/millionKeys, "heap-bytes/key")
		b.ReportMetric((heap-float64(keyBytes))/millionKeys, "bytes/key-beyond-key")
		b.ReportMetric(float64(keyBytes)/millionKeys, "key-bytes/key")
		db.Close()
	}
}
