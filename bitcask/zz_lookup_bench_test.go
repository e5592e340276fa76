package bitcask

import (
	"runtime"
	"strconv"
	"testing"
)

func BenchmarkLookupKD(b *testing.B) {
	for _, keys := range []int{100_000, 1_000_000} {
		b.Run(itoa(keys), func(b *testing.B) {
			db, err := Open(b.TempDir(), benchOpts(SyncNo))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for j := 0; j < keys; j += 10000 {
			err = db.Update(func(tx *Tx) error {
				var kb []byte
				for i := j; i < j+10000; i++ {
					kb = benchKey(kb, i)
					if err := tx.Put(kb, []byte("v"), 0); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			}
			var kb []byte
			b.ResetTimer()
			i := 0
			for n := 0; n < b.N; n++ {
				i = (i + 104729) % keys
				kb = benchKey(kb, i)
				if _, ok := db.MetaOf(kb); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

func itoa(n int) string {
	if n >= 1_000_000 {
		return "1M"
	}
	return "100k"
}

func BenchmarkInsertMemZZ(b *testing.B) {
	for n := 0; n < b.N; n++ {
		var s0, s1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&s0)
		var kd keydir
		var kb []byte
		for i := 0; i < 1_000_000; i++ {
			kb = append(kb[:0], "idx:key:"...)
			kb = strconv.AppendInt(kb, int64(i), 10)
			h := Hash(kb)
			s := kd.shardFor(h)
			ci, j, found := s.search(h, kb)
			if !found {
				s.insertAt(ci, j, entry{hash: h}, kb)
			}
		}
		runtime.ReadMemStats(&s1)
		alloc := s1.TotalAlloc - s0.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&s1)
		b.ReportMetric(float64(s1.HeapAlloc-s0.HeapAlloc)/1e6, "liveMB")
		b.ReportMetric(float64(alloc)/1e6, "allocMB")
		var fb, used, capb int
		for i := range kd.shards {
			for _, l := range kd.shards[i].free {
				for _, a := range l {
					fb += cap(a) * 40
				}
			}
			for _, c := range kd.shards[i].chunks {
				used += len(c.e) * 40
				capb += cap(c.e) * 40
			}
		}
		b.ReportMetric(float64(fb)/1e6, "freeMB")
		b.ReportMetric(float64(used)/1e6, "usedMB")
		b.ReportMetric(float64(capb)/1e6, "capMB")
		runtime.KeepAlive(&kd)
	}
}
