package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"reflect"
	"sync"
	"testing"
)

func TestParseRow(t *testing.T) {
	tests := []struct {
		name      string
		row       string
		raw       bool
		key, val  string
		wantErr   error  // a sentinel, or nil
		badEscape string // substring of a bad-escape error
	}{
		{name: "plain", row: "k|v", key: "k", val: "v"},
		{name: "value keeps further bars", row: "k|a|b||c", key: "k", val: "a|b||c"},
		{name: "empty value", row: "k|", key: "k", val: ""},
		{name: "spaces kept", row: " k | v ", key: " k ", val: " v "},
		{name: "newline escapes", row: `k|line1\nline2\r\n`, key: "k", val: "line1\nline2\r\n"},
		{name: "backslash escape", row: `k|C:\\temp\\x`, key: "k", val: `C:\temp\x`},
		{name: "escaped bar in key", row: `a\|b|c`, key: "a|b", val: "c"},
		{name: "escaped backslash before separator", row: `a\\|b|c`, key: `a\`, val: "b|c"},
		{name: "escaped bar in value", row: `k|a\|b`, key: "k", val: "a|b"},
		{name: "newline in key", row: `a\nb|v`, key: "a\nb", val: "v"},
		{name: "binary bytes pass", row: "k\x00\xff|\x01\xfe", key: "k\x00\xff", val: "\x01\xfe"},
		{name: "utf-8", row: "ключ|значение ✓", key: "ключ", val: "значение ✓"},
		{name: "no separator", row: "novalue", wantErr: errNoSeparator},
		{name: "empty row", row: "", wantErr: errNoSeparator},
		{name: "only escaped bar", row: `k\|v`, wantErr: errNoSeparator},
		{name: "empty key", row: "|v", wantErr: errEmptyKey},
		{name: "unknown escape in value", row: `k|a\tb`, badEscape: `column 4: \t`},
		{name: "unknown escape in key", row: `a\x|v`, badEscape: `column 2: \x`},
		{name: "trailing backslash", row: `k|v\`, badEscape: "column 4: backslash at the end"},
		{name: "trailing backslash hides separator", row: `k\`, badEscape: "backslash at the end"},
		{name: "nonprintable after backslash", row: "k|\\\x01", badEscape: `\x01`},

		{name: "raw plain", row: "k|v", raw: true, key: "k", val: "v"},
		{name: "raw keeps backslashes", row: `k\n|C:\temp\|x`, raw: true, key: `k\n`, val: `C:\temp\|x`},
		{name: "raw first bar", row: `a\|b|c`, raw: true, key: `a\`, val: "b|c"},
		{name: "raw no separator", row: `k\|`, raw: true, key: `k\`, val: ""},
		{name: "raw empty key", row: "|v", raw: true, wantErr: errEmptyKey},
		{name: "raw missing bar", row: "kv", raw: true, wantErr: errNoSeparator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, val, err := parseRow([]byte(tt.row), tt.raw)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseRow(%q) error = %v, want %v", tt.row, err, tt.wantErr)
				}
			case tt.badEscape != "":
				var be *badEscapeError
				if !errors.As(err, &be) || !bytes.Contains([]byte(err.Error()), []byte(tt.badEscape)) {
					t.Fatalf("parseRow(%q) error = %v, want a bad escape containing %q", tt.row, err, tt.badEscape)
				}
			default:
				if err != nil {
					t.Fatalf("parseRow(%q): %v", tt.row, err)
				}
				if string(key) != tt.key || string(val) != tt.val {
					t.Fatalf("parseRow(%q) = %q, %q; want %q, %q", tt.row, key, val, tt.key, tt.val)
				}
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, key, value string
	}{
		{"plain", "plain", "plain"},
		{"a|b", `a\|b`, "a|b"},
		{`back\slash`, `back\\slash`, `back\\slash`},
		{"two\nlines\r\n", `two\nlines\r\n`, `two\nlines\r\n`},
		{`\n`, `\\n`, `\\n`},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := string(escapeKey(nil, []byte(tt.in))); got != tt.key {
			t.Errorf("escapeKey(%q) = %q, want %q", tt.in, got, tt.key)
		}
		if got := string(escapeValue(nil, []byte(tt.in))); got != tt.value {
			t.Errorf("escapeValue(%q) = %q, want %q", tt.in, got, tt.value)
		}
	}
}

// roundTrip checks that an escaped row holds no line break and parses back
// to exactly the key and value it was made from.
func roundTrip(t *testing.T, key, value []byte) {
	t.Helper()
	row := escapeKey(nil, key)
	row = append(row, '|')
	row = escapeValue(row, value)
	if bytes.ContainsAny(row, "\r\n") {
		t.Fatalf("escaped row %q contains a line break", row)
	}
	k, v, err := parseRow(row, false)
	if len(key) == 0 {
		if !errors.Is(err, errEmptyKey) {
			t.Fatalf("row %q with empty key: error %v, want %v", row, err, errEmptyKey)
		}
		return
	}
	if err != nil {
		t.Fatalf("parseRow(%q): %v", row, err)
	}
	if !bytes.Equal(k, key) || !bytes.Equal(v, value) {
		t.Fatalf("round trip of %q, %q gave %q, %q (row %q)", key, value, k, v, row)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	specials := []string{"", "|", "||", `\`, `\\`, "\n", "\r", "\r\n", `\|`, `\n`, "|\\\n", "a|b\\c\nd\re", "\x00", "\xff"}
	for _, k := range specials {
		for _, v := range specials {
			roundTrip(t, []byte("k"+k), []byte(v))
			roundTrip(t, []byte(k), []byte(v+"v"))
		}
	}
}

func FuzzEscapeRoundTrip(f *testing.F) {
	f.Add([]byte("k"), []byte("v"))
	f.Add([]byte(`a|b\`), []byte("x|y\n\\r\r"))
	f.Add([]byte(""), []byte("|"))
	f.Add([]byte("\\|"), []byte("\\"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		roundTrip(t, key, value)
	})
}

// FuzzParseRow checks that no row makes parseRow panic and that whatever it
// accepts it escapes back to a row that parses to the same key and value.
func FuzzParseRow(f *testing.F) {
	for _, s := range []string{"k|v", `a\|b|c`, `k|\`, `\q|v`, "|", "", `\\|\\`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, row []byte, raw bool) {
		key, value, err := parseRow(row, raw)
		if err != nil {
			return
		}
		if len(key) == 0 {
			t.Fatalf("parseRow(%q) accepted an empty key", row)
		}
		roundTrip(t, key, value)
	})
}

func TestTrimLineEnd(t *testing.T) {
	tests := []struct {
		in   string
		raw  bool
		want string
	}{
		{"k|v\n", false, "k|v"},
		{"k|v\r\n", false, "k|v"},
		{"k|v\r\n", true, "k|v\r"},
		{"k|v", false, "k|v"},
		{"k|v\r", false, "k|v"},
		{"\n", false, ""},
	}
	for _, tt := range tests {
		if got := string(trimLineEnd([]byte(tt.in), tt.raw)); got != tt.want {
			t.Errorf("trimLineEnd(%q, raw=%v) = %q, want %q", tt.in, tt.raw, got, tt.want)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"idx:", "idx:"},
		{"a*b?:", `a\*b\?:`},
		{"[x]:", `\[x\]:`},
		{`back\:`, `back\\:`},
		{"a^-b:", `a\^\-b:`},
	}
	for _, tt := range tests {
		if got := globEscape(tt.in); got != tt.want {
			t.Errorf("globEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args   []string
		pos    []string
		create bool
		addr   string
	}{
		{[]string{"idx"}, []string{"idx"}, false, "default"},
		{[]string{"idx", "--create"}, []string{"idx"}, true, "default"},
		{[]string{"--create", "idx"}, []string{"idx"}, true, "default"},
		{[]string{"idx", "-addr", "h:1", "-create"}, []string{"idx"}, true, "h:1"},
		{[]string{"a", "b", "--create", "c"}, []string{"a", "b", "c"}, true, "default"},
		{[]string{"--", "-create"}, []string{"-create"}, false, "default"},
		{[]string{"idx", "--", "--create"}, []string{"idx", "--create"}, false, "default"},
		{nil, nil, false, "default"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		create := fs.Bool("create", false, "")
		addr := fs.String("addr", "default", "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Fatalf("parseInterspersed(%q): %v", tt.args, err)
		}
		if !reflect.DeepEqual(pos, tt.pos) || *create != tt.create || *addr != tt.addr {
			t.Errorf("parseInterspersed(%q) = %q create=%v addr=%q; want %q create=%v addr=%q",
				tt.args, pos, *create, *addr, tt.pos, tt.create, tt.addr)
		}
	}
}

func TestCheckIndexName(t *testing.T) {
	for _, ok := range []string{"idx", "a-b", "UPPER", "*"} {
		if err := checkIndexName(ok); err != nil {
			t.Errorf("checkIndexName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", ":"} {
		if err := checkIndexName(bad); err == nil {
			t.Errorf("checkIndexName(%q) = nil, want an error", bad)
		}
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int // 0 for success
	}{
		{[]string{"help"}, 0},
		{nil, 2},
		{[]string{"nosuch"}, 2},
		{[]string{"load"}, 2},
		{[]string{"load", "a", "b"}, 2},
		{[]string{"load", "a:b"}, 2},
		{[]string{"load", "idx", "--batch", "0"}, 2},
		{[]string{"cat"}, 2},
		{[]string{"locate"}, 2},
		{[]string{"status", "extra"}, 2},
		{[]string{"cluster", "extra"}, 2},
		{[]string{"-nosuchflag", "help"}, 2},
	}
	for _, tt := range tests {
		err := run(tt.args, bytes.NewReader(nil), io.Discard, io.Discard)
		code := 0
		if err != nil {
			code = 1
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			}
		}
		if code != tt.code {
			t.Errorf("run(%q): exit code %d (%v), want %d", tt.args, code, err, tt.code)
		}
	}
}

func TestParseInfoSections(t *testing.T) {
	text := "# Server\r\nredis_version:7.2.4\r\n\r\n# Shard_s0\r\nshard_addr:127.0.0.1:7001\r\nshard_keys:12\r\nshard_index_:keys=1,bytes=2\r\nx:a:b\r\n"
	got := parseInfoSections(text)
	want := map[string]map[string]string{
		"":         {},
		"server":   {"redis_version": "7.2.4"},
		"shard_s0": {"shard_addr": "127.0.0.1:7001", "shard_keys": "12", "shard_index_": "keys=1,bytes=2", "x": "a:b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseInfoSections = %v, want %v", got, want)
	}
}

func TestParseMapEntry(t *testing.T) {
	tests := []struct {
		in   any
		want shardState
	}{
		{[]any{"s0", "0", "0.5", "127.0.0.1:7001", int64(1)}, shardState{name: "s0", start: "0", end: "0.5", addr: "127.0.0.1:7001", reachable: true}},
		{[]any{"s1", 0.5, 1.0, "127.0.0.1:7002", int64(0)}, shardState{name: "s1", start: "0.5", end: "1", addr: "127.0.0.1:7002"}},
		{[]any{"s1", "0.5", "1", "h:1", true}, shardState{name: "s1", start: "0.5", end: "1", addr: "h:1", reachable: true}},
		{map[any]any{"name": "s2", "start": "0", "end": "1", "address": "h:2", "reachable": "yes"}, shardState{name: "s2", start: "0", end: "1", addr: "h:2", reachable: true}},
	}
	for _, tt := range tests {
		got, err := parseMapEntry(tt.in)
		if err != nil {
			t.Fatalf("parseMapEntry(%v): %v", tt.in, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseMapEntry(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if _, err := parseMapEntry([]any{"s0"}); err == nil {
		t.Error("parseMapEntry of a short entry: no error")
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	p := &prefixWriter{mu: &mu, w: &out, prefix: "[s0] "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.flush()
	if got, want := out.String(), "[s0] one\n[s0] two\n[s0] three\n"; got != want {
		t.Fatalf("prefixWriter wrote %q, want %q", got, want)
	}
}
