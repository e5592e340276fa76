// Package xstate is the whole state of one key — its type, contents and
// expiry, or its absence — in the compact form that cross-shard
// transactions carry (docs/TRANSACTIONS.md, "Key states"): a shard node
// keeps it in a prepare record as the key's final state, replies it to
// TX.DUMP, and takes it in TX.PUT and TX.LOAD; the proxy passes it from
// one shard's prepare to another's.
//
// The encoding, every integer an unsigned varint unless said otherwise:
//
//	kind byte: 0 none, 1 string, 2 hash, 3 set, 4 sorted set, 5 list
//	(none ends here)
//	expire-at   absolute unix ms, 0 for none
//	string:     tag byte, value (length, bytes)
//	hash:       count, then count × (field, value), each length and bytes
//	set, list:  count, then count × element (length, bytes)
//	sorted set: count, then count × (member (length, bytes), score: 8 bytes,
//	            IEEE 754 little endian)
//
// Lists keep their order; sets, hashes and sorted sets the order they were
// read in, which means nothing.
package xstate

import (
	"encoding/binary"
	"errors"
	"math"
)

// Kind is a key's type, or none.
type Kind uint8

// The kinds, as encoded.
const (
	None Kind = iota
	String
	Hash
	Set
	ZSet
	List
)

// ZMember is a sorted set's member and score.
type ZMember struct {
	Member []byte
	Score  float64
}

// State is one key's whole state.
type State struct {
	Kind     Kind
	ExpireAt int64 // absolute unix ms, 0 for none
	// String: the value and its encoding tag (the node's).
	Val []byte
	Tag uint8
	// Hash: field, value, field, value, ...; Set and List: the elements.
	Elems [][]byte
	// ZSet: the members.
	Z []ZMember
}

// ErrBad is the error of a malformed encoding.
var ErrBad = errors.New("xstate: malformed key state")

// Append appends s's encoding to b.
func Append(b []byte, s *State) []byte {
	b = append(b, byte(s.Kind))
	if s.Kind == None {
		return b
	}
	b = binary.AppendUvarint(b, uint64(s.ExpireAt))
	switch s.Kind {
	case String:
		b = append(b, s.Tag)
		b = appendBytes(b, s.Val)
	case Hash:
		b = binary.AppendUvarint(b, uint64(len(s.Elems)/2))
		for _, e := range s.Elems[:len(s.Elems)/2*2] {
			b = appendBytes(b, e)
		}
	case Set, List:
		b = binary.AppendUvarint(b, uint64(len(s.Elems)))
		for _, e := range s.Elems {
			b = appendBytes(b, e)
		}
	case ZSet:
		b = binary.AppendUvarint(b, uint64(len(s.Z)))
		for _, z := range s.Z {
			b = appendBytes(b, z.Member)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(z.Score))
		}
	}
	return b
}

// Encode is Append to a new slice.
func Encode(s *State) []byte { return Append(nil, s) }

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// Decode parses an encoding made by Append; the state's byte slices are
// copies.
func Decode(b []byte) (*State, error) {
	d := dec{b: b}
	s := &State{Kind: Kind(d.byte1())}
	if d.err != nil || s.Kind > List {
		return nil, ErrBad
	}
	if s.Kind != None {
		at := d.uvarint()
		if at > math.MaxInt64 {
			return nil, ErrBad
		}
		s.ExpireAt = int64(at)
	}
	switch s.Kind {
	case String:
		s.Tag = d.byte1()
		s.Val = d.bytes()
	case Hash, Set, List:
		n := d.count()
		per := uint64(1)
		if s.Kind == Hash {
			per = 2
		}
		for i := uint64(0); i < n*per && d.err == nil; i++ {
			s.Elems = append(s.Elems, d.bytes())
		}
	case ZSet:
		n := d.count()
		for i := uint64(0); i < n && d.err == nil; i++ {
			m := d.bytes()
			f := math.Float64frombits(d.uint64le())
			if math.IsNaN(f) {
				return nil, ErrBad
			}
			s.Z = append(s.Z, ZMember{m, f})
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, ErrBad
	}
	return s, nil
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	d.err, d.b = ErrBad, nil
}

func (d *dec) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		// (A last byte of 0 is a longer form of a shorter number: each
		// state has one encoding.)
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count is an element count, which cannot exceed the bytes left (each
// element takes at least one).
func (d *dec) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return n
}

func (d *dec) uint64le() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	v := append([]byte{}, d.b[:n]...)
	d.b = d.b[n:]
	return v
}
