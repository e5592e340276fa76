package shardnode

import (
	"fmt"
	"testing"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/rangemap"
)

// TestPositionOfHash: the node checks ownership from the hash bitcask files
// the key under; it must be the range map's position of the key.
func TestPositionOfHash(t *testing.T) {
	keys := [][]byte{nil, {}, []byte("a"), []byte("idx:key:12345"), make([]byte, 1000)}
	for i := 0; i < 1000; i++ {
		keys = append(keys, []byte(fmt.Sprintf("key:%d", i*7919)))
	}
	for _, k := range keys {
		if got, want := rangemap.PositionOfHash(bitcask.Hash(k)), rangemap.Position(k); got != want {
			t.Fatalf("key %q: position %v from the hash, rangemap says %v", k, got, want)
		}
	}
}

// TestKeyHashMemo: the memo answers only for the very bytes checkKeys saw.
func TestKeyHashMemo(t *testing.T) {
	c := &client{}
	buf := []byte("k1k2")
	c.hkey, c.hval = buf[0:2], 12345
	if got := c.keyHash(buf[0:2]); got != 12345 {
		t.Fatalf("memo not used: %d", got)
	}
	if got, want := c.keyHash(buf[2:4]), bitcask.Hash([]byte("k2")); got != want {
		t.Fatalf("other key: %d, want %d", got, want)
	}
	if got, want := c.keyHash([]byte("k1")), bitcask.Hash([]byte("k1")); got != want {
		t.Fatalf("same bytes elsewhere: %d, want %d", got, want)
	}
}
