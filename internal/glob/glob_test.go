package glob

import "testing"

// Cases follow Redis's stringmatchlen (util.c), which KEYS, SCAN MATCH and
// CONFIG GET use.
func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		nocase     bool
		want       bool
	}{
		{"**", "", false, false}, // as redis-server: KEYS ** skips the empty key; only a lone * is special-cased, by the callers
		{"*", "anything", false, true},
		{"idx:*", "idx:a", false, true},
		{"idx:*", "idy:a", false, false},
		{"h?llo", "hello", false, true},
		{"h?llo", "hllo", false, false},
		{"h[ae]llo", "hallo", false, true},
		{"h[ae]llo", "hillo", false, false},
		{"h[^e]llo", "hallo", false, true},
		{"h[^e]llo", "hello", false, false},
		{"h[a-b]llo", "hbllo", false, true},
		{"h[b-a]llo", "hallo", false, true}, // Redis swaps reversed ranges
		{`h\*llo`, "h*llo", false, true},
		{`h\*llo`, "hello", false, false},
		{"APPEND*", "appendfsync", true, true},
		{"APPEND*", "appendfsync", false, false},
		{"a*b*c", "aXXbYYc", false, true},
		{"a*b*c", "aXXbYY", false, false},
	}
	for _, tc := range cases {
		if got := Match([]byte(tc.pattern), []byte(tc.s), tc.nocase); got != tc.want {
			t.Errorf("Match(%q, %q, nocase=%v) = %v, want %v", tc.pattern, tc.s, tc.nocase, got, tc.want)
		}
	}
}
