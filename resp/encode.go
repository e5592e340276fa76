package resp

import (
	"math"
	"strconv"
)

// Proto is the RESP version spoken on a connection: 2 (the default) or 3
// (after HELLO 3). Encoders whose RESP3 type has no RESP2 counterpart take
// it and fall back to the RESP2 shape Redis uses for that reply.
type Proto int

// The two protocol versions.
const (
	RESP2 Proto = 2
	RESP3 Proto = 3
)

// The encoders below append one RESP value to b and return the extended
// slice, in the style of redcon: no allocation beyond growing b, no
// reflection. An aggregate header (AppendArray, AppendMap, AppendSet,
// AppendPush) is followed by its elements, appended by the caller.

// AppendSimple appends a simple string: +s\r\n. s must not hold CR or LF.
func AppendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendOK appends +OK\r\n.
func AppendOK(b []byte) []byte { return append(b, "+OK\r\n"...) }

// AppendError appends an error: -msg\r\n. msg begins with its code (ERR,
// WRONGTYPE, TRYAGAIN, ...); CR and LF in msg are replaced by spaces so a
// message never breaks the framing.
func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\r', '\n')
}

// AppendInt appends an integer: :n\r\n.
func AppendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendUint appends an unsigned integer as a RESP integer.
func AppendUint(b []byte, n uint64) []byte {
	b = append(b, ':')
	b = strconv.AppendUint(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends a bulk string: $len\r\nbytes\r\n.
func AppendBulk(b []byte, p []byte) []byte {
	b = appendPrefix(b, '$', int64(len(p)))
	b = append(b, p...)
	return append(b, '\r', '\n')
}

// AppendBulkHeader appends the header of a bulk string of n bytes, $n\r\n:
// the caller appends the bytes and the closing \r\n (a reply written a
// part at a time).
func AppendBulkHeader(b []byte, n int) []byte { return appendPrefix(b, '$', int64(n)) }

// AppendBulkString is AppendBulk for a string.
func AppendBulkString(b []byte, s string) []byte {
	b = appendPrefix(b, '$', int64(len(s)))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkInt appends n in decimal as a bulk string (as Redis replies
// numbers inside CONFIG GET or INCRBYFLOAT).
func AppendBulkInt(b []byte, n int64) []byte {
	var tmp [20]byte
	return AppendBulk(b, strconv.AppendInt(tmp[:0], n, 10))
}

// AppendNull appends the null reply: _\r\n in RESP3, $-1\r\n (null bulk)
// in RESP2.
func AppendNull(b []byte, proto Proto) []byte {
	if proto >= RESP3 {
		return append(b, '_', '\r', '\n')
	}
	return append(b, "$-1\r\n"...)
}

// AppendNullArray appends the null reply as RESP2 expresses it for an
// array (*-1\r\n), or _\r\n in RESP3 (EXEC after a failed WATCH).
func AppendNullArray(b []byte, proto Proto) []byte {
	if proto >= RESP3 {
		return append(b, '_', '\r', '\n')
	}
	return append(b, "*-1\r\n"...)
}

// AppendArray appends an array header for n elements.
func AppendArray(b []byte, n int) []byte {
	return appendPrefix(b, '*', int64(n))
}

// AppendMap appends a map header for n key/value pairs: %n in RESP3, an
// array of 2n elements in RESP2.
func AppendMap(b []byte, proto Proto, n int) []byte {
	if proto >= RESP3 {
		return appendPrefix(b, '%', int64(n))
	}
	return appendPrefix(b, '*', int64(2*n))
}

// AppendSet appends a set header for n elements: ~n in RESP3, an array in
// RESP2.
func AppendSet(b []byte, proto Proto, n int) []byte {
	if proto >= RESP3 {
		return appendPrefix(b, '~', int64(n))
	}
	return appendPrefix(b, '*', int64(n))
}

// AppendPush appends a push header for n elements: >n in RESP3, an array
// in RESP2.
func AppendPush(b []byte, proto Proto, n int) []byte {
	if proto >= RESP3 {
		return appendPrefix(b, '>', int64(n))
	}
	return appendPrefix(b, '*', int64(n))
}

// AppendDouble appends a double: ,f\r\n in RESP3 (inf, -inf, nan spelled
// as Redis does), a bulk string in RESP2.
func AppendDouble(b []byte, proto Proto, f float64) []byte {
	var tmp [32]byte
	num := AppendDoubleText(tmp[:0], f)
	if proto >= RESP3 {
		b = append(b, ',')
		b = append(b, num...)
		return append(b, '\r', '\n')
	}
	return AppendBulk(b, num)
}

// AppendBool appends a boolean: #t/#f in RESP3, :1/:0 in RESP2.
func AppendBool(b []byte, proto Proto, v bool) []byte {
	if proto >= RESP3 {
		if v {
			return append(b, "#t\r\n"...)
		}
		return append(b, "#f\r\n"...)
	}
	if v {
		return append(b, ":1\r\n"...)
	}
	return append(b, ":0\r\n"...)
}

// AppendVerbatim appends a verbatim string with a three letter format
// ("txt", "mkd") in RESP3, a bulk string in RESP2 (INFO, CLIENT INFO).
func AppendVerbatim(b []byte, proto Proto, format string, s string) []byte {
	if proto < RESP3 || len(format) != 3 {
		return AppendBulkString(b, s)
	}
	b = appendPrefix(b, '=', int64(len(s)+4))
	b = append(b, format...)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBigInt appends a big number (RESP3 "(") given as decimal digits, a
// bulk string in RESP2.
func AppendBigInt(b []byte, proto Proto, digits string) []byte {
	if proto < RESP3 {
		return AppendBulkString(b, digits)
	}
	b = append(b, '(')
	b = append(b, digits...)
	return append(b, '\r', '\n')
}

// AppendBulkArray appends an array of bulk strings.
func AppendBulkArray(b []byte, items [][]byte) []byte {
	b = AppendArray(b, len(items))
	for _, it := range items {
		b = AppendBulk(b, it)
	}
	return b
}

// AppendCommand appends a command as clients send it: an array of bulk
// strings.
func AppendCommand(b []byte, args ...[]byte) []byte {
	return AppendBulkArray(b, args)
}

// AppendCommandStrings is AppendCommand for string arguments.
func AppendCommandStrings(b []byte, args ...string) []byte {
	b = AppendArray(b, len(args))
	for _, a := range args {
		b = AppendBulkString(b, a)
	}
	return b
}

func appendPrefix(b []byte, c byte, n int64) []byte {
	if n >= 0 && n < 10 {
		return append(b, c, byte('0'+n), '\r', '\n')
	}
	b = append(b, c)
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendDoubleText appends f as Redis formats a double ("%.17g"; inf,
// -inf, nan).
func AppendDoubleText(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case math.IsNaN(f):
		return append(b, "nan"...)
	}
	return strconv.AppendFloat(b, f, 'g', 17, 64)
}
