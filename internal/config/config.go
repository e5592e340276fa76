// Package config reads the configuration files of shardkv-node and
// shardkv-proxy and applies them to the binary's flags. A file uses
// redis.conf's syntax, read the way redis-server reads it:
//
//   - one directive per line: a name, then its arguments, separated by
//     blanks; names are case-insensitive;
//   - a line whose first non-blank character is '#' is a comment, and blank
//     lines are skipped. A '#' after a directive is an argument like any
//     other, as in Redis, so "port 7001 # the node" has three arguments and
//     is refused;
//   - an argument in double quotes may hold blanks and the escapes \n \r \t
//     \b \a \" \\ and \xHH; in single quotes, blanks and \'. A closing quote
//     must be followed by a blank or the end of the line.
//
// Every directive takes one argument and sets one flag: the flag of its own
// name (`log-format json` is -log-format json), or the flag a redis.conf
// name stands for (`loglevel notice` is -log-level info, `port 7001` and
// `bind 10.0.0.1` are the two halves of -addr). A flag given on the command
// line wins over the file. A directive that names no flag of the binary, or
// a value the flag refuses, is an error that names the file and the line, so
// a redis.conf copied in whole fails on its first setting shardkv does not
// have instead of being half applied.
package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Line is one directive of a file.
type Line struct {
	Num  int      // line number in the file, from 1
	Name string   // the directive's name, lower-cased
	Args []string // its arguments, unquoted
}

// Error is a problem with one line of a file.
type Error struct {
	File string // the file's path as given; "" when read from a reader
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads every directive of a file in redis.conf syntax. A syntax error
// is an *Error naming its line.
func Parse(r io.Reader) ([]Line, error) {
	br := bufio.NewReader(r)
	var out []Line
	for num := 1; ; num++ {
		text, rerr := br.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, rerr
		}
		if text == "" && rerr == io.EOF {
			return out, nil
		}
		// redis-server trims these four from both ends before it looks at a
		// line.
		text = strings.Trim(text, " \t\r\n")
		if text != "" && text[0] != '#' {
			args, err := SplitArgs(text)
			if err != nil {
				return nil, &Error{Line: num, Msg: err.Error()}
			}
			if len(args) > 0 {
				out = append(out, Line{Num: num, Name: strings.ToLower(args[0]), Args: args[1:]})
			}
		}
		if rerr == io.EOF {
			return out, nil
		}
	}
}

// Errors of SplitArgs.
var (
	ErrUnbalancedQuotes = errors.New("unbalanced quotes")
	ErrQuoteNotFollowed = errors.New("a closing quote must be followed by a blank or the end of the line")
)

// SplitArgs splits one line into its arguments as Redis's sdssplitargs does
// (redis-server's reading of its config file, and redis-cli's of what you
// type).
func SplitArgs(line string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		var cur []byte
		inDouble, inSingle := false, false
	token:
		for {
			switch {
			case inDouble:
				if i == len(line) {
					return nil, ErrUnbalancedQuotes
				}
				c := line[i]
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					b, _ := strconv.ParseUint(line[i+2:i+4], 16, 8)
					cur = append(cur, byte(b))
					i += 4
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						cur = append(cur, '\n')
					case 'r':
						cur = append(cur, '\r')
					case 't':
						cur = append(cur, '\t')
					case 'b':
						cur = append(cur, '\b')
					case 'a':
						cur = append(cur, '\a')
					default:
						cur = append(cur, line[i])
					}
					i++
				case c == '"':
					i++
					if i < len(line) && !isBlank(line[i]) {
						return nil, ErrQuoteNotFollowed
					}
					break token
				default:
					cur = append(cur, c)
					i++
				}
			case inSingle:
				if i == len(line) {
					return nil, ErrUnbalancedQuotes
				}
				c := line[i]
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					cur = append(cur, '\'')
					i += 2
				case c == '\'':
					i++
					if i < len(line) && !isBlank(line[i]) {
						return nil, ErrQuoteNotFollowed
					}
					break token
				default:
					cur = append(cur, c)
					i++
				}
			default:
				if i == len(line) {
					break token
				}
				switch c := line[i]; c {
				case ' ', '\t', '\n', '\r':
					break token
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					cur = append(cur, c)
				}
				i++
			}
		}
		args = append(args, string(cur))
	}
}

// isBlank is C's isspace, which Redis uses between arguments.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Quote returns s as one argument that SplitArgs reads back as s: s itself
// when it needs no quoting, else in double quotes with escapes.
func Quote(s string) string {
	plain := s != "" && s[0] != '#'
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '\\'
	}
	if plain {
		return s
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < ' ' || c >= 0x7f {
				b = append(b, fmt.Sprintf(`\x%02x`, c)...)
			} else {
				b = append(b, c)
			}
		}
	}
	return string(append(b, '"'))
}

// Alias is a directive of redis.conf that stands for one of our flags.
type Alias struct {
	Name string // the directive, lower case
	Flag string // the flag it sets
	// Value turns the directive's argument into the flag's value, given the
	// flag's value so far (its default, or what earlier lines made it); nil
	// takes the argument as it is.
	Value func(arg, cur string) (string, error)
	// Words says the directive takes several arguments, given to Value
	// joined by single spaces (client-output-buffer-limit's class and three
	// limits).
	Words bool
}

// Redis is the redis.conf directives shardkv understands. Each applies only
// to a binary that has its flag: the proxy has no -dir, so `dir` in the
// proxy's file is an unknown directive there.
var Redis = []Alias{
	{Name: "port", Flag: "addr", Value: port},
	{Name: "bind", Flag: "addr", Value: bind},
	{Name: "dir", Flag: "dir"},
	{Name: "appendfsync", Flag: "appendfsync"},
	{Name: "requirepass", Flag: "requirepass"},
	{Name: "maxclients", Flag: "maxclients"},
	{Name: "loglevel", Flag: "log-level", Value: logLevel},
	// One line per class in redis.conf; each line adds its class to what
	// the lines before set, as CONFIG SET of all of them would.
	{Name: "client-output-buffer-limit", Flag: "client-output-buffer-limit", Value: appendWords, Words: true},
}

// appendWords adds a line's words to the flag's value so far.
func appendWords(arg, cur string) (string, error) {
	if cur == "" {
		return arg, nil
	}
	return cur + " " + arg, nil
}

// port replaces the port of a host:port.
func port(arg, cur string) (string, error) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q: want a TCP port in 1..65535 (shardkv always listens on TCP)", arg)
	}
	host, _, err := net.SplitHostPort(cur)
	if err != nil {
		return "", fmt.Errorf("port: the address so far, %q, is not host:port: %v", cur, err)
	}
	return net.JoinHostPort(host, arg), nil
}

// bind replaces the host of a host:port. Redis binds several addresses;
// a shardkv server listens on one.
func bind(arg, cur string) (string, error) {
	if arg == "" || strings.ContainsAny(arg, " \t") {
		return "", fmt.Errorf("bind %q: want one address", arg)
	}
	_, p, err := net.SplitHostPort(cur)
	if err != nil {
		return "", fmt.Errorf("bind: the address so far, %q, is not host:port: %v", cur, err)
	}
	return net.JoinHostPort(arg, p), nil
}

// logLevel maps Redis's log levels onto hclog's and passes hclog's own
// through.
func logLevel(arg, _ string) (string, error) {
	switch strings.ToLower(arg) {
	case "debug", "verbose":
		return "debug", nil
	case "notice":
		return "info", nil
	case "warning":
		return "warn", nil
	case "nothing":
		return "off", nil
	}
	return arg, nil
}

// Load reads the file at path and applies it to fs, which must have parsed
// the command line already: the flags set there keep their values. More
// aliases (a binary's own) may be given; the flags named in skip cannot be
// set from a file (-config itself, -version).
func Load(fs *flag.FlagSet, path string, aliases []Alias, skip ...string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	lines, err := Parse(f)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return err
	}
	return Apply(fs, path, lines, aliases, skip...)
}

// Apply sets the flags of fs from lines; file names them in errors.
func Apply(fs *flag.FlagSet, file string, lines []Line, aliases []Alias, skip ...string) error {
	fromCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromCommandLine[f.Name] = true })
	known := map[string]Alias{}
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(skip, f.Name) {
			known[f.Name] = Alias{Name: f.Name, Flag: f.Name}
		}
	})
	for _, a := range aliases {
		if fs.Lookup(a.Flag) != nil && !slices.Contains(skip, a.Flag) {
			known[a.Name] = a
		}
	}
	for _, l := range lines {
		fail := func(format string, args ...any) error {
			return &Error{File: file, Line: l.Num, Msg: fmt.Sprintf(format, args...)}
		}
		a, ok := known[l.Name]
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			slices.Sort(names)
			return fail("unknown directive %q (%s reads: %s)", l.Name, fs.Name(), strings.Join(names, ", "))
		}
		v := ""
		switch {
		case a.Words && len(l.Args) > 0:
			v = strings.Join(l.Args, " ")
		case len(l.Args) != 1:
			return fail("%s takes one argument, got %d", l.Name, len(l.Args))
		default:
			v = l.Args[0]
		}
		if fromCommandLine[a.Flag] {
			continue
		}
		f := fs.Lookup(a.Flag)
		if a.Value != nil {
			var err error
			if v, err = a.Value(v, f.Value.String()); err != nil {
				return fail("%v", err)
			}
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			// redis.conf's booleans.
			switch strings.ToLower(v) {
			case "yes":
				v = "true"
			case "no":
				v = "false"
			}
		}
		if err := fs.Set(a.Flag, v); err != nil {
			return fail("%s %s: %v", l.Name, Quote(strings.Join(l.Args, " ")), err)
		}
	}
	return nil
}
