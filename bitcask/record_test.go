package bitcask

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
)

// goldenRecords pin the record format: one vector per kind, plus an integer
// value, an empty key and value, and a two-record batch. Each vector is
// written field by field: crc | time | seq | expire-at | key len |
// value len | kind flags key-type value-type | key | value.
var goldenRecords = []struct {
	name        string
	kind, flags byte
	seq         uint64
	expireAt    int64
	key, value  string
	hex         string
}{
	{"put", kindPut, flagSingle, 1, 0, "key", "value",
		"1362df8a 7b68e5cf8b010000 0100000000000000 0000000000000000 03000000 05000000 01030000 6b6579 76616c7565"},
	{"put integer with expiry", kindPut, flagSingle, 2, 1700000060000, "n", "-42",
		"eb1cbb48 7b68e5cf8b010000 0200000000000000 6052e6cf8b010000 01000000 08000000 01030001 6e d6ffffffffffffff"},
	{"put empty key and value", kindPut, flagSingle, 3, 0, "", "",
		"ace03774 7b68e5cf8b010000 0300000000000000 0000000000000000 00000000 00000000 01030000"},
	{"tombstone", kindDelete, flagSingle, 4, 0, "key", "",
		"3db6306d 7b68e5cf8b010000 0400000000000000 0000000000000000 03000000 00000000 02030000 6b6579"},
	{"expire", kindExpire, flagSingle, 5, 1700000090000, "key", "",
		"44651488 7b68e5cf8b010000 0500000000000000 90c7e6cf8b010000 03000000 00000000 03030000 6b6579"},
	{"flush-all", kindFlushAll, flagSingle, 6, 0, "", "",
		"e131cbf3 7b68e5cf8b010000 0600000000000000 0000000000000000 00000000 00000000 04030000"},
	{"batch first", kindPut, flagBatchFirst, 7, 0, "a", "1",
		"d588fcd2 7b68e5cf8b010000 0700000000000000 0000000000000000 01000000 08000000 01010001 61 0100000000000000"},
	{"batch last", kindPut, flagBatchLast, 8, 0, "b", "x",
		"5683482d 7b68e5cf8b010000 0800000000000000 0000000000000000 01000000 01000000 01020000 62 78"},
	// Databases: the flags' high nibble (old files have 0 there: database 0).
	{"put in database 3", kindPut, flagSingle | 3<<flagDBShift, 9, 0, "key", "v3",
		"95cddf0c 7b68e5cf8b010000 0900000000000000 0000000000000000 03000000 02000000 01330000 6b6579 7633"},
	{"flush-db of database 15", kindFlushDB, flagSingle | 15<<flagDBShift, 10, 0, "", "",
		"57277622 7b68e5cf8b010000 0a00000000000000 0000000000000000 00000000 00000000 08f30000"},
}

const goldenTime = 1700000000123

func TestRecordGolden(t *testing.T) {
	// Pin the polynomial: the published CRC-32C check value.
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xe3069283 {
		t.Fatalf("CRC-32C check value %#x", got)
	}
	for _, g := range goldenRecords {
		t.Run(g.name, func(t *testing.T) {
			want, err := hex.DecodeString(strings.ReplaceAll(g.hex, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			got := appendRecord(nil, g.kind, g.flags, g.seq, goldenTime, g.expireAt, []byte(g.key), []byte(g.value))
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, want)
			}
			// The CRC covers everything after it, computed independently.
			if crc32.Checksum(want[4:], crc32.MakeTable(crc32.Castagnoli)) != uint32(want[0])|uint32(want[1])<<8|uint32(want[2])<<16|uint32(want[3])<<24 {
				t.Fatal("CRC field is not CRC-32C of the rest, little endian")
			}
			h, k, v, err := decodeRecord(want)
			if err != nil {
				t.Fatal(err)
			}
			if h.kind != g.kind || h.flags != g.flags || h.seq != g.seq || h.expireAt != g.expireAt || h.time != goldenTime || string(k) != g.key {
				t.Fatalf("decoded %+v key %q", h, k)
			}
			if got := string(renderValue(h.valType, v)); got != g.value {
				t.Fatalf("value %q, want %q", got, g.value)
			}
			// Any truncation fails to decode.
			for n := 0; n < len(want); n++ {
				if _, _, _, err := decodeRecord(want[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decoding %d of %d bytes: %v", n, len(want), err)
				}
			}
			// Any single flipped bit fails to decode.
			for i := 0; i < len(want)*8; i++ {
				b := append([]byte(nil), want...)
				b[i/8] ^= 1 << (i % 8)
				if _, _, _, err := decodeRecord(b); err == nil {
					t.Fatalf("bit %d flipped still decodes", i)
				}
			}
		})
	}
}

func renderValue(vtype byte, stored []byte) []byte {
	if vtype == valTypeInt {
		return strconv.AppendInt(nil, int64(le64(stored)), 10)
	}
	return stored
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func TestCanonicalInt(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"0", true}, {"1", true}, {"-1", true}, {"10", true}, {"123456789", true},
		{"9223372036854775807", true}, {"-9223372036854775808", true},
		{"9223372036854775808", false}, {"-9223372036854775809", false},
		{"99999999999999999999", false}, {"18446744073709551616", false},
		{"", false}, {"-", false}, {"-0", false}, {"00", false}, {"01", false}, {"+1", false},
		{" 1", false}, {"1 ", false}, {"1a", false}, {"0x10", false}, {"1.0", false}, {"--1", false},
	} {
		v, ok := ParseInt([]byte(c.s))
		if ok != c.ok {
			t.Errorf("ParseInt(%q) ok = %v, want %v", c.s, ok, c.ok)
		}
		if ok {
			if strconv.FormatInt(v, 10) != c.s {
				t.Errorf("ParseInt(%q) = %d", c.s, v)
			}
			if intLen(v) != len(c.s) {
				t.Errorf("intLen(%d) = %d", v, intLen(v))
			}
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, g := range goldenRecords {
		b, _ := hex.DecodeString(strings.ReplaceAll(g.hex, " ", ""))
		f.Add(b)
	}
	for _, g := range goldenColl {
		b, _ := hex.DecodeString(strings.ReplaceAll(g.hex, " ", ""))
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, headerSize))
	huge := appendRecord(nil, kindPut, flagSingle, 1, 1, 0, []byte("k"), []byte("v"))
	huge[offValueLen], huge[offValueLen+1], huge[offValueLen+2] = 0xff, 0xff, 0x1f // claims ~512 MiB
	f.Add(huge)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, k, v, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if int64(len(k)) != int64(h.keyLen) || int64(len(v)) != int64(h.valLen) || h.size() > int64(len(b)) {
			t.Fatalf("sizes: %+v key %d value %d input %d", h, len(k), len(v), len(b))
		}
		if isElem(h.kind) {
			if _, _, ok := splitElemKey(k); !ok {
				t.Fatalf("element record with a malformed key decodes: %x", k)
			}
		}
		// A record that decodes re-encodes to the same bytes.
		re := appendStored(nil, &h, k, v)
		if !bytes.Equal(re, b[:h.size()]) {
			t.Fatalf("re-encoded\n%x\n%x", re, b[:h.size()])
		}
		if h.kind == kindPut && h.valType == valTypeBytes {
			if _, isInt := ParseInt(v); isInt {
				return // legal on disk (an old writer could have kept it as bytes)
			}
		}
	})
}
