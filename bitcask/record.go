package bitcask

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// These constants are part of the wire format and should not be changed.
const (
	headerSize = 40

	offCRC      = 0
	offTime     = 4
	offSeq      = 12
	offExpireAt = 20
	offKeyLen   = 28
	offValueLen = 32
	offKind     = 36
	offFlags    = 37
	offKeyType  = 38
	offValType  = 39

	kindPut      = 1
	kindDelete   = 2
	kindExpire   = 3
	kindFlushAll = 4
	// Collections (see the package comment): a collection's root record,
	// and one record per element write.
	kindColl       = 5
	kindElemPut    = 6
	kindElemDelete = 7
	// kindFlushDB deletes every key of the record's database written
	// before it (kindFlushAll deletes those of every database).
	kindFlushDB = 8

	flagBatchFirst = 0x01
	flagBatchLast  = 0x02
	flagSingle     = flagBatchFirst | flagBatchLast
	// The flags byte's high nibble is the record's database (0-15):
	// records written before databases existed have 0 there, so they are
	// database 0's.
	flagDBShift = 4
	flagDBMask  = 0xf0

	keyTypeBytes = 0
	// keyTypeHash marks the records of a hash: its root and its fields.
	keyTypeHash = 1
	// keyTypeSet marks the records of a set: its root and its members
	// (element puts without a value).
	keyTypeSet = 2
	// keyTypeZSet marks the records of a sorted set: its root and its
	// members, each element put's value the member's score (8 bytes, the
	// float64's bits little endian).
	keyTypeZSet = 3
	// keyTypeList marks the records of a list: its root and its
	// elements, each named by its order key (list.go).
	keyTypeList = 4

	valTypeBytes = 0
	valTypeInt   = 1
	intValueSize = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed part of a record.
type header struct {
	crc      uint32
	time     int64  // unix ms when the record was written
	seq      uint64 // orders all records of a DB
	expireAt int64  // unix ms, 0 = none
	keyLen   uint32
	valLen   uint32 // stored value bytes (8 for an integer value)
	kind     byte
	flags    byte
	keyType  byte
	valType  byte
}

// db is the database the record belongs to.
func (h *header) db() uint8 { return h.flags >> flagDBShift }

// dbFlags is the flags byte's database part for database d.
func dbFlags(d uint8) byte { return d << flagDBShift }

// size is the whole record's length on disk.
func (h *header) size() int64 { return headerSize + int64(h.keyLen) + int64(h.valLen) }

func decodeHeader(b []byte) header {
	_ = b[headerSize-1]
	return header{
		crc:      binary.LittleEndian.Uint32(b[offCRC:]),
		time:     int64(binary.LittleEndian.Uint64(b[offTime:])),
		seq:      binary.LittleEndian.Uint64(b[offSeq:]),
		expireAt: int64(binary.LittleEndian.Uint64(b[offExpireAt:])),
		keyLen:   binary.LittleEndian.Uint32(b[offKeyLen:]),
		valLen:   binary.LittleEndian.Uint32(b[offValueLen:]),
		kind:     b[offKind],
		flags:    b[offFlags],
		keyType:  b[offKeyType],
		valType:  b[offValType],
	}
}

// check reports whether the header's fields are consistent with the format,
// without looking at the CRC. A zeroed header fails (kind 0), which is what
// a torn tail usually looks like.
func (h *header) check() error {
	switch h.kind {
	case kindPut:
		if h.valType == valTypeInt && h.valLen != intValueSize {
			return fmt.Errorf("%w: integer value of %d bytes", ErrCorrupt, h.valLen)
		}
		if h.valType != valTypeBytes && h.valType != valTypeInt {
			return fmt.Errorf("%w: value type %d", ErrCorrupt, h.valType)
		}
	case kindElemPut:
		if h.valType == valTypeInt && h.valLen != intValueSize {
			return fmt.Errorf("%w: integer value of %d bytes", ErrCorrupt, h.valLen)
		}
		if h.valType != valTypeBytes && h.valType != valTypeInt {
			return fmt.Errorf("%w: value type %d", ErrCorrupt, h.valType)
		}
		if h.expireAt != 0 {
			return fmt.Errorf("%w: element with an expiry", ErrCorrupt)
		}
	case kindColl, kindElemDelete:
		if h.valLen != 0 || h.valType != valTypeBytes {
			return fmt.Errorf("%w: kind %d with a value", ErrCorrupt, h.kind)
		}
		if h.kind == kindElemDelete && h.expireAt != 0 {
			return fmt.Errorf("%w: element tombstone with an expiry", ErrCorrupt)
		}
	case kindDelete, kindExpire, kindFlushAll, kindFlushDB:
		if h.valLen != 0 || h.valType != valTypeBytes {
			return fmt.Errorf("%w: kind %d with a value", ErrCorrupt, h.kind)
		}
		if (h.kind == kindFlushAll || h.kind == kindFlushDB) && h.keyLen != 0 {
			return fmt.Errorf("%w: flush-all with a key", ErrCorrupt)
		}
		if h.kind == kindDelete && h.expireAt != 0 {
			return fmt.Errorf("%w: tombstone with an expiry", ErrCorrupt)
		}
	default:
		return fmt.Errorf("%w: record kind %d", ErrCorrupt, h.kind)
	}
	if h.flags&^(flagSingle|flagDBMask) != 0 || h.kind == kindFlushAll && h.db() != 0 {
		return fmt.Errorf("%w: flags %#x", ErrCorrupt, h.flags)
	}
	switch coll := h.kind >= kindColl && h.kind <= kindElemDelete; {
	case !coll && h.keyType != keyTypeBytes, coll && (h.keyType < keyTypeHash || h.keyType > keyTypeList):
		return fmt.Errorf("%w: key type %d on a kind %d record", ErrCorrupt, h.keyType, h.kind)
	case h.kind == kindElemPut && h.keyType == keyTypeSet && h.valLen != 0:
		return fmt.Errorf("%w: set member with a value", ErrCorrupt)
	case h.kind == kindElemPut && h.keyType == keyTypeZSet && h.valLen != intValueSize:
		return fmt.Errorf("%w: sorted set member with a score of %d bytes", ErrCorrupt, h.valLen)
	}
	if h.expireAt < 0 || h.time < 0 {
		return fmt.Errorf("%w: negative time", ErrCorrupt)
	}
	if h.keyLen > maxKeySizeLimit || h.valLen > maxValueSizeLimit {
		return fmt.Errorf("%w: key or value length beyond the format's limit", ErrCorrupt)
	}
	return nil
}

// appendRecord appends one encoded record to dst. value is the logical value;
// a put whose value is the canonical decimal form of an int64 is stored as
// 8 bytes little endian with value type integer.
func appendRecord(dst []byte, kind, flags byte, seq uint64, ts, expireAt int64, key, value []byte) []byte {
	return appendRecordOf(dst, kind, flags, keyTypeBytes, seq, ts, expireAt, key, value)
}

// appendRecordOf is appendRecord with a key type: keyTypeBytes for the
// kinds of strings, the collection's type for its root and elements (key
// then being elemKey's form for an element).
func appendRecordOf(dst []byte, kind, flags, keyType byte, seq uint64, ts, expireAt int64, key, value []byte) []byte {
	start := len(dst)
	valType := byte(valTypeBytes)
	var iv int64
	valLen := len(value)
	if kind == kindPut || kind == kindElemPut {
		if v, ok := ParseInt(value); ok {
			valType, iv, valLen = valTypeInt, v, intValueSize
		}
	}
	n := headerSize + len(key) + valLen
	dst = grow(dst, n)
	b := dst[start : start+n]
	binary.LittleEndian.PutUint64(b[offTime:], uint64(ts))
	binary.LittleEndian.PutUint64(b[offSeq:], seq)
	binary.LittleEndian.PutUint64(b[offExpireAt:], uint64(expireAt))
	binary.LittleEndian.PutUint32(b[offKeyLen:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[offValueLen:], uint32(valLen))
	b[offKind] = kind
	b[offFlags] = flags
	b[offKeyType] = keyType
	b[offValType] = valType
	copy(b[headerSize:], key)
	if valType == valTypeInt {
		binary.LittleEndian.PutUint64(b[headerSize+len(key):], uint64(iv))
	} else {
		copy(b[headerSize+len(key):], value)
	}
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offTime:], castagnoli))
	return dst
}

// setFlags rewrites the batch flags of the encoded record rec and its CRC.
func setFlags(rec []byte, flags byte) {
	rec[offFlags] = flags
	binary.LittleEndian.PutUint32(rec[offCRC:], crc32.Checksum(rec[offTime:], castagnoli))
}

// grow extends b by n bytes, reusing its capacity when it can.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// decodeRecord decodes the record at the start of b. It checks the header,
// that the record fits in b, and the CRC. key and value alias b; value is
// the stored value (8 bytes for an integer).
func decodeRecord(b []byte) (h header, key, value []byte, err error) {
	if len(b) < headerSize {
		return h, nil, nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrCorrupt, len(b))
	}
	h = decodeHeader(b)
	if err := h.check(); err != nil {
		return h, nil, nil, err
	}
	if h.size() > int64(len(b)) {
		return h, nil, nil, fmt.Errorf("%w: record of %d bytes past the end (%d left)", ErrCorrupt, h.size(), len(b))
	}
	n := int(h.size())
	if crc32.Checksum(b[offTime:n], castagnoli) != h.crc {
		return h, nil, nil, fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
	}
	key = b[headerSize : headerSize+int(h.keyLen)]
	value = b[headerSize+int(h.keyLen) : n]
	if err := checkElemKey(&h, key); err != nil {
		return h, nil, nil, err
	}
	return h, key, value, nil
}

// isElem reports whether records of kind name an element (key in
// elemKey's form).
func isElem(kind byte) bool { return kind == kindElemPut || kind == kindElemDelete }

// elemKey appends an element record's key: the collection's key length as
// a uvarint, the collection's key, then the element (a hash's field).
func elemKey(dst, key, field []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(append(dst, key...), field...)
}

// splitElemKey splits an element record's key into the collection's key
// and the element; ok is false when the length prefix is malformed or
// longer than the rest.
func splitElemKey(b []byte) (key, field []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// checkElemKey rejects an element record whose key is not in elemKey's
// form: the CRC matched, so only a writer's bug makes one, and it is
// treated as damage rather than guessed at.
func checkElemKey(h *header, key []byte) error {
	if !isElem(h.kind) {
		return nil
	}
	if _, _, ok := splitElemKey(key); !ok {
		return fmt.Errorf("%w: element key without its collection's key", ErrCorrupt)
	}
	return nil
}

// ParseInt reports whether b is the canonical decimal form of an
// int64 as Redis decides it (string2ll): optional '-', no leading zeros, no
// '+', not "-0", no spaces, in range. Such a value is stored as an integer;
// the shard node uses the same rule for INCR and friends, so "is an integer"
// means one thing across the project.
func ParseInt(b []byte) (int64, bool) {
	n := len(b)
	if n == 0 || n > 20 {
		return 0, false
	}
	if n == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	i := 0
	if b[0] == '-' {
		neg = true
		i = 1
		if n == 1 {
			return 0, false
		}
	}
	if b[i] < '1' || b[i] > '9' {
		return 0, false
	}
	if n-i > 19 { // 19 digits cannot overflow a uint64
		return 0, false
	}
	var v uint64
	for ; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// intLen is the length of the decimal form of v.
func intLen(v int64) int {
	n := 1
	u := uint64(v)
	if v < 0 {
		n++
		u = uint64(-v)
	}
	for u >= 10 {
		u /= 10
		n++
	}
	return n
}

// logicalLen is the length of the value the caller wrote.
func logicalLen(valType byte, stored []byte) int {
	if valType == valTypeInt {
		return intLen(int64(binary.LittleEndian.Uint64(stored)))
	}
	return len(stored)
}

// encodeHeader writes h (with h.crc as given) into b[:headerSize].
func encodeHeader(b []byte, h *header) {
	binary.LittleEndian.PutUint32(b[offCRC:], h.crc)
	binary.LittleEndian.PutUint64(b[offTime:], uint64(h.time))
	binary.LittleEndian.PutUint64(b[offSeq:], h.seq)
	binary.LittleEndian.PutUint64(b[offExpireAt:], uint64(h.expireAt))
	binary.LittleEndian.PutUint32(b[offKeyLen:], h.keyLen)
	binary.LittleEndian.PutUint32(b[offValueLen:], h.valLen)
	b[offKind] = h.kind
	b[offFlags] = h.flags
	b[offKeyType] = h.keyType
	b[offValType] = h.valType
}

// appendStored appends a record whose value is given in stored form (as
// read from disk) and computes its CRC.
func appendStored(dst []byte, h *header, key, stored []byte) []byte {
	start := len(dst)
	dst = grow(dst, headerSize+len(key)+len(stored))
	b := dst[start:]
	encodeHeader(b, h)
	copy(b[headerSize:], key)
	copy(b[headerSize+len(key):], stored)
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offTime:], castagnoli))
	return dst
}
