package cmdtable

import (
	"strconv"
	"strings"
)

// canonicalInt parses b as Redis's string2ll does: an optional '-', no
// '+', no leading zeros, no spaces, within int64.
func canonicalInt(b []byte) (int64, bool) {
	s := string(b)
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 1 && d[0] == '0' || d[0] < '0' || d[0] > '9' || s == "-0" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ParseSInterCard reads SINTERCARD numkeys key [key ...] [LIMIT limit]
// (args[0] the command name): its keys and limit (0 for none), or Redis's
// error. The node and the proxy read it the same way.
func ParseSInterCard(args [][]byte) (keys [][]byte, limit int64, msg string) {
	n, ok := canonicalInt(args[1])
	if !ok || n <= 0 {
		return nil, 0, "ERR numkeys should be greater than 0"
	}
	if n > int64(len(args)-2) {
		return nil, 0, "ERR Number of keys can't be greater than number of args"
	}
	keys = args[2 : 2+n]
	for i := 2 + int(n); i < len(args); i += 2 {
		if !strings.EqualFold(string(args[i]), "limit") || i+1 >= len(args) {
			return nil, 0, "ERR syntax error"
		}
		if limit, ok = canonicalInt(args[i+1]); !ok || limit < 0 {
			return nil, 0, "ERR LIMIT can't be negative"
		}
	}
	return keys, limit, ""
}
