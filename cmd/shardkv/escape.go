package main

import (
	"bytes"
	"errors"
	"fmt"
)

// The row format that `load` reads and `cat` writes is pyshard's `key|value`,
// one row per line, made safe for any bytes with four backslash escapes:
//
//	\\  a backslash
//	\n  a line feed (LF)
//	\r  a carriage return (CR)
//	\|  a vertical bar (needed only in keys; `cat` never writes it in values)
//
// The key ends at the first `|` that is not escaped; everything after it is
// the value, so a value keeps every further `|` whole. Any other byte after a
// backslash, or a backslash at the end of the row, is a bad escape and the row
// is rejected. `load --raw` turns the escapes off: the key ends at the first
// `|` and both parts are taken byte for byte.

// escapeKey writes key so that parseRow reads it back exactly: the escapes
// of escapeValue plus `|`, which would otherwise end the key.
func escapeKey(dst []byte, key []byte) []byte {
	return escape(dst, key, true)
}

// escapeValue writes value so that parseRow reads it back exactly. A `|` in a
// value is left alone: only the first unescaped `|` of a row separates.
func escapeValue(dst []byte, value []byte) []byte {
	return escape(dst, value, false)
}

func escape(dst, s []byte, bar bool) []byte {
	for _, c := range s {
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '|' && bar:
			dst = append(dst, '\\', '|')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Row errors. Each is reported with the row's line number.
var (
	errNoSeparator = errors.New("no '|' separating key and value")
	errEmptyKey    = errors.New("empty key")
)

// badEscapeError is a backslash followed by something that is not an escape.
type badEscapeError struct {
	col  int  // 1-based column of the backslash in the row
	next byte // the byte after it; 0 with end set
	end  bool // the backslash is the last byte of the row
}

func (e *badEscapeError) Error() string {
	if e.end {
		return fmt.Sprintf("bad escape at column %d: backslash at the end of the row (write \\\\ for a backslash)", e.col)
	}
	return fmt.Sprintf("bad escape at column %d: \\%s (escapes are \\\\ \\n \\r \\|; write \\\\ for a backslash)", e.col, printable(e.next))
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(c)
	}
	return fmt.Sprintf("x%02x", c)
}

// trimLineEnd removes the line terminator of a line read with ReadBytes('\n'):
// LF, or CRLF unless raw (a CR inside an escaped row is always written \r, so
// a bare CR before the LF can only come from a CRLF file).
func trimLineEnd(line []byte, raw bool) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if !raw {
		line = bytes.TrimSuffix(line, []byte{'\r'})
	}
	return line
}

// parseRow splits one row (without its line terminator) into key and value.
// With raw the key ends at the first `|` and nothing is unescaped.
func parseRow(row []byte, raw bool) (key, value []byte, err error) {
	if raw {
		i := bytes.IndexByte(row, '|')
		if i < 0 {
			return nil, nil, errNoSeparator
		}
		if i == 0 {
			return nil, nil, errEmptyKey
		}
		return row[:i], row[i+1:], nil
	}
	sep := -1
	for i := 0; i < len(row); i++ {
		if row[i] == '\\' {
			i++ // the escaped byte cannot separate; unescape checks it
			continue
		}
		if row[i] == '|' {
			sep = i
			break
		}
	}
	if sep < 0 {
		// Report a bad escape before a missing separator: it may be what
		// hid the separator (a trailing `\|`).
		if _, err := unescape(nil, row, 0); err != nil {
			return nil, nil, err
		}
		return nil, nil, errNoSeparator
	}
	if key, err = unescape(nil, row[:sep], 0); err != nil {
		return nil, nil, err
	}
	if len(key) == 0 {
		return nil, nil, errEmptyKey
	}
	if value, err = unescape(make([]byte, 0, len(row)-sep-1), row[sep+1:], sep+1); err != nil {
		return nil, nil, err
	}
	return key, value, nil
}

// unescape appends s with its escapes resolved to dst. off is the offset of
// s in its row, for the column in errors.
func unescape(dst, s []byte, off int) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i+1 == len(s) {
			return nil, &badEscapeError{col: off + i + 1, end: true}
		}
		i++
		switch s[i] {
		case '\\':
			dst = append(dst, '\\')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case '|':
			dst = append(dst, '|')
		default:
			return nil, &badEscapeError{col: off + i, next: s[i]}
		}
	}
	return dst, nil
}

// globEscape quotes the glob metacharacters of s for SCAN's MATCH, so an
// index named `a*` matches only its own keys.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^', '-':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
