package bitcask

import (
	"bytes"
	"testing"
)

func BenchmarkListPushPop(b *testing.B) {
	db := mustOpen(b, b.TempDir(), testOptions())
	defer db.Close()
	k := []byte("mylist")
	v := [][]byte{bytes.Repeat([]byte("v"), 100)}
	b.Run("push", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := db.Update(func(tx *Tx) error {
				for j := 0; j < benchBatch; j++ {
					if _, err := tx.ListPush(k, v, true, false); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("range100", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := 0
			db.ListWalk(Hash(k), k, 0, false, 0, func(int, []byte) bool { n++; return n < 100 })
		}
	})
	b.Run("pop", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := db.Update(func(tx *Tx) error {
				for j := 0; j < benchBatch; j++ {
					if _, err := tx.ListPop(k, true, 1); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchBatch is the commands of one Tx: a node batches what many
// pipelining clients sent.
const benchBatch = 800
