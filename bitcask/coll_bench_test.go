package bitcask

import (
	"fmt"
	"testing"
)

// BenchmarkCollPop: one pop (or one write) per command from a collection
// of 100,000 elements, batch commands per Tx as a node's pass carries
// them, so that a cost paid once per Tx and collection shows per command
// at small batches (redis-benchmark -P 1) and fades at big ones:
//
//	go test -run '^$' -bench CollPop -benchtime 20000x ./bitcask/
func BenchmarkCollPop(b *testing.B) {
	const n = 100000
	for _, batch := range []int{1, 16, 800} {
		b.Run(fmt.Sprintf("zpopmin/batch=%d", batch), func(b *testing.B) {
			db := benchColl(b, n, func(tx *Tx, k, m []byte, i int) error {
				_, err := tx.ZSetAdd(k, m, float64(i))
				return err
			})
			defer db.Close()
			benchCollOps(b, db, batch, func(tx *Tx, k []byte, i int) error {
				ms, err := tx.ZSetRange(k, &ZRange{Start: 0, Stop: 0, Count: -1})
				if err != nil || len(ms) == 0 {
					return err
				}
				_, err = tx.ZSetRemove(k, ms[0].Member)
				return err
			})
		})
		b.Run(fmt.Sprintf("spop/batch=%d", batch), func(b *testing.B) {
			db := benchColl(b, n, func(tx *Tx, k, m []byte, i int) error {
				_, err := tx.SetAdd(k, m)
				return err
			})
			defer db.Close()
			benchCollOps(b, db, batch, func(tx *Tx, k []byte, i int) error {
				ms, err := tx.SetRandom(k, 1, true)
				if err != nil || len(ms) == 0 {
					return err
				}
				_, err = tx.SetRemove(k, ms[0])
				return err
			})
		})
		b.Run(fmt.Sprintf("hset/batch=%d", batch), func(b *testing.B) {
			db := benchColl(b, n, func(tx *Tx, k, m []byte, i int) error {
				_, err := tx.HashSet(k, m, benchValue)
				return err
			})
			defer db.Close()
			benchCollOps(b, db, batch, func(tx *Tx, k []byte, i int) error {
				_, err := tx.HashSet(k, benchKey(nil, i%n), benchValue)
				return err
			})
		})
	}
}

// benchColl opens a DB holding one collection "c" of n elements.
func benchColl(b *testing.B, n int, add func(tx *Tx, k, m []byte, i int) error) *DB {
	b.Helper()
	db := mustOpen(b, b.TempDir(), benchOpts(SyncNo))
	k := []byte("c")
	for i := 0; i < n; i += 1000 {
		if err := db.Update(func(tx *Tx) error {
			for j := i; j < i+1000 && j < n; j++ {
				if err := add(tx, k, benchKey(nil, j), j); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// benchCollOps runs b.N ops, batch per Update (a pop past the end finds
// the collection empty and pops nothing: keep b.N below its size).
func benchCollOps(b *testing.B, db *DB, batch int, op func(tx *Tx, k []byte, i int) error) {
	k := []byte("c")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if err := db.Update(func(tx *Tx) error {
			for j := i; j < i+batch && j < b.N; j++ {
				if err := op(tx, k, j); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
