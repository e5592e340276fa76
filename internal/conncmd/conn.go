package conncmd

import (
	"bytes"
	"crypto/subtle"
	"strconv"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// Reply texts of the connection commands, Redis's own.
const (
	ErrSyntax     = "ERR syntax error"
	ErrNotInteger = "ERR value is not an integer or out of range"
	ErrWrongPass  = "WRONGPASS invalid username-password pair or user is disabled."
	ErrNoAuth     = "NOAUTH Authentication required."
	errDBRange    = "ERR DB index is out of range"
	errIntRange   = "ERR value is out of range, value must between -2147483648 and 2147483647"
	errNoPassword = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errHelloAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	errBadName    = "ERR Client names cannot contain spaces, newlines or special characters."
)

// Ping is PING [message]. A RESP2 connection in subscribed mode gets
// Redis's ["pong", message] array instead (its replies must look like
// messages).
func Ping(h Host, c Conn, out []byte, args [][]byte) []byte {
	if s := c.Session(); s.Proto == resp.RESP2 && s.Subscribed() && len(args) <= 2 {
		out = resp.AppendArray(out, 2)
		out = resp.AppendBulkString(out, "pong")
		if len(args) == 2 {
			return resp.AppendBulk(out, args[1])
		}
		return resp.AppendBulkString(out, "")
	}
	switch len(args) {
	case 1:
		return append(out, "+PONG\r\n"...)
	case 2:
		return resp.AppendBulk(out, args[1])
	}
	return resp.AppendError(out, cmdtable.ErrWrongArity("ping"))
}

// Echo is ECHO message.
func Echo(h Host, c Conn, out []byte, args [][]byte) []byte {
	return resp.AppendBulk(out, args[1])
}

// Quit replies OK and has the server close the connection after the
// batch's replies.
func Quit(h Host, c Conn, out []byte, args [][]byte) []byte {
	c.Session().Quit = true
	return resp.AppendOK(out)
}

// Reset is RESET: the connection as it was when it connected.
func Reset(h Host, c Conn, out []byte, args [][]byte) []byte {
	s := c.Session()
	c.ResetConn()
	if s.Proto != resp.RESP2 {
		c.SwitchProto(resp.RESP2)
	}
	s.reset(h.RequirePass())
	return resp.AppendSimple(out, "RESET")
}

// Select is SELECT index.
func Select(h Host, c Conn, out []byte, args [][]byte) []byte {
	n, err := strconv.ParseInt(string(args[1]), 10, 64)
	switch {
	case err != nil:
		return resp.AppendError(out, ErrNotInteger)
	case n < -1<<31 || n > 1<<31-1:
		return resp.AppendError(out, errIntRange)
	case n < 0 || n >= int64(h.Databases()):
		return resp.AppendError(out, errDBRange)
	}
	c.Session().db.Store(int32(n))
	return resp.AppendOK(out)
}

// ErrSwapDB is SWAPDB's refusal: a database is spread over every shard,
// and swapping two atomically would take a transaction across all of
// them.
const ErrSwapDB = "ERR SWAPDB is not supported: each database is spread over every shard, and swapping two cannot be made atomic without a transaction across the shards"

// SwapDB is SWAPDB index1 index2: Redis's argument checks, then ErrSwapDB.
func SwapDB(h Host, c Conn, out []byte, args [][]byte) []byte {
	if _, err := strconv.ParseInt(string(args[1]), 10, 32); err != nil {
		return resp.AppendError(out, "ERR invalid first DB index")
	}
	if _, err := strconv.ParseInt(string(args[2]), 10, 32); err != nil {
		return resp.AppendError(out, "ERR invalid second DB index")
	}
	for _, a := range args[1:] {
		if n, _ := strconv.ParseInt(string(a), 10, 32); n < 0 || n >= int64(h.Databases()) {
			return resp.AppendError(out, errDBRange)
		}
	}
	return resp.AppendError(out, ErrSwapDB)
}

// ErrSelectInMulti refuses, inside MULTI, a SELECT of another database
// than the connection's: shardkv runs a transaction in one database.
const ErrSelectInMulti = "ERR SELECT of another database inside MULTI is not supported: a transaction runs in the database selected when MULTI began"

// RefuseInMulti is the error for a command Redis would queue inside MULTI
// that shardkv refuses at queue time instead, "" for any other: SELECT of
// another database than the session's (a valid index other than cur),
// after which Redis would run the rest of the transaction there. The proxy
// sends a transaction to one node connection, which is in one database,
// so it gets ErrSelectInMulti at once and EXEC aborts rather than run the
// commands after it in the wrong database. SELECT of the current database
// queues and, at EXEC, replies +OK; an index Redis would refuse at EXEC
// too (16, -1, "x") queues and gets Redis's error there.
func RefuseInMulti(ci *cmdtable.Command, args [][]byte, cur int) string {
	if ci.Name != "select" || len(args) != 2 {
		return ""
	}
	if n, err := strconv.ParseInt(string(args[1]), 10, 64); err == nil && n >= 0 && n < Databases && n != int64(cur) {
		return ErrSelectInMulti
	}
	return ""
}

// authenticate checks a user and password the way Redis's default user
// does: with a password, user "default" and that password; without one,
// the default user takes any password. "default" is the only user.
func authenticate(h Host, user, pass []byte) bool {
	if string(user) != "default" {
		return false
	}
	want := h.RequirePass()
	return want == "" || subtle.ConstantTimeCompare(pass, []byte(want)) == 1
}

// Auth is AUTH [username] password.
func Auth(h Host, c Conn, out []byte, args [][]byte) []byte {
	switch {
	case len(args) > 3:
		return resp.AppendError(out, ErrSyntax)
	case len(args) == 2 && h.RequirePass() == "":
		return resp.AppendError(out, errNoPassword)
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if !authenticate(h, user, pass) {
		return resp.AppendError(out, ErrWrongPass)
	}
	c.Session().Authed = true
	return resp.AppendOK(out)
}

// Hello is HELLO [protover [AUTH username password] [SETNAME clientname]].
func Hello(h Host, c Conn, out []byte, args [][]byte) []byte {
	s := c.Session()
	proto := s.Proto
	next := 1
	if len(args) >= 2 {
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil {
			return resp.AppendError(out, "ERR Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return resp.AppendError(out, "NOPROTO unsupported protocol version")
		}
		proto, next = resp.Proto(v), 2
	}
	var user, pass, name []byte
	hasAuth, hasName := false, false
	for j := next; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case bytes.EqualFold(args[j], []byte("auth")) && more >= 2:
			user, pass, hasAuth = args[j+1], args[j+2], true
			j += 2
		case bytes.EqualFold(args[j], []byte("setname")) && more >= 1:
			name, hasName = args[j+1], true
			j++
		default:
			return resp.AppendError(out, "ERR Syntax error in HELLO option '"+string(args[j])+"'")
		}
	}
	if hasAuth {
		if !authenticate(h, user, pass) {
			return resp.AppendError(out, ErrWrongPass)
		}
		s.Authed = true
	}
	if !s.Authed {
		return resp.AppendError(out, errHelloAuth)
	}
	if hasName {
		if !ValidName(name) {
			return resp.AppendError(out, errBadName)
		}
		s.setName(name)
	}
	if proto != s.Proto {
		c.SwitchProto(proto)
		s.Proto = proto
	}
	s.protoSeen.Store(int32(proto))
	out = resp.AppendMap(out, s.Proto, 7)
	out = resp.AppendBulkString(out, "server")
	out = resp.AppendBulkString(out, "redis")
	out = resp.AppendBulkString(out, "version")
	out = resp.AppendBulkString(out, RedisVersion)
	out = resp.AppendBulkString(out, "proto")
	out = resp.AppendInt(out, int64(s.Proto))
	out = resp.AppendBulkString(out, "id")
	out = resp.AppendInt(out, s.ID)
	out = resp.AppendBulkString(out, "mode")
	out = resp.AppendBulkString(out, "standalone")
	out = resp.AppendBulkString(out, "role")
	role := "master"
	if r, ok := h.(Roler); ok {
		role = r.Role()
	}
	out = resp.AppendBulkString(out, role)
	out = resp.AppendBulkString(out, "modules")
	return resp.AppendArray(out, 0)
}

// ValidName is Redis's rule for client names and library attributes:
// printable ASCII without spaces.
func ValidName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

// Time is TIME: seconds and microseconds, as two bulk strings.
func Time(h Host, c Conn, out []byte, args [][]byte) []byte {
	now := time.Now()
	var buf [20]byte
	out = resp.AppendArray(out, 2)
	out = resp.AppendBulk(out, strconv.AppendInt(buf[:0], now.Unix(), 10))
	return resp.AppendBulk(out, strconv.AppendInt(buf[:0], int64(now.Nanosecond()/1000), 10))
}

// AppendHelp appends a HELP reply in Redis's shape: the first line, the
// lines given, then HELP itself. The proxy's CLUSTER HELP uses it too.
func AppendHelp(out []byte, cmd string, lines []string) []byte {
	out = resp.AppendArray(out, len(lines)+3) // the first line, lines, HELP and its line
	out = resp.AppendSimple(out, cmd+" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, l := range lines {
		out = resp.AppendSimple(out, l)
	}
	out = resp.AppendSimple(out, "HELP")
	return resp.AppendSimple(out, "    Prints this help.")
}
