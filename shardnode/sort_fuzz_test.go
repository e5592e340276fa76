package shardnode

import (
	"bytes"
	"math"
	"strconv"
	"testing"
)

// FuzzParseSortScore: SORT's strtod-like reading of a value never panics,
// never gives NaN, and agrees with strconv.ParseFloat on what both read.
func FuzzParseSortScore(f *testing.F) {
	for _, s := range []string{"", " ", "1", " 5", "-1.5e3", "0x10", "inf", "-Infinity", "nan", "1e400", "1_0", "5 ", "+.5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseSortScore(b)
		if ok && math.IsNaN(got) {
			t.Fatalf("%q read as NaN", b)
		}
		// ParseFloat takes '_' between digits; strtod does not.
		if want, err := strconv.ParseFloat(string(b), 64); err == nil && !math.IsNaN(want) && len(b) > 0 && b[0] != ' ' && !bytes.Contains(b, []byte("_")) {
			if !ok || got != want {
				t.Fatalf("%q: %v %v, ParseFloat %v", b, got, ok, want)
			}
		}
	})
}
