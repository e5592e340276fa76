package xstate

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"testing"
)

// The encoding is kept in prepare records on disk: these bytes must not
// change.
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		s    State
		hex  string
	}{
		{"none", State{Kind: None}, "00"},
		{"string", State{Kind: String, ExpireAt: 1000, Tag: 2, Val: []byte("ab")}, "01e807" + "02" + "026162"},
		{"hash", State{Kind: Hash, Elems: [][]byte{[]byte("f"), []byte("v")}}, "02" + "00" + "01" + "0166" + "0176"},
		{"set", State{Kind: Set, Elems: [][]byte{[]byte("a"), []byte("")}}, "03" + "00" + "02" + "0161" + "00"},
		{"zset", State{Kind: ZSet, ExpireAt: 1, Z: []ZMember{{[]byte("m"), 1.5}}}, "04" + "01" + "01" + "016d" + "000000000000f83f"},
		{"list", State{Kind: List, Elems: [][]byte{[]byte("x")}}, "05" + "00" + "01" + "0178"},
	} {
		got := hex.EncodeToString(Encode(&c.s))
		if got != c.hex {
			t.Errorf("%s: encoded %s, want %s", c.name, got, c.hex)
		}
		b, _ := hex.DecodeString(c.hex)
		d, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(normal(d), normal(&c.s)) {
			t.Errorf("%s: decoded %+v, want %+v", c.name, d, c.s)
		}
	}
}

// normal makes empty and nil slices alike for comparison.
func normal(s *State) State {
	n := *s
	if len(n.Val) == 0 {
		n.Val = nil
	}
	if len(n.Elems) == 0 {
		n.Elems = nil
	}
	if len(n.Z) == 0 {
		n.Z = nil
	}
	return n
}

func TestDecodeRejects(t *testing.T) {
	for _, h := range []string{
		"", "06", "01", "01e807", "0100" + "00" + "05", "0200" + "01" + "0166", "0300" + "ff01",
		"0400" + "01" + "016d" + "0000", "0400" + "01" + "016d" + "000000000000f87f", // NaN
		"00" + "00",              // trailing bytes
		"01ffffffffffffffffff01", // expire-at past int64
	} {
		b, _ := hex.DecodeString(h)
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode(%s) accepted a malformed state", h)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0})
	f.Add(Encode(&State{Kind: String, ExpireAt: 5, Val: []byte("v")}))
	f.Add(Encode(&State{Kind: Hash, Elems: [][]byte{[]byte("f"), []byte("v")}}))
	f.Add(Encode(&State{Kind: ZSet, Z: []ZMember{{[]byte("m"), math.Inf(-1)}}}))
	f.Add(Encode(&State{Kind: List, Elems: [][]byte{[]byte("a"), []byte("b")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes (the encoding has
		// one form per state), and decodes again to the same state.
		enc := Encode(s)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, read %x", enc, b)
		}
		s2, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(normal(s), normal(s2)) {
			t.Fatalf("round trip: %+v %v, want %+v", s2, err, s)
		}
	})
}
