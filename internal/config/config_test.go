package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		err  error
	}{
		{line: "", want: nil},
		{line: "   \t ", want: nil},
		{line: "port 7001", want: []string{"port", "7001"}},
		{line: "  port \t 7001  ", want: []string{"port", "7001"}},
		{line: `requirepass "a b"`, want: []string{"requirepass", "a b"}},
		{line: `requirepass 'a b'`, want: []string{"requirepass", "a b"}},
		{line: `requirepass ""`, want: []string{"requirepass", ""}},
		{line: `requirepass ''`, want: []string{"requirepass", ""}},
		{line: `x "\n\r\t\b\a\"\\\q"`, want: []string{"x", "\n\r\t\b\a\"\\q"}},
		{line: `x "\x41\x7a\xff\x4"`, want: []string{"x", "Az\xffx4"}},
		{line: `x 'it\'s' 'a\nb'`, want: []string{"x", "it's", `a\nb`}},
		{line: `x ab"c d"`, want: []string{"x", "abc d"}}, // a quote opens mid-word, as in Redis
		{line: `x a#b # c`, want: []string{"x", "a#b", "#", "c"}},
		{line: "x \x00y", want: []string{"x", "\x00y"}},
		{line: `x "abc`, err: ErrUnbalancedQuotes},
		{line: `x 'abc`, err: ErrUnbalancedQuotes},
		{line: `x "abc\"`, err: ErrUnbalancedQuotes},
		{line: `x "abc"d`, err: ErrQuoteNotFollowed},
		{line: `x 'abc'd`, err: ErrQuoteNotFollowed},
		{line: "x \"abc\"\ty", want: []string{"x", "abc", "y"}},
	} {
		got, err := SplitArgs(tc.line)
		if !errors.Is(err, tc.err) || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q, %v", tc.line, got, err, tc.want, tc.err)
		}
	}
}

func TestParse(t *testing.T) {
	text := "# shardkv-node\r\n" +
		"\n" +
		"PORT 7001\r\n" +
		"   # an indented comment\n" +
		"  Bind\t127.0.0.1  \n" +
		"requirepass \"s3cret with spaces\"\n" +
		"strict-indexes yes" // no final line end
	lines, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{Num: 3, Name: "port", Args: []string{"7001"}},
		{Num: 5, Name: "bind", Args: []string{"127.0.0.1"}},
		{Num: 6, Name: "requirepass", Args: []string{"s3cret with spaces"}},
		{Num: 7, Name: "strict-indexes", Args: []string{"yes"}},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("Parse = %+v\nwant %+v", lines, want)
	}

	_, err = Parse(strings.NewReader("port 1\n\nrequirepass \"open\n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 3 || !strings.Contains(err.Error(), "line 3: unbalanced quotes") {
		t.Errorf("unbalanced quotes on line 3: %v", err)
	}
}

// nodeFlags is a flag set shaped like shardkv-node's.
func nodeFlags() (*flag.FlagSet, map[string]any) {
	fs := flag.NewFlagSet("shardkv-node", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	v := map[string]any{
		"addr":                       fs.String("addr", "127.0.0.1:7001", ""),
		"dir":                        fs.String("dir", "data/node", ""),
		"appendfsync":                fs.String("appendfsync", "everysec", ""),
		"requirepass":                fs.String("requirepass", "", ""),
		"maxclients":                 fs.Int("maxclients", 10000, ""),
		"strict-indexes":             fs.Bool("strict-indexes", false, ""),
		"log-level":                  fs.String("log-level", "info", ""),
		"timeout":                    fs.Duration("timeout", 5*time.Second, ""),
		"config":                     fs.String("config", "", ""),
		"client-output-buffer-limit": fs.String("client-output-buffer-limit", "", ""),
	}
	return fs, v
}

func deref(p any) any { return reflect.ValueOf(p).Elem().Interface() }

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string // the command line
		file    string
		want    map[string]any // flag values afterwards
		wantErr string         // a substring of the error
	}{
		{
			name: "redis names",
			file: "port 7100\nbind 10.0.0.1\ndir /var/lib/shardkv\nappendfsync always\nrequirepass pw\nmaxclients 50\nloglevel warning\n",
			want: map[string]any{"addr": "10.0.0.1:7100", "dir": "/var/lib/shardkv", "appendfsync": "always",
				"requirepass": "pw", "maxclients": 50, "log-level": "warn"},
		},
		{
			name: "bind before port, IPv6",
			file: "bind ::1\nport 7100\n",
			want: map[string]any{"addr": "[::1]:7100"},
		},
		{
			name: "our own names, the last line wins",
			file: "addr 127.0.0.1:9000\nlog-level debug\nlog-level error\ntimeout 250ms\n",
			want: map[string]any{"addr": "127.0.0.1:9000", "log-level": "error", "timeout": 250 * time.Millisecond},
		},
		{
			name: "client-output-buffer-limit: several words, one line per class, added up",
			file: "client-output-buffer-limit normal 0 0 0\nclient-output-buffer-limit pubsub 32mb 8mb 60\n",
			want: map[string]any{"client-output-buffer-limit": "normal 0 0 0 pubsub 32mb 8mb 60"},
		},
		{
			name:    "client-output-buffer-limit with no words",
			file:    "client-output-buffer-limit\n",
			wantErr: "node.conf:1: client-output-buffer-limit takes one argument, got 0",
		},
		{
			name: "yes and no for booleans",
			file: "strict-indexes yes\n",
			want: map[string]any{"strict-indexes": true},
		},
		{
			name: "loglevel values of Redis",
			file: "loglevel verbose\n",
			want: map[string]any{"log-level": "debug"},
		},
		{
			name: "the command line wins",
			args: []string{"-addr", "127.0.0.1:7200", "-maxclients", "7"},
			file: "port 7100\nbind 10.0.0.1\nmaxclients 50\nrequirepass pw\n",
			want: map[string]any{"addr": "127.0.0.1:7200", "maxclients": 7, "requirepass": "pw"},
		},
		{
			name:    "unknown directive",
			file:    "port 7100\n\nsave 900 1\n",
			wantErr: `node.conf:3: unknown directive "save" (shardkv-node reads: addr, appendfsync, bind,`,
		},
		{
			name:    "an overridden line is still checked for its name",
			args:    []string{"-addr", "127.0.0.1:7200"},
			file:    "daemonize yes\n",
			wantErr: `node.conf:1: unknown directive "daemonize"`,
		},
		{
			name:    "config cannot nest",
			file:    "config other.conf\n",
			wantErr: `node.conf:1: unknown directive "config"`,
		},
		{
			name:    "several addresses",
			file:    "bind 127.0.0.1 ::1\n",
			wantErr: "node.conf:1: bind takes one argument, got 2",
		},
		{
			name:    "a comment after a directive",
			file:    "port 7001 # the first node\n",
			wantErr: "node.conf:1: port takes one argument, got 5",
		},
		{
			name:    "port 0",
			file:    "port 0\n",
			wantErr: `node.conf:1: port "0": want a TCP port in 1..65535`,
		},
		{
			name:    "a value the flag refuses",
			file:    "\nmaxclients many\n",
			wantErr: "node.conf:2: maxclients many: parse error",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, v := nodeFlags()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			lines, err := Parse(strings.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			err = Apply(fs, "node.conf", lines, Redis, "config")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Apply: %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				if got := deref(v[name]); got != want {
					t.Errorf("-%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// TestRedisAliasNeedsFlag: a redis.conf name applies only to a binary that
// has its flag.
func TestRedisAliasNeedsFlag(t *testing.T) {
	fs := flag.NewFlagSet("shardkv-proxy", flag.ContinueOnError)
	fs.String("addr", "127.0.0.1:6380", "")
	lines, _ := Parse(strings.NewReader("dir /tmp\n"))
	err := Apply(fs, "proxy.conf", lines, Redis)
	if err == nil || !strings.Contains(err.Error(), `proxy.conf:1: unknown directive "dir" (shardkv-proxy reads: addr, bind, port)`) {
		t.Fatalf("dir in the proxy's file: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(path, []byte("requirepass \"unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _ := nodeFlags()
	if err := Load(fs, path, Redis); err == nil || err.Error() != path+":1: unbalanced quotes" {
		t.Errorf("Load of a bad file: %v", err)
	}
	if err := Load(fs, filepath.Join(dir, "missing.conf"), Redis); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("requirepass "+Quote("p w\"\\\x01")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, v := nodeFlags()
	if err := Load(fs, path, Redis); err != nil {
		t.Fatal(err)
	}
	if got := deref(v["requirepass"]); got != "p w\"\\\x01" {
		t.Errorf("requirepass = %q", got)
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"127.0.0.1:7001", "127.0.0.1:7001"},
		{"", `""`},
		{"a b", `"a b"`},
		{"#x", `"#x"`},
		{`it's`, `"it's"`},
		{`"q"`, `"\"q\""`},
		{"tab\tnl\n\x00\xff", `"tab\tnl\n\x00\xff"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if back, err := SplitArgs(Quote(tc.in)); err != nil || len(back) != 1 || back[0] != tc.in {
			t.Errorf("SplitArgs(Quote(%q)) = %q, %v", tc.in, back, err)
		}
	}
}

// FuzzParse: any input parses or fails cleanly, and every directive parsed,
// written back with Quote, parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"port 7001\nbind 127.0.0.1\n",
		"# comment\n\nrequirepass \"a b\\x41\"\n",
		"x 'it\\'s'\r\n",
		"x \"unclosed\n",
		"x \"a\"b\n",
		"  \t\n#\n\"\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := Parse(strings.NewReader(string(data)))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(Quote(l.Name))
			for _, a := range l.Args {
				b.WriteString(" " + Quote(a))
			}
			b.WriteString("\n")
		}
		again, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("written back %q: %v", b.String(), err)
		}
		if len(again) != len(lines) {
			t.Fatalf("written back: %d lines, want %d", len(again), len(lines))
		}
		for i := range lines {
			if again[i].Name != lines[i].Name || !slices.Equal(again[i].Args, lines[i].Args) {
				t.Fatalf("line %d written back as %q: %+v, want %+v", lines[i].Num, b.String(), again[i], lines[i])
			}
		}
	})
}

// FuzzQuote: Quote's output is one argument that reads back as the input.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "a b", "#", "'\"\\", "\x00\xff\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := SplitArgs(Quote(s))
		if err != nil || len(got) != 1 || got[0] != s {
			t.Fatalf("SplitArgs(Quote(%q) = %s) = %q, %v", s, Quote(s), got, err)
		}
	})
}
