package conncmd

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/resp"
)

var configHelp = []string{
	"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
	"SET <directive> <value>", "    Set the configuration <directive> to <value>.",
	"RESETSTAT", "    Reset statistics reported by the INFO command.",
	"REWRITE", "    Rewrite the configuration file.",
}

// Config is CONFIG GET|SET|RESETSTAT|REWRITE|HELP over the Host's Params.
func Config(h Host, c Conn, out []byte, args [][]byte) []byte {
	proto := c.Session().Proto
	sub := strings.ToLower(string(args[1]))
	arityErr := func() []byte { return resp.AppendError(out, cmdtable.ErrWrongArity("config|"+sub)) }
	params := h.ConfigParams()
	find := func(name []byte) *Param {
		for i := range params {
			if strings.EqualFold(string(name), params[i].Name) {
				return &params[i]
			}
		}
		return nil
	}
	switch sub {
	case "get":
		// A name without glob characters is looked up and replied as the
		// client spelled it, as Redis does.
		type match struct {
			p    *Param
			name string
		}
		var matched []match
		seen := func(p *Param) bool {
			for _, m := range matched {
				if m.p == p {
					return true
				}
			}
			return false
		}
		for _, pat := range args[2:] {
			if bytes.IndexAny(pat, "*?[") < 0 {
				if p := find(pat); p != nil && !seen(p) {
					matched = append(matched, match{p, string(pat)})
				}
				continue
			}
			for i := range params {
				p := &params[i]
				if !seen(p) && glob.Match(pat, []byte(p.Name), true) {
					matched = append(matched, match{p, p.Name})
				}
			}
		}
		out = resp.AppendMap(out, proto, len(matched))
		for _, m := range matched {
			out = resp.AppendBulkString(out, m.name)
			out = resp.AppendBulkString(out, m.p.Get())
		}
		return out
	case "set":
		if len(args)%2 != 0 { // the table's arity -4 says nothing of pairs
			return arityErr()
		}
		failed := func(name, reason string) []byte {
			return resp.AppendError(out, "ERR CONFIG SET failed (possibly related to argument '"+name+"') - "+reason)
		}
		// Check every pair before applying any, as Redis does.
		for i := 2; i < len(args); i += 2 {
			p := find(args[i])
			if p == nil {
				return resp.AppendError(out, "ERR Unknown option or number of arguments for CONFIG SET - '"+string(args[i])+"'")
			}
			if p.Set == nil {
				return failed(p.Name, "can't set immutable config")
			}
			if p.Check != nil {
				if reason := p.Check(args[i+1]); reason != "" {
					return failed(p.Name, reason)
				}
			}
		}
		for i := 2; i < len(args); i += 2 {
			find(args[i]).Set(args[i+1])
		}
		return resp.AppendOK(out)
	case "resetstat":
		h.ResetStats()
		return resp.AppendOK(out)
	case "rewrite":
		return resp.AppendError(out, "ERR The server is running without a config file")
	case "help":
		return AppendHelp(out, "CONFIG", configHelp)
	}
	return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("config", string(args[1])))
}

// ParseMemory is Redis's memtoull: digits with an optional unit b, k, kb,
// m, mb, g, gb (k = 1000, kb = 1024, ...), case-insensitive.
func ParseMemory(v []byte) (int64, bool) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, false
	}
	m, ok := memUnit(v[i:])
	if !ok {
		return 0, false
	}
	mul := int64(m)
	n, err := strconv.ParseInt(string(v[:i]), 10, 64)
	if err != nil || n > (1<<62)/mul {
		return 0, false
	}
	return n * mul, true
}

// memUnit is the multiplier of a memory value's unit in Redis's memtoull:
// none or b, k, kb, m, mb, g, gb (k = 1000, kb = 1024, ...),
// case-insensitive.
func memUnit(u []byte) (uint64, bool) {
	switch strings.ToLower(string(u)) {
	case "", "b":
		return 1, true
	case "k":
		return 1000, true
	case "kb":
		return 1024, true
	case "m":
		return 1000 * 1000, true
	case "mb":
		return 1024 * 1024, true
	case "g":
		return 1000 * 1000 * 1000, true
	case "gb":
		return 1024 * 1024 * 1024, true
	}
	return 0, false
}

// Const is a Param whose value never changes.
func Const(name, value string) Param {
	return Param{Name: name, Get: func() string { return value }}
}
