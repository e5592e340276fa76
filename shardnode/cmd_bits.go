package shardnode

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"

	"github.com/shardkv/shardkv/bitcask"

	"github.com/shardkv/shardkv/resp"
)

// The bit commands of Redis's string type (bitops.c): SETBIT, GETBIT,
// BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO. A bitmap is a string;
// bit 0 is the most significant bit of the first byte.

const (
	errBitOffset   = "ERR bit offset is not an integer or out of range"
	errBitValue    = "ERR bit is not an integer or out of range"
	errBitArg      = "ERR The bit argument must be 1 or 0."
	errBitfieldRO  = "ERR BITFIELD_RO only supports the GET subcommand"
	errBitfieldTyp = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
	errOverflowTyp = "ERR Invalid OVERFLOW type specified"
)

// bitOffset parses a bit offset as Redis's getBitOffsetFromArgument: with
// hashed, "#N" means N times width. The offset's byte must be inside the
// 512 MB string limit.
func bitOffset(arg []byte, hashed bool, width int) (uint64, bool) {
	use := hashed && width > 0 && len(arg) > 0 && arg[0] == '#'
	if use {
		arg = arg[1:]
	}
	n, ok := parseInt(arg)
	if !ok {
		return 0, false
	}
	if use {
		n *= int64(width)
	}
	if n < 0 || n>>3 >= resp.MaxBulkLen {
		return 0, false
	}
	return uint64(n), true
}

// bitChunk is how much of a bitmap BITCOUNT reads at a time.
const bitChunk = 1 << 20

// bitSpan reads bytes [lo, hi) of key's string, zero-padded past its
// end, without reading the rest of the value (a bitmap may be 512 MB):
// the string's length and whether it exists come from the key directory.
// It replies the error itself (wrong type, storage) and returns ok false
// then.
func (c *client) bitSpan(key []byte, lo, hi int64) (span []byte, oldLen int64, exists, ok bool) {
	if oldLen, exists, ok = c.stringLen(key); !ok {
		return nil, 0, exists, false
	}
	span = make([]byte, hi-lo)
	if exists && lo < oldLen {
		v, err := c.st.getRange(span[:0], key, lo, min(hi, oldLen))
		if err != nil && !errors.Is(err, bitcask.ErrNotFound) {
			c.storeErr(err)
			return nil, 0, exists, false
		}
		if len(v) > 0 && &v[0] != &span[0] {
			copy(span, v)
		}
	}
	return span, oldLen, exists, true
}

// SETBIT key offset value
func cmdSetBit(c *client, args [][]byte) {
	off, ok := bitOffset(args[2], false, 0)
	if !ok {
		c.errReply(errBitOffset)
		return
	}
	on, ok := parseInt(args[3])
	if !ok || on&^1 != 0 {
		c.errReply(errBitValue)
		return
	}
	byteAt, shift := int64(off>>3), 7-off&7
	b, oldLen, exists, ok := c.bitSpan(args[1], byteAt, byteAt+1)
	if !ok {
		return
	}
	was := b[0] >> shift & 1
	// As Redis: a SETBIT that neither creates, grows nor flips anything
	// writes nothing (and so touches no WATCH). The one byte is spliced
	// into the value where it lies, so a bit at 2^32-1 costs no 512 MB.
	if !exists || byteAt >= oldLen || int64(was) != on {
		b[0] = b[0]&^(1<<shift) | byte(on)<<shift
		if _, ok := c.splice(args[1], exists, oldLen, byteAt, b, encRaw); !ok {
			return
		}
	}
	c.intReply(int64(was))
}

// GETBIT key offset
func cmdGetBit(c *client, args [][]byte) {
	off, ok := bitOffset(args[2], false, 0)
	if !ok {
		c.errReply(errBitOffset)
		return
	}
	b, _, _, ok := c.bitSpan(args[1], int64(off>>3), int64(off>>3)+1)
	if !ok {
		return
	}
	c.intReply(int64(b[0] >> (7 - off&7) & 1))
}

// bitRange turns BITCOUNT's and BITPOS's start and end (bytes, or bits
// with isBit) into a byte range and the masks of the bits outside the
// range in its first and last byte, as bitops.c does. empty reports a
// range with nothing in it.
func bitRange(start, end, n int64, isBit bool) (first, last int64, firstMask, lastMask byte, empty bool) {
	total := n
	if isBit {
		total <<= 3
	}
	if start < 0 {
		start += total
	}
	if end < 0 {
		end += total
	}
	start, end = max(start, 0), max(end, 0)
	if end >= total {
		end = total - 1
	}
	if isBit && start <= end {
		firstMask = ^byte((1 << (8 - start&7)) - 1)
		lastMask = byte((1 << (7 - end&7)) - 1)
		start >>= 3
		end >>= 3
	}
	return start, end, firstMask, lastMask, start > end
}

// bitUnit parses BITCOUNT's and BITPOS's BYTE|BIT argument.
func bitUnit(a []byte) (isBit, ok bool) {
	switch {
	case eqFold(a, "bit"):
		return true, true
	case eqFold(a, "byte"):
		return false, true
	}
	return false, false
}

// BITCOUNT key [start end [BYTE | BIT]]
func cmdBitCount(c *client, args [][]byte) {
	// Redis 7.0 looks the key up before it reads the range: a missing key
	// counts 0 whatever follows.
	n, exists, ok := c.stringLen(args[1])
	if !ok {
		return
	}
	if !exists {
		c.intReply(0)
		return
	}
	var first, last int64
	var firstMask, lastMask byte
	switch len(args) {
	case 2:
		first, last = 0, n-1
	case 4, 5:
		start, ok1 := parseInt(args[2])
		if !ok1 {
			c.errReply(errNotInteger)
			return
		}
		end, ok2 := parseInt(args[3])
		if !ok2 {
			c.errReply(errNotInteger)
			return
		}
		if start < 0 && end < 0 && start > end {
			c.intReply(0)
			return
		}
		isBit := false
		if len(args) == 5 {
			var ok bool
			if isBit, ok = bitUnit(args[4]); !ok {
				c.errReply(errSyntax)
				return
			}
		}
		var empty bool
		if first, last, firstMask, lastMask, empty = bitRange(start, end, n, isBit); empty {
			c.intReply(0)
			return
		}
	default:
		c.errReply(errSyntax)
		return
	}
	if first > last {
		c.intReply(0)
		return
	}
	// Counted a chunk at a time: a 512 MB bitmap is never held whole.
	var count int64
	for lo := first; lo <= last; lo += bitChunk {
		hi := min(lo+bitChunk, last+1)
		v, _, _, ok := c.bitSpan(args[1], lo, hi)
		if !ok {
			return
		}
		count += popcount(v)
		if lo == first {
			count -= int64(bits.OnesCount8(v[0] & firstMask))
		}
		if hi == last+1 {
			count -= int64(bits.OnesCount8(v[len(v)-1] & lastMask))
		}
	}
	c.intReply(count)
}

func popcount(b []byte) int64 {
	var n int
	for len(b) >= 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return int64(n)
}

// bitpos is Redis's redisBitpos: the first bit equal to bit in b, or -1
// when looking for a 1 that is not there, or len(b)*8 when looking for a
// 0 that is not there (the string is taken as padded with zeros).
func bitpos(b []byte, bit int) int64 {
	skip := byte(0)
	if bit == 0 {
		skip = 0xff
	}
	for i, x := range b {
		if x != skip {
			if bit == 0 {
				x = ^x
			}
			return int64(i)*8 + int64(bits.LeadingZeros8(x))
		}
	}
	if bit == 1 {
		return -1
	}
	return int64(len(b)) * 8
}

// BITPOS key bit [start [end [BYTE | BIT]]]
func cmdBitPos(c *client, args [][]byte) {
	bit, ok := parseInt(args[2])
	if !ok {
		c.errReply(errNotInteger)
		return
	}
	if bit != 0 && bit != 1 {
		c.errReply(errBitArg)
		return
	}
	n, exists, ok := c.stringLen(args[1])
	if !ok {
		return
	}
	// A missing key is an infinite run of zeros.
	if !exists {
		c.intReply(-(bit))
		return
	}
	var first, last int64
	var firstMask, lastMask byte
	endGiven := false
	switch len(args) {
	case 3:
		first, last = 0, n-1
	case 4, 5, 6:
		start, ok := parseInt(args[3])
		if !ok {
			c.errReply(errNotInteger)
			return
		}
		isBit := false
		if len(args) == 6 {
			if isBit, ok = bitUnit(args[5]); !ok {
				c.errReply(errSyntax)
				return
			}
		}
		end := n - 1
		if isBit {
			end = n<<3 + 7
		}
		if len(args) >= 5 {
			if end, ok = parseInt(args[4]); !ok {
				c.errReply(errNotInteger)
				return
			}
			endGiven = true
		}
		var empty bool
		if first, last, firstMask, lastMask, empty = bitRange(start, end, n, isBit); empty {
			c.intReply(-1)
			return
		}
	default:
		c.errReply(errSyntax)
		return
	}
	if first > last {
		c.intReply(-1)
		return
	}
	v, _, _, ok := c.bitSpan(args[1], first, last+1)
	if !ok {
		return
	}
	pos, span := bitposRange(v, 0, last-first, firstMask, lastMask, int(bit))
	// With an explicit end, the bits right of the range are not zeros.
	if endGiven && bit == 0 && pos == span {
		c.intReply(-1)
		return
	}
	if pos != -1 {
		pos += first << 3
	}
	c.intReply(pos)
}

// bitposRange looks for bit in v[first:last+1] with the edge bits outside
// the range masked off, as bitposCommand does; pos is relative to byte
// first, and span is the position just past what was searched, relative
// to the same byte.
func bitposRange(v []byte, first, last int64, firstMask, lastMask byte, bit int) (pos, span int64) {
	// Masked-off bits read as the bit not looked for.
	edge := func(x, mask byte) byte {
		if bit == 1 {
			return x &^ mask
		}
		return x | mask
	}
	bytes := last - first + 1
	base := int64(0) // bytes of the range already searched
	if firstMask != 0 {
		x := edge(v[first], firstMask)
		if lastMask != 0 && bytes == 1 {
			x = edge(x, lastMask)
		}
		pos = bitpos([]byte{x}, bit)
		if bytes == 1 || (pos != -1 && pos != 8) {
			return pos, 8
		}
		base, first, bytes = 1, first+1, bytes-1
	}
	cur := bytes
	if lastMask != 0 {
		cur--
	}
	if cur > 0 {
		pos = bitpos(v[first:first+cur], bit)
		if bytes == cur || (pos != -1 && pos != cur<<3) {
			if pos != -1 {
				pos += base << 3
			}
			return pos, (base + cur) << 3
		}
		base += cur
	}
	pos = bitpos([]byte{edge(v[last], lastMask)}, bit)
	if pos != -1 {
		pos += base << 3
	}
	return pos, (base + 1) << 3
}

// BITOP AND | OR | XOR | NOT destkey key [key ...]
func cmdBitOp(c *client, args [][]byte) {
	op := args[1]
	var not bool
	var f func(a, b byte) byte
	switch {
	case eqFold(op, "and"):
		f = func(a, b byte) byte { return a & b }
	case eqFold(op, "or"):
		f = func(a, b byte) byte { return a | b }
	case eqFold(op, "xor"):
		f = func(a, b byte) byte { return a ^ b }
	case eqFold(op, "not"):
		not = true
	default:
		c.errReply(errSyntax)
		return
	}
	if not && len(args) != 4 {
		c.errReply("ERR BITOP NOT must be called with a single source key.")
		return
	}
	srcs := make([][]byte, 0, len(args)-3)
	maxLen := 0
	for _, k := range args[3:] {
		v, _, _, failed := c.get(k)
		if failed {
			return
		}
		srcs = append(srcs, v)
		maxLen = max(maxLen, len(v))
	}
	dest := args[2]
	if maxLen == 0 {
		// Every source empty or missing: the destination is deleted.
		if _, err := c.st.del(dest); err != nil {
			c.storeErr(err)
			return
		}
		c.intReply(0)
		return
	}
	res := make([]byte, maxLen)
	at := func(v []byte, i int) byte {
		if i < len(v) {
			return v[i]
		}
		return 0
	}
	for i := range res {
		x := at(srcs[0], i)
		if not {
			x = ^x
		}
		for _, s := range srcs[1:] {
			x = f(x, at(s, i))
		}
		res[i] = x
	}
	var oldSize int64
	if c.limited() {
		if m, ok := c.st.meta(dest); ok {
			oldSize = int64(len(dest)) + m.Len
		}
	}
	if !c.fits(oldSize, live(dest, res)) {
		return
	}
	// As SET: the destination loses any expiry.
	if !c.putTagged(dest, res, 0, encRaw) {
		return
	}
	c.intReply(int64(maxLen))
}

// bitfieldOp is one GET, SET or INCRBY of BITFIELD.
type bitfieldOp struct {
	op       byte // 'g', 's', 'i'
	signed   bool
	width    int
	offset   uint64
	value    int64
	overflow byte // 'w', 's', 'f'
}

// BITFIELD key [GET type offset | SET type offset value |
// INCRBY type offset increment | OVERFLOW WRAP|SAT|FAIL] ...
func cmdBitField(c *client, args [][]byte) { bitfield(c, args, false) }

// BITFIELD_RO key [GET type offset ...]
func cmdBitFieldRO(c *client, args [][]byte) { bitfield(c, args, true) }

func bitfield(c *client, args [][]byte, readonly bool) {
	var ops []bitfieldOp
	overflow := byte('w')
	writes := false
	var highest uint64 // highest bit a SET or INCRBY reaches
	for j := 2; j < len(args); j++ {
		rem := len(args) - j - 1
		sub := args[j]
		var op byte
		switch {
		case eqFold(sub, "get") && rem >= 2:
			op = 'g'
		case eqFold(sub, "set") && rem >= 3:
			op = 's'
		case eqFold(sub, "incrby") && rem >= 3:
			op = 'i'
		case eqFold(sub, "overflow") && rem >= 1:
			j++
			switch t := args[j]; {
			case eqFold(t, "wrap"):
				overflow = 'w'
			case eqFold(t, "sat"):
				overflow = 's'
			case eqFold(t, "fail"):
				overflow = 'f'
			default:
				c.errReply(errOverflowTyp)
				return
			}
			continue
		default:
			c.errReply(errSyntax)
			return
		}
		signed, width, ok := bitfieldType(args[j+1])
		if !ok {
			c.errReply(errBitfieldTyp)
			return
		}
		off, ok := bitOffset(args[j+2], true, width)
		if !ok {
			c.errReply(errBitOffset)
			return
		}
		o := bitfieldOp{op: op, signed: signed, width: width, offset: off, overflow: overflow}
		if op != 'g' {
			writes = true
			if o.value, ok = parseInt(args[j+3]); !ok {
				c.errReply(errNotInteger)
				return
			}
			highest = max(highest, off+uint64(width)-1)
			j++
		}
		ops = append(ops, o)
		j += 2
	}
	if writes && readonly {
		c.errReply(errBitfieldRO)
		return
	}
	// Only the bytes the fields cover are read and written back.
	lo, hi := int64(0), int64(0)
	for i, o := range ops {
		first, end := int64(o.offset>>3), int64((o.offset+uint64(o.width)-1)>>3)+1
		if i == 0 || first < lo {
			lo = first
		}
		hi = max(hi, end)
	}
	v, oldLen, exists, ok := c.bitSpan(args[1], lo, hi)
	if !ok {
		return
	}
	base := uint64(lo) << 3
	// The replies are built first: the write, if any, comes before them
	// so that a failed write replies its error alone.
	reply := resp.AppendArray(nil, len(ops))
	changed := false
	for _, o := range ops {
		off := o.offset - base
		if o.op == 'g' {
			// Bits past the end of the string read as zeros (bitSpan pads).
			reply = resp.AppendInt(reply, fieldValue(getBits(v, off, o.width), o.signed, o.width))
			continue
		}
		nv, ret, failed := bitfieldWrite(o, getBits(v, off, o.width))
		if failed {
			reply = resp.AppendNull(reply, c.sess.Proto)
			continue
		}
		setBits(v, off, o.width, nv)
		changed = true
		reply = resp.AppendInt(reply, ret)
	}
	// Only a SET or INCRBY that was carried out modifies the key (an
	// overflow under FAIL leaves it alone, as in Redis). One that creates
	// or grows the string must write it too; Redis creates it without
	// touching its watchers, here that write touches them. The string
	// grows to the highest bit written, not to what a GET read past it.
	if writes {
		writeEnd := int64(highest>>3) + 1
		if changed || !exists || writeEnd > oldLen {
			end := max(min(oldLen, hi), writeEnd)
			if _, ok := c.splice(args[1], exists, oldLen, lo, v[:end-lo], encRaw); !ok {
				return
			}
		}
	}
	c.out = append(c.out, reply...)
}

// bitfieldType parses i1..i64 and u1..u63 (lower case only, as Redis).
func bitfieldType(a []byte) (signed bool, width int, ok bool) {
	if len(a) < 2 || (a[0] != 'i' && a[0] != 'u') {
		return false, 0, false
	}
	n, ok := parseInt(a[1:])
	signed = a[0] == 'i'
	if !ok || n < 1 || (signed && n > 64) || (!signed && n > 63) {
		return false, 0, false
	}
	return signed, int(n), true
}

// getBits reads width bits at bit offset off, most significant first.
func getBits(p []byte, off uint64, width int) uint64 {
	var v uint64
	for range width {
		v = v<<1 | uint64(p[off>>3]>>(7-off&7)&1)
		off++
	}
	return v
}

func setBits(p []byte, off uint64, width int, v uint64) {
	for j := range width {
		bit := byte(v >> (width - 1 - j) & 1)
		shift := 7 - off&7
		p[off>>3] = p[off>>3]&^(1<<shift) | bit<<shift
		off++
	}
}

// fieldValue is the integer a field's bits mean: two's complement for a
// signed type.
func fieldValue(u uint64, signed bool, width int) int64 {
	if signed && width < 64 && u&(1<<(width-1)) != 0 {
		u |= math.MaxUint64 << width
	}
	return int64(u)
}

// bitfieldWrite computes a SET's or INCRBY's new field bits and its reply
// (the old value for SET, the new for INCRBY) under the op's overflow
// rule; failed reports an overflow under FAIL (nothing written, nil).
func bitfieldWrite(o bitfieldOp, old uint64) (bitsOut uint64, reply int64, failed bool) {
	mask := uint64(math.MaxUint64)
	if o.width < 64 {
		mask = 1<<o.width - 1
	}
	if o.signed {
		oldv := fieldValue(old, true, o.width)
		var nv int64
		var over bool
		if o.op == 'i' {
			nv, over = signedOverflow(oldv, o.value, o.width, o.overflow)
			reply = nv
		} else {
			nv, over = signedOverflow(o.value, 0, o.width, o.overflow)
			reply = oldv
		}
		if over && o.overflow == 'f' {
			return 0, 0, true
		}
		return uint64(nv) & mask, reply, false
	}
	var nv uint64
	var over bool
	if o.op == 'i' {
		nv, over = unsignedOverflow(old, o.value, o.width, o.overflow)
		reply = int64(nv)
	} else {
		nv, over = unsignedOverflow(uint64(o.value), 0, o.width, o.overflow)
		reply = int64(old)
	}
	if over && o.overflow == 'f' {
		return 0, 0, true
	}
	return nv & mask, reply, false
}

// unsignedOverflow is value+incr in a width-bit unsigned field under
// Redis's checkUnsignedBitfieldOverflow: wrapped, saturated, or (FAIL)
// flagged.
func unsignedOverflow(value uint64, incr int64, width int, rule byte) (uint64, bool) {
	maxv := uint64(math.MaxUint64)
	if width < 64 {
		maxv = 1<<width - 1
	}
	maxIncr := int64(maxv - value)
	minIncr := -int64(value)
	switch {
	case value > maxv || (incr > 0 && incr > maxIncr):
		if rule == 's' {
			return maxv, true
		}
	case incr < 0 && incr < minIncr:
		if rule == 's' {
			return 0, true
		}
	default:
		return value + uint64(incr), false
	}
	// WRAP (and FAIL, whose value is not used).
	return (value + uint64(incr)) & maxv, true
}

// signedOverflow is Redis's checkSignedBitfieldOverflow.
func signedOverflow(value, incr int64, width int, rule byte) (int64, bool) {
	maxv := int64(math.MaxInt64)
	if width < 64 {
		maxv = 1<<(width-1) - 1
	}
	minv := -maxv - 1
	maxIncr := int64(uint64(maxv) - uint64(value))
	minIncr := minv - value
	switch {
	case value > maxv || (width != 64 && incr > maxIncr) || (value >= 0 && incr > 0 && incr > maxIncr):
		if rule == 's' {
			return maxv, true
		}
	case value < minv || (width != 64 && incr < minIncr) || (value < 0 && incr < 0 && incr < minIncr):
		if rule == 's' {
			return minv, true
		}
	default:
		return value + incr, false
	}
	c := uint64(value) + uint64(incr)
	if width < 64 {
		m := uint64(math.MaxUint64) << width
		if c&(1<<(width-1)) != 0 {
			c |= m
		} else {
			c &^= m
		}
	}
	return int64(c), true
}
