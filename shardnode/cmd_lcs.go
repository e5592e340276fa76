package shardnode

import (
	"errors"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], Redis 7.0's
// t_string.c lcsCommand: the classic dynamic-programming table, bounded by
// the same 512 MB of transient memory Redis allows it.
func cmdLCS(c *client, args [][]byte) {
	a, ok := c.lcsString(args[1])
	if !ok {
		return
	}
	b, ok := c.lcsString(args[2])
	if !ok {
		return
	}
	var getLen, getIdx, withLen bool
	var minLen int64
	for j := 3; j < len(args); j++ {
		more := len(args) - 1 - j
		switch opt := args[j]; {
		case eqFold(opt, "idx"):
			getIdx = true
		case eqFold(opt, "len"):
			getLen = true
		case eqFold(opt, "withmatchlen"):
			withLen = true
		case eqFold(opt, "minmatchlen") && more > 0:
			n, ok := parseInt(args[j+1])
			if !ok {
				c.errReply(errNotInteger)
				return
			}
			minLen = max(n, 0)
			j++
		default:
			c.errReply(errSyntax)
			return
		}
	}
	if getIdx && getLen {
		c.errReply("ERR If you want both the length and indexes, please just use IDX.")
		return
	}
	alen, blen := len(a), len(b)
	cells := uint64(alen+1) * uint64(blen+1)
	if cells*4 > resp.MaxBulkLen {
		c.errReply("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
		return
	}
	w := blen + 1
	t := make([]uint32, cells)
	for i := 1; i <= alen; i++ {
		for j := 1; j <= blen; j++ {
			if a[i-1] == b[j-1] {
				t[i*w+j] = t[(i-1)*w+j-1] + 1
			} else {
				t[i*w+j] = max(t[(i-1)*w+j], t[i*w+j-1])
			}
		}
	}
	total := t[alen*w+blen]
	if getLen {
		c.intReply(int64(total))
		return
	}
	// Walk back from the end as Redis does, so the matches come in the
	// same order (from the ends of the strings towards their starts).
	result := make([]byte, total)
	idx := total
	type match struct{ a0, a1, b0, b1 uint32 }
	var matches []match
	aStart := uint32(alen) // alen: no range open
	var aEnd, bStart, bEnd uint32
	i, j := uint32(alen), uint32(blen)
	for i > 0 && j > 0 {
		emit := false
		if a[i-1] == b[j-1] {
			result[idx-1] = a[i-1]
			if aStart == uint32(alen) {
				aStart, aEnd, bStart, bEnd = i-1, i-1, j-1, j-1
			} else if aStart == i && bStart == j {
				aStart--
				bStart--
			} else {
				emit = true
			}
			if aStart == 0 || bStart == 0 {
				emit = true
			}
			idx--
			i--
			j--
		} else {
			if t[(i-1)*uint32(w)+j] > t[i*uint32(w)+j-1] {
				i--
			} else {
				j--
			}
			if aStart != uint32(alen) {
				emit = true
			}
		}
		if emit {
			if l := aEnd - aStart + 1; minLen == 0 || int64(l) >= minLen {
				matches = append(matches, match{aStart, aEnd, bStart, bEnd})
			}
			aStart = uint32(alen)
		}
	}
	if !getIdx {
		c.bulk(result)
		return
	}
	c.mapHeader(2)
	c.bulkStr("matches")
	c.array(len(matches))
	for _, m := range matches {
		if withLen {
			c.array(3)
		} else {
			c.array(2)
		}
		c.array(2)
		c.intReply(int64(m.a0))
		c.intReply(int64(m.a1))
		c.array(2)
		c.intReply(int64(m.b0))
		c.intReply(int64(m.b1))
		if withLen {
			c.intReply(int64(m.a1 - m.a0 + 1))
		}
	}
	c.bulkStr("len")
	c.intReply(int64(total))
}

// lcsString reads one of LCS's keys: a missing key is the empty string,
// any other type Redis's LCS error (not WRONGTYPE).
func (c *client) lcsString(key []byte) ([]byte, bool) {
	v, _, _, err := c.st.get(key)
	if errors.Is(err, bitcask.ErrWrongType) {
		c.errReply("ERR The specified keys must contain string values")
		return nil, false
	}
	if err != nil {
		c.storeErr(err)
		return nil, false
	}
	return v, true
}
