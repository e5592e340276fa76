package bitcask

import "hash/crc32"

// CRC-32C arithmetic for big records: a record's CRC covers its header,
// key and value, and the header changes at commit (the batch flags) and
// carries the sequence number, so a big value's CRC is computed once, on
// its own, and combined with the header's; and a run of zero bytes (what
// SETRANGE past the end of a value pads with) is folded in in O(log n)
// instead of being materialised and read. This is zlib's crc32_combine,
// for the Castagnoli polynomial.

// castagnoliReversed is the CRC-32C polynomial, bit-reversed, as the
// table-driven (reflected) CRC uses it.
const castagnoliReversed = 0x82f63b78

// multModP returns a(x)*b(x) modulo the polynomial, in the reflected bit
// order (bit 31 is x^0).
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReversed
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the polynomial. zlib keeps 32 entries and
// wraps k, which holds for its polynomial but not for Castagnoli's (a
// record longer than 2^29 bytes got a wrong CRC): 64 entries cover every
// int64 length.
var x2nTable = func() (t [64]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < len(t); k++ {
		p = multModP(p, p)
		t[k] = p
	}
	return t
}()

// xPow8n returns x^(8n) modulo the polynomial: feeding n zero bytes to the
// raw CRC register multiplies it by that.
func xPow8n(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n > 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k], p)
		}
	}
	return p
}

// crcCombine returns the CRC of A||B from crcA = CRC(A), crcB = CRC(B)
// and the length of B.
func crcCombine(crcA, crcB uint32, lenB int64) uint32 {
	return multModP(xPow8n(lenB), crcA) ^ crcB
}

// crcZeros returns crc32.Update(crc, castagnoli, n zero bytes).
func crcZeros(crc uint32, n int64) uint32 {
	return ^multModP(xPow8n(n), ^crc)
}

// crcUpdate is crc32.Update with the package's table.
func crcUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }
