package bitcask

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// updateZeros is crc32.Update over n zero bytes, fed a chunk at a time.
func updateZeros(crc uint32, n int) uint32 {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, len(z))
		crc = crc32.Update(crc, castagnoli, z[:k])
		n -= k
	}
	return crc
}

func TestCRCZerosAndCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// 2^29+7: lengths past 2^29 bytes need x^(2^32) and above.
	for _, n := range []int{0, 1, 2, 7, 8, 100, 4096, 1<<20 + 3, 1<<29 + 7} {
		a := make([]byte, rng.IntN(100))
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		crcA := crc32.Checksum(a, castagnoli)
		want := updateZeros(crcA, n)
		if got := crcZeros(crcA, int64(n)); got != want {
			t.Errorf("crcZeros(%d) = %#x, want %#x", n, got, want)
		}
		// B is n zeros then 1, 2, 3.
		tail := []byte{1, 2, 3}
		crcB := crc32.Update(updateZeros(0, n), castagnoli, tail)
		want = crc32.Update(want, castagnoli, tail)
		if got := crcCombine(crcA, crcB, int64(n+len(tail))); got != want {
			t.Errorf("crcCombine(len %d) = %#x, want %#x", n+len(tail), got, want)
		}
	}
}
