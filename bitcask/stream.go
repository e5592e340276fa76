package bitcask

import (
	"github.com/cespare/xxhash/v2"
)

// StreamMin is the value length from which OpenValue streams a string:
// below it a value is read whole (one copy into the reply is cheaper than
// a stream's setup).
const StreamMin = bigValueSize

// ValueStream is a string value read a part at a time, for a reply that
// must not hold a 512 MiB value whole: its record was checked (header, key
// and CRC over the whole value) when the stream was opened, and its data
// file stays open and mapped until Close, so a merge that drops the file
// meanwhile does not take the bytes away. It is the value as it was when
// opened, whatever is written to the key afterwards. Not safe for
// concurrent use.
type ValueStream struct {
	parts []piece
	after []func()
	n     int64 // the value's length
	pos   int64 // bytes already appended
}

// OpenValue opens key's string value for reading in parts when it is at
// least StreamMin long. It returns nil and no error when the key holds a
// shorter string (read it with GetAppend), ErrNotFound when the key does
// not exist at now (Unix ms), and ErrWrongType when it holds another type.
func (db *DB) OpenValue(key []byte, now int64) (*ValueStream, error) {
	return db.openValue(xxhash.Sum64(key), key, now)
}

// OpenValueHashed is OpenValue with the key's hash already computed.
func (db *DB) OpenValueHashed(h uint64, key []byte, now int64) (*ValueStream, error) {
	return db.openValue(h, key, now)
}

func (db *DB) openValue(h uint64, key []byte, now int64) (*ValueStream, error) {
	m, ok := db.MetaOfHashed(h, key, now)
	if !ok {
		return nil, ErrNotFound
	}
	if m.Type != TypeString {
		return nil, ErrWrongType
	}
	if m.Len < StreamMin {
		return nil, nil
	}
	return db.streamStored(h, key)
}

// streamStored opens the value of key's current record as a stream.
func (db *DB) streamStored(h uint64, key []byte) (*ValueStream, error) {
	s := &ValueStream{}
	parts, err := db.storedParts(&s.after, h, key)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.parts = parts
	for _, p := range parts {
		s.n += p.len()
	}
	return s, nil
}

// Len is the value's length.
func (s *ValueStream) Len() int64 { return s.n }

// Remaining is how many bytes of the value AppendNext has not given yet.
func (s *ValueStream) Remaining() int64 { return s.n - s.pos }

// AppendNext appends the next bytes of the value to dst, at most max of
// them, and returns dst. An I/O error while reading the mapped file is
// returned as an error; the bytes appended before it stay in dst.
func (s *ValueStream) AppendNext(dst []byte, max int) ([]byte, error) {
	end := min(s.n, s.pos+int64(max))
	if end <= s.pos {
		return dst, nil
	}
	x := extValue{parts: s.parts, n: s.n}
	var r extValue
	for _, p := range x.slice(s.pos, end) {
		r.add(p)
	}
	err := mappedRead(func() error {
		dst = r.appendTo(dst)
		// Copied: the pages need not stay resident while the rest is
		// read (a slow client of a 512 MiB value).
		for _, p := range r.parts {
			if p.b != nil {
				dropMapped(p.b)
			}
		}
		return nil
	})
	if err == nil {
		s.pos = end
	}
	return dst, err
}

// Close releases the value's data file and mapping. Safe to call twice.
func (s *ValueStream) Close() {
	for _, fn := range s.after {
		fn()
	}
	s.after, s.parts = nil, nil
}

// OpenValueHashed is DB.OpenValueHashed seeing the Tx's own writes: a value
// the Tx wrote is never streamed (nil, read it with Get), and a key it
// deleted or let expire is ErrNotFound. A value the Tx has not written is
// the key directory's, which no one else changes while the Tx runs; the
// stream goes on reading it after the Tx, whatever comes later.
func (tx *Tx) OpenValueHashed(h uint64, key []byte) (*ValueStream, error) {
	if tx.isDone() {
		return nil, ErrTxDone
	}
	ks := tx.db.txLookup(tx.st, h, key)
	if !ks.visible(tx.db.nowMs()) {
		return nil, ErrNotFound
	}
	if ks.typ != 0 {
		return nil, ErrWrongType
	}
	if ks.valOp >= 0 || int64(ks.vlen) < StreamMin {
		return nil, nil
	}
	return tx.db.streamStored(h, key)
}
