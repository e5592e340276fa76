package bitcask

import (
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
