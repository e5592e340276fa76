package shardnode

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// A script is a sequence of commands, each with the exact reply Redis 7
// gives, on one connection or, for what one client sees of another's
// writes (WATCH), on a second one too (step.by). Every script runs against
// an in-process node in RESP2 and in RESP3 (TestCommandScripts), and, when
// redis-server is on PATH, against Redis itself
// (TestCommandScriptsMatchRedis) so that the expectations are Redis's, not
// ours.
type step struct {
	args []string
	// want is the RESP2 reply; a "re:" prefix makes it a regular
	// expression.
	want string
	// want3 is the RESP3 reply when it is more than want with nulls
	// spelled "_".
	want3 string
	// unordered: an array whose elements may come in any order.
	unordered bool
	// pairs: with unordered, the elements are compared as (field, value)
	// pairs (HGETALL, a map in RESP3).
	pairs bool
	// noRedis: not compared with redis-server (shardkv-specific, or Redis
	// 7.2 behaviour that a 7.0 server lacks, or values that differ by
	// design such as ids).
	noRedis bool
	// conn is the connection the step runs on: 0, the script's first, or
	// 1, a second one opened when a step first needs it.
	conn int
	// pause, when set, makes the step a wait instead of a command (for
	// keys to expire).
	pause time.Duration
}

type script struct {
	name    string
	steps   []step
	noRedis bool
}

func x(want string, args ...string) step { return step{args: args, want: want} }
func x3(want, want3 string, args ...string) step {
	return step{args: args, want: want, want3: want3}
}
func (s step) anyOrder() step { s.unordered = true; return s }
func (s step) anyPairs() step { s.unordered, s.pairs = true, true; return s }
func (s step) nodiff() step   { s.noRedis = true; return s }

// by runs the step on the script's second connection.
func (s step) by(conn int) step { s.conn = conn; return s }

// helpArr is a HELP subcommand's reply: its lines as status replies.
func helpArr(lines []string) string {
	out := "*" + strconv.Itoa(len(lines)) + "\r\n"
	for _, l := range lines {
		out += "+" + l + "\r\n"
	}
	return out
}

// lastCmdOf is CLIENT LIST, whose line for the connection named name
// shows cmd as its last command.
func lastCmdOf(name, cmd string) step {
	line := "[^\n]* name=" + name + " [^\n]* cmd=" + regexp.QuoteMeta(cmd) + " [^\n]*\n"
	return x3("re:^\\$\\d+\r\n(?:[^\n]*\n)*"+line+"(?:[^\n]*\n)*\r\n$",
		"re:^=\\d+\r\ntxt:(?:[^\n]*\n)*"+line+"(?:[^\n]*\n)*\r\n$", "CLIENT", "LIST")
}

// wait is a step that only waits.
func wait(d time.Duration) step { return step{pause: d} }

const (
	ok        = "+OK\r\n"
	nul       = "$-1\r\n"
	nilArr    = "*-1\r\n"
	qd        = "+QUEUED\r\n"
	execAbort = "-EXECABORT Transaction discarded because of previous errors.\r\n"
	syn       = "-ERR syntax error\r\n"
	nai       = "-ERR value is not an integer or out of range\r\n"
)

func in(n int64) string  { return ":" + strconv.FormatInt(n, 10) + "\r\n" }
func bs(s string) string { return bulkStr(s) }
func er(s string) string { return errStr(s) }
func arr(elems ...string) string {
	return "*" + strconv.Itoa(len(elems)) + "\r\n" + strings.Join(elems, "")
}
func arity(cmd string) string { return er("ERR wrong number of arguments for '" + cmd + "' command") }
func badExpire(cmd string) string {
	return er("ERR invalid expire time in '" + cmd + "' command")
}

var scripts = []script{
	{name: "get", steps: []step{
		x(ok, "SET", "k", "v"),
		x(bs("v"), "GET", "k"),
		x(nul, "GET", "missing"),
		x(arity("get"), "GET"),
		x(arity("get"), "get", "a", "b"),
		x(ok, "SET", "i", "12345"),
		x(bs("12345"), "GET", "i"),
		x(ok, "SET", "e", ""),
		x(bs(""), "GET", "e"),
	}},
	{name: "set options", steps: []step{
		x(ok, "SET", "k", "v"),
		x(nul, "SET", "k", "v2", "NX"),
		x(ok, "SET", "k", "v2", "XX"),
		x(nul, "SET", "n", "v", "XX"),
		x(ok, "set", "n", "v", "nx"),
		x(syn, "SET", "k", "v", "NX", "XX"),
		x(syn, "SET", "k", "v", "XX", "NX"),
		x(syn, "SET", "k", "v", "EX", "10", "PX", "100"),
		x(syn, "SET", "k", "v", "KEEPTTL", "EX", "10"),
		x(syn, "SET", "k", "v", "EX", "10", "KEEPTTL"),
		x(syn, "SET", "k", "v", "EX"),
		x(syn, "SET", "k", "v", "FOO"),
		x(nai, "SET", "k", "v", "EX", "abc"),
		x(nai, "SET", "k", "v", "EX", "1.5"),
		x(badExpire("set"), "SET", "k", "v", "EX", "0"),
		x(badExpire("set"), "SET", "k", "v", "PX", "-1"),
		x(badExpire("set"), "SET", "k", "v", "EX", "9223372036854775807"),
		x(badExpire("set"), "SET", "k", "v", "PX", "9223372036854775807"),
		x(badExpire("set"), "SET", "k", "v", "EXAT", "0"),
		x(ok, "SET", "k", "v", "EX", "100"),
		x(in(100), "TTL", "k"),
		x(ok, "SET", "k", "v3", "KEEPTTL"),
		x(in(100), "TTL", "k"),
		x(ok, "SET", "k", "v4"),
		x(in(-1), "TTL", "k"),
		x(ok, "SET", "k", "v", "EX", "5", "EX", "200"),
		x(in(200), "TTL", "k"),
		x(ok, "SET", "k", "v", "PXAT", "4102444800000"),
		x(in(4102444800), "EXPIRETIME", "k"),
		x(ok, "SET", "k", "v", "EXAT", "4102444800"),
		x(in(4102444800000), "PEXPIRETIME", "k"),
		// The largest expiry: EXPIRETIME rounds without overflowing.
		x(in(1), "PEXPIREAT", "k", "9223372036854775807"),
		x(in(9223372036854776), "EXPIRETIME", "k"),
		x(in(9223372036854775807), "PEXPIRETIME", "k"),
		x(ok, "SET", "k", "v", "EXAT", "1"),
		x(nul, "GET", "k"),
		x(arity("set"), "SET", "k"),
	}},
	{name: "set get", steps: []step{
		x(nul, "SET", "k", "a", "GET"),
		x(bs("a"), "SET", "k", "b", "GET"),
		x(bs("b"), "GET", "k"),
		x(bs("b"), "SET", "k", "c", "NX", "GET"),
		x(bs("b"), "GET", "k"),
		x(bs("b"), "SET", "k", "c", "XX", "GET"),
		x(nul, "SET", "other", "c", "XX", "GET"),
		x(in(0), "EXISTS", "other"),
	}},
	{name: "setnx setex psetex", steps: []step{
		x(in(1), "SETNX", "k", "v"),
		x(in(0), "SETNX", "k", "w"),
		x(bs("v"), "GET", "k"),
		x(arity("setnx"), "SETNX", "k"),
		x(ok, "SETEX", "k", "100", "v"),
		x(in(100), "TTL", "k"),
		x(badExpire("setex"), "SETEX", "k", "0", "v"),
		x(badExpire("setex"), "SETEX", "k", "-5", "v"),
		x(nai, "SETEX", "k", "x", "v"),
		x(arity("setex"), "SETEX", "k", "10"),
		x(ok, "PSETEX", "k", "100000", "v"),
		x(in(100), "TTL", "k"),
		x(badExpire("psetex"), "PSETEX", "k", "0", "v"),
		x(nai, "PSETEX", "k", "", "v"),
	}},
	{name: "getdel getex getset", steps: []step{
		x(ok, "SET", "k", "v"),
		x(bs("v"), "GETDEL", "k"),
		x(nul, "GETDEL", "k"),
		x(in(0), "EXISTS", "k"),
		x(arity("getdel"), "GETDEL"),
		x(ok, "SET", "k", "v"),
		x(bs("v"), "GETEX", "k"),
		x(bs("v"), "GETEX", "k", "EX", "100"),
		x(in(100), "TTL", "k"),
		x(bs("v"), "GETEX", "k", "PERSIST"),
		x(in(-1), "TTL", "k"),
		x(bs("v"), "GETEX", "k", "PX", "100000"),
		x(in(100), "TTL", "k"),
		x(bs("v"), "GETEX", "k", "EXAT", "4102444800"),
		x(in(4102444800), "EXPIRETIME", "k"),
		x(badExpire("getex"), "GETEX", "k", "EX", "0"),
		x(nai, "GETEX", "k", "EX", "abc"),
		x(syn, "GETEX", "k", "PERSIST", "EX", "1"),
		x(syn, "GETEX", "k", "EX", "1", "PX", "1"),
		x(syn, "GETEX", "k", "FOO"),
		x(syn, "GETEX", "k", "KEEPTTL"),
		x(nul, "GETEX", "missing", "EX", "10"),
		x(bs("v"), "GETEX", "k", "PXAT", "1"),
		x(in(0), "EXISTS", "k"),
		x(nul, "GETSET", "k", "v1"),
		x(in(1), "EXPIRE", "k", "100"),
		x(bs("v1"), "GETSET", "k", "v2"),
		x(in(-1), "TTL", "k"),
		x(arity("getset"), "GETSET", "k"),
	}},
	{name: "mget mset msetnx", steps: []step{
		x(ok, "MSET", "a", "1", "b", "2"),
		x(arr(bs("1"), bs("2"), nul), "MGET", "a", "b", "c"),
		x(arity("mget"), "MGET"),
		x(arity("mset"), "MSET", "a"),
		x(arity("mset"), "MSET", "a", "1", "b"),
		x(in(1), "EXPIRE", "a", "100"),
		x(ok, "MSET", "a", "3"),
		x(in(-1), "TTL", "a"),
		x(in(1), "MSETNX", "x", "1", "y", "2"),
		x(in(0), "MSETNX", "x", "1", "z", "3"),
		x(in(0), "EXISTS", "z"),
		x(arity("msetnx"), "MSETNX", "x", "1", "y"),
	}},
	{name: "append strlen", steps: []step{
		x(in(5), "APPEND", "k", "hello"),
		x(in(11), "APPEND", "k", " world"),
		x(bs("hello world"), "GET", "k"),
		x(in(11), "STRLEN", "k"),
		x(in(0), "STRLEN", "missing"),
		x(in(1), "EXPIRE", "k", "100"),
		x(in(12), "APPEND", "k", "!"),
		x(in(100), "TTL", "k"),
		x(ok, "SET", "n", "10"),
		x(in(3), "APPEND", "n", "0"),
		x(in(101), "INCR", "n"),
		x(arity("append"), "APPEND", "k"),
		x(arity("strlen"), "STRLEN"),
	}},
	{name: "getrange setrange", steps: []step{
		x(ok, "SET", "k", "This is a string"),
		x(bs("This"), "GETRANGE", "k", "0", "3"),
		x(bs("ing"), "GETRANGE", "k", "-3", "-1"),
		x(bs("This is a string"), "GETRANGE", "k", "0", "-1"),
		x(bs("string"), "GETRANGE", "k", "10", "100"),
		x(bs(""), "GETRANGE", "k", "5", "3"),
		x(bs(""), "GETRANGE", "k", "-1", "-5"),
		x(bs("T"), "GETRANGE", "k", "-100", "0"),
		x(bs(""), "GETRANGE", "missing", "0", "-1"),
		x(nai, "GETRANGE", "k", "x", "1"),
		x(nai, "GETRANGE", "k", "0", "1.5"),
		x(ok, "SET", "k", "Hello World"),
		x(in(11), "SETRANGE", "k", "6", "Redis"),
		x(bs("Hello Redis"), "GET", "k"),
		x(in(6), "SETRANGE", "new", "5", "x"),
		x(bs("\x00\x00\x00\x00\x00x"), "GET", "new"),
		x(er("ERR offset is out of range"), "SETRANGE", "k", "-1", "x"),
		x(er("ERR string exceeds maximum allowed size (proto-max-bulk-len)"), "SETRANGE", "k", "536870912", "x"),
		x(er("ERR string exceeds maximum allowed size (proto-max-bulk-len)"), "SETRANGE", "k", "536870911", "xy"),
		x(in(0), "SETRANGE", "none", "0", ""),
		x(in(0), "EXISTS", "none"),
		x(in(11), "SETRANGE", "k", "100", ""),
		x(nai, "SETRANGE", "k", "abc", "x"),
		x(arity("setrange"), "SETRANGE", "k", "1"),
	}},
	{name: "incr decr", steps: []step{
		x(ok, "SET", "n", "10"),
		x(in(11), "INCR", "n"),
		x(in(10), "DECR", "n"),
		x(in(15), "INCRBY", "n", "5"),
		x(in(-5), "DECRBY", "n", "20"),
		x(in(1), "INCR", "new"),
		x(in(-1), "DECR", "new2"),
		x(nai, "INCRBY", "n", "x"),
		x(nai, "INCRBY", "n", "1.5"),
		x(nai, "INCRBY", "n", "99999999999999999999"),
		x(ok, "SET", "s", "abc"),
		x(nai, "INCR", "s"),
		x(ok, "SET", "s", " 1"),
		x(nai, "INCR", "s"),
		x(ok, "SET", "s", "01"),
		x(nai, "INCR", "s"),
		x(ok, "SET", "s", "+1"),
		x(nai, "INCR", "s"),
		x(ok, "SET", "big", "9223372036854775807"),
		x(er("ERR increment or decrement would overflow"), "INCR", "big"),
		x(er("ERR increment or decrement would overflow"), "INCRBY", "big", "1"),
		x(ok, "SET", "small", "-9223372036854775808"),
		x(er("ERR increment or decrement would overflow"), "DECR", "small"),
		x(er("ERR decrement would overflow"), "DECRBY", "n", "-9223372036854775808"),
		x(in(9223372036854775802), "DECRBY", "big", "5"),
		x(in(1), "EXPIRE", "n", "100"),
		x(in(-4), "INCR", "n"),
		x(in(100), "TTL", "n"),
		x(arity("incr"), "INCR"),
		x(arity("incrby"), "INCRBY", "n"),
	}},
	{name: "incrbyfloat", steps: []step{
		x(ok, "SET", "f", "10.50"),
		x(bs("10.6"), "INCRBYFLOAT", "f", "0.1"),
		x(bs("5.6"), "INCRBYFLOAT", "f", "-5"),
		x(ok, "SET", "f", "5.0e3"),
		x(bs("5200"), "INCRBYFLOAT", "f", "2.0e2"),
		x(ok, "SET", "f", "0.1"),
		x(bs("0.3"), "INCRBYFLOAT", "f", "0.2"),
		x(bs("3"), "INCRBYFLOAT", "g", "3"),
		x(bs("-1.5"), "INCRBYFLOAT", "h", "-1.5"),
		x(bs("0"), "INCRBYFLOAT", "h", "1.5"),
		x(bs("1"), "INCRBYFLOAT", "x", "0x1"),
		x(er("ERR value is not a valid float"), "INCRBYFLOAT", "f", "abc"),
		x(er("ERR value is not a valid float"), "INCRBYFLOAT", "f", "nan"),
		x(er("ERR value is not a valid float"), "INCRBYFLOAT", "f", " 1"),
		x(er("ERR value is not a valid float"), "INCRBYFLOAT", "f", ""),
		x(er("ERR increment would produce NaN or Infinity"), "INCRBYFLOAT", "f", "inf"),
		x(ok, "SET", "s", "abc"),
		x(er("ERR value is not a valid float"), "INCRBYFLOAT", "s", "1"),
		x(bs("1000000000000000000024696061952"), "INCRBYFLOAT", "big", "1e30"),
		x(in(1), "EXPIRE", "f", "100"),
		x(bs("1.3"), "INCRBYFLOAT", "f", "1"),
		x(in(100), "TTL", "f"),
		x(arity("incrbyfloat"), "INCRBYFLOAT", "f"),
	}},
	{name: "del exists touch type", steps: []step{
		x(ok, "MSET", "a", "1", "b", "2"),
		x(in(3), "EXISTS", "a", "a", "b", "c"),
		x(in(2), "TOUCH", "a", "b", "c"),
		x("+string\r\n", "TYPE", "a"),
		x("+none\r\n", "TYPE", "c"),
		x(in(2), "DEL", "a", "b", "c"),
		x(in(0), "DEL", "a"),
		x(ok, "SET", "a", "1"),
		x(in(1), "UNLINK", "a", "a"),
		x(arity("del"), "DEL"),
		x(arity("exists"), "EXISTS"),
		x(arity("type"), "TYPE"),
	}},
	{name: "expire family", steps: []step{
		x(ok, "SET", "k", "v"),
		x(in(0), "EXPIRE", "missing", "100"),
		x(in(0), "EXPIRE", "k", "100", "XX"),
		x(in(0), "EXPIRE", "k", "100", "GT"),
		x(in(1), "EXPIRE", "k", "100", "LT"),
		x(in(0), "EXPIRE", "k", "100", "NX"),
		x(in(1), "EXPIRE", "k", "200", "XX"),
		x(in(0), "EXPIRE", "k", "50", "GT"),
		x(in(1), "EXPIRE", "k", "300", "GT"),
		x(in(0), "EXPIRE", "k", "400", "LT"),
		x(in(1), "EXPIRE", "k", "250", "lt"),
		x(in(250), "TTL", "k"),
		x(er("ERR NX and XX, GT or LT options at the same time are not compatible"), "EXPIRE", "k", "10", "NX", "XX"),
		x(er("ERR NX and XX, GT or LT options at the same time are not compatible"), "EXPIRE", "k", "10", "GT", "NX"),
		x(er("ERR GT and LT options at the same time are not compatible"), "EXPIRE", "k", "10", "GT", "LT"),
		x(er("ERR Unsupported option FOO"), "EXPIRE", "k", "10", "FOO"),
		x(er("ERR Unsupported option FOO"), "EXPIRE", "k", "abc", "FOO"),
		x(nai, "EXPIRE", "k", "abc"),
		x(badExpire("expire"), "EXPIRE", "k", "9223372036854775807"),
		x(badExpire("pexpire"), "PEXPIRE", "k", "9223372036854775807"),
		x(in(1), "PEXPIRE", "k", "100000"),
		x(in(100), "TTL", "k"),
		x(in(1), "EXPIREAT", "k", "4102444800"),
		x(in(4102444800), "EXPIRETIME", "k"),
		x(in(4102444800000), "PEXPIRETIME", "k"),
		x(in(1), "PEXPIREAT", "k", "4102444800123"),
		x(in(4102444800123), "PEXPIRETIME", "k"),
		x(in(4102444800), "EXPIRETIME", "k"),
		x(in(1), "PERSIST", "k"),
		x(in(0), "PERSIST", "k"),
		x(in(0), "PERSIST", "missing"),
		x(in(-1), "TTL", "k"),
		x(in(-1), "PTTL", "k"),
		x(in(-1), "EXPIRETIME", "k"),
		x(in(-2), "TTL", "missing"),
		x(in(-2), "PTTL", "missing"),
		x(in(-2), "EXPIRETIME", "missing"),
		x(in(-2), "PEXPIRETIME", "missing"),
		x(in(1), "EXPIRE", "k", "-1"),
		x(in(0), "EXISTS", "k"),
		x(ok, "SET", "k", "v"),
		x(in(1), "EXPIREAT", "k", "1"),
		x(in(0), "EXISTS", "k"),
		x(ok, "SET", "k", "v"),
		x(in(1), "PEXPIREAT", "k", "0"),
		x(in(0), "EXISTS", "k"),
		x(arity("expire"), "EXPIRE", "k"),
		x(arity("ttl"), "TTL"),
		x(arity("persist"), "PERSIST"),
	}},
	{name: "rename copy", steps: []step{
		x(ok, "SET", "a", "1"),
		x(in(1), "EXPIRE", "a", "100"),
		x(ok, "RENAME", "a", "b"),
		x(in(0), "EXISTS", "a"),
		x(bs("1"), "GET", "b"),
		x(in(100), "TTL", "b"),
		x(er("ERR no such key"), "RENAME", "missing", "x"),
		x(er("ERR no such key"), "RENAMENX", "missing", "x"),
		x(ok, "RENAME", "b", "b"),
		x(in(0), "RENAMENX", "b", "b"),
		x(ok, "SET", "c", "3"),
		x(in(0), "RENAMENX", "b", "c"),
		x(in(1), "RENAMENX", "b", "d"),
		x(ok, "RENAME", "d", "c"),
		x(bs("1"), "GET", "c"),
		x(in(1), "COPY", "c", "e"),
		x(in(100), "TTL", "e"),
		x(in(0), "COPY", "c", "e"),
		x(ok, "SET", "c", "new"),
		x(in(1), "COPY", "c", "e", "REPLACE"),
		x(bs("new"), "GET", "e"),
		x(in(1), "COPY", "c", "f", "DB", "0", "REPLACE"),
		x(in(0), "COPY", "missing", "g"),
		x(er("ERR source and destination objects are the same"), "COPY", "c", "c"),
		x(er("ERR DB index is out of range"), "COPY", "c", "g", "DB", "16"),
		x(nai, "COPY", "c", "g", "DB", "x"),
		x(syn, "COPY", "c", "g", "DB"),
		x(syn, "COPY", "c", "g", "FOO"),
		x(arity("rename"), "RENAME", "a"),
		x(arity("copy"), "COPY", "a"),
	}},
	{name: "scan keys randomkey dbsize flush", steps: []step{
		x(nul, "RANDOMKEY"),
		x(arr(bs("0"), arr()), "SCAN", "0"),
		x(ok, "SET", "hello", "1"),
		x(bs("hello"), "RANDOMKEY"),
		x(arr(bs("0"), arr(bs("hello"))), "SCAN", "0", "COUNT", "100"),
		x(arr(bs("0"), arr(bs("hello"))), "SCAN", "0", "MATCH", "h*", "COUNT", "100", "TYPE", "string"),
		x(arr(bs("0"), arr()), "SCAN", "0", "MATCH", "x*"),
		x(arr(bs("0"), arr()), "SCAN", "0", "TYPE", "list"),
		x(er("ERR invalid cursor"), "SCAN", "x"),
		x(er("ERR invalid cursor"), "SCAN", "1x"),
		x(er("ERR invalid cursor"), "SCAN", " 1"),
		x(syn, "SCAN", "0", "COUNT", "0"),
		x(nai, "SCAN", "0", "COUNT", "x"),
		x(syn, "SCAN", "0", "FOO", "bar"),
		x(syn, "SCAN", "0", "MATCH"),
		x(ok, "MSET", "hallo", "2", "hxllo", "3", "hllo", "4", "heeello", "5"),
		x(arr(bs("hello"), bs("hallo")), "KEYS", "h[ae]llo").anyOrder(),
		x(arr(bs("hello"), bs("hallo"), bs("hxllo")), "KEYS", "h?llo").anyOrder(),
		x(arr(bs("hxllo")), "KEYS", "h[^ae]llo").anyOrder(),
		x(arr(bs("hello"), bs("hallo"), bs("hxllo"), bs("hllo"), bs("heeello")), "KEYS", "h*llo").anyOrder(),
		x(arr(bs("hello"), bs("hallo")), "KEYS", "h[a-e]llo").anyOrder(),
		x(arr(), "KEYS", "nothing*"),
		x(in(5), "DBSIZE"),
		x(ok, "FLUSHDB"),
		x(in(0), "DBSIZE"),
		x(ok, "SET", "a", "1"),
		x(ok, "FLUSHALL", "ASYNC"),
		x(ok, "FLUSHALL", "sync"),
		x(syn, "FLUSHALL", "FOO"),
		x(syn, "FLUSHDB", "ASYNC", "SYNC"),
		x(in(0), "DBSIZE"),
		x(arity("keys"), "KEYS"),
		x(arity("dbsize"), "DBSIZE", "x"),
		x(arity("randomkey"), "RANDOMKEY", "x"),
	}},
	{name: "object", steps: []step{
		x(ok, "SET", "i", "12345"),
		x(ok, "SET", "s", "short"),
		x(ok, "SET", "l", strings.Repeat("x", 45)),
		x(bs("int"), "OBJECT", "ENCODING", "i"),
		x(bs("embstr"), "OBJECT", "encoding", "s"),
		x(bs("raw"), "OBJECT", "ENCODING", "l"),
		x(nul, "OBJECT", "ENCODING", "missing"),
		x(arity("object|encoding"), "OBJECT", "ENCODING"),
		x(er("ERR unknown subcommand 'FOO'. Try OBJECT HELP."), "OBJECT", "FOO", "x"),
		x(arity("object"), "OBJECT"),
		x(helpArr(objectHelp), "OBJECT", "HELP"),
		x(arity("object|help"), "OBJECT", "HELP", "x"),
		x(arity("object|freq"), "OBJECT", "FREQ"),
		x(arity("object|idletime"), "OBJECT", "IDLETIME"),
		x(arity("object|refcount"), "OBJECT", "REFCOUNT", "a", "b"),
		// Integers in Redis's canonical form only.
		x(ok, "SET", "n", "-1"),
		x(bs("int"), "OBJECT", "ENCODING", "n"),
		x(ok, "SET", "z", "007"),
		x(bs("embstr"), "OBJECT", "ENCODING", "z"),
		x(ok, "SET", "z", "+1"),
		x(bs("embstr"), "OBJECT", "ENCODING", "z"),
		// APPEND stores a missing key as SET does, appends to one in place.
		x(in(1), "APPEND", "a", "5"),
		x(bs("int"), "OBJECT", "ENCODING", "a"),
		x(in(1), "APPEND", "a", ""),
		x(bs("raw"), "OBJECT", "ENCODING", "a"),
		x(in(5), "APPEND", "a2", "hello"),
		x(bs("embstr"), "OBJECT", "ENCODING", "a2"),
		x(in(6), "APPEND", "a2", "!"),
		x(bs("raw"), "OBJECT", "ENCODING", "a2"),
		x(in(1), "OBJECT", "REFCOUNT", "a2"),
		// SETRANGE builds a raw string; an empty part changes nothing.
		x(in(1), "SETRANGE", "sr", "0", "5"),
		x(bs("raw"), "OBJECT", "ENCODING", "sr"),
		x(ok, "SET", "f", "1"),
		x(in(1), "SETRANGE", "f", "0", ""),
		x(bs("int"), "OBJECT", "ENCODING", "f"),
		// INCRBYFLOAT: a new string, never int; INCR: an int again.
		x(bs("2"), "INCRBYFLOAT", "f", "1"),
		x(bs("embstr"), "OBJECT", "ENCODING", "f"),
		x(in(1), "OBJECT", "REFCOUNT", "f"),
		x(in(3), "INCR", "f"),
		x(bs("int"), "OBJECT", "ENCODING", "f"),
		x(in(2147483647), "OBJECT", "REFCOUNT", "f"),
		x("re:^\\$30[0-9]\r\n1[0-9]{300}\r\n$", "INCRBYFLOAT", "big", "1e300"),
		x(bs("raw"), "OBJECT", "ENCODING", "big"),
		// SET and GETSET choose again from the content.
		x(ok, "SET", "i", "123"),
		x(in(4), "APPEND", "i", "4"),
		x(bs("raw"), "OBJECT", "ENCODING", "i"),
		x(bs("1234"), "GETSET", "i", "456"),
		x(bs("int"), "OBJECT", "ENCODING", "i"),
		x(in(2147483647), "OBJECT", "REFCOUNT", "i"),
		x(ok, "SET", "i", "x"),
		x(in(2), "APPEND", "i", "y"),
		x(ok, "SET", "i", "xy"),
		x(bs("embstr"), "OBJECT", "ENCODING", "i"),
		// RENAME moves the object; COPY duplicates it, an integer unshared;
		// an expiry keeps it.
		x(ok, "SET", "k", "a"),
		x(in(2), "APPEND", "k", "b"),
		x(ok, "RENAME", "k", "k2"),
		x(bs("raw"), "OBJECT", "ENCODING", "k2"),
		x(in(1), "COPY", "k2", "k3"),
		x(bs("raw"), "OBJECT", "ENCODING", "k3"),
		x(in(1), "EXPIRE", "k3", "100"),
		x(bs("raw"), "OBJECT", "ENCODING", "k3"),
		x(ok, "SET", "c1", "7"),
		x(in(1), "COPY", "c1", "c2"),
		x(bs("int"), "OBJECT", "ENCODING", "c2"),
		x(in(1), "OBJECT", "REFCOUNT", "c2"),
		x(in(2147483647), "OBJECT", "REFCOUNT", "c1"),
		x(ok, "RENAME", "c1", "c3"),
		x(in(2147483647), "OBJECT", "REFCOUNT", "c3"),
		// REFCOUNT: Redis shares the integers 0..9999.
		x(ok, "SET", "r", "9999"),
		x(in(2147483647), "OBJECT", "REFCOUNT", "r"),
		x(ok, "SET", "r", "10000"),
		x(in(1), "OBJECT", "REFCOUNT", "r"),
		x(ok, "SET", "r", "-1"),
		x(in(1), "OBJECT", "REFCOUNT", "r"),
		x(in(1), "OBJECT", "refcount", "s"),
		x(nul, "OBJECT", "REFCOUNT", "missing"),
		x(in(1), "HSET", "h", "f", "v"),
		x(in(1), "OBJECT", "REFCOUNT", "h"),
		x(in(1), "SADD", "set", "1"),
		x(in(1), "OBJECT", "REFCOUNT", "set"),
		x(bs("intset"), "OBJECT", "ENCODING", "set"),
		x(er(errNoLFU), "OBJECT", "FREQ", "set"),
		x("re:^:\\d+\r\n$", "OBJECT", "IDLETIME", "set"),
		// FREQ needs an LFU maxmemory-policy; IDLETIME counts seconds.
		x(er(errNoLFU), "OBJECT", "FREQ", "s"),
		x(er(errNoLFU), "OBJECT", "FREQ", "h"),
		x(nul, "OBJECT", "FREQ", "missing"),
		x("re:^:\\d+\r\n$", "OBJECT", "IDLETIME", "s"),
		x("re:^:\\d+\r\n$", "OBJECT", "IDLETIME", "h"),
		x(nul, "OBJECT", "IDLETIME", "missing"),
	}},
	// Only a lower bound: the machine may be slow (TestWriteClock checks
	// the clock's arithmetic). The node's clock samples once a second and
	// may count up to a second less than Redis.
	{name: "object idletime", steps: []step{
		x(ok, "SET", "k", "v"),
		wait(2100 * time.Millisecond),
		x("re:^:[1-9][0-9]*\r\n$", "OBJECT", "IDLETIME", "k"),
	}},
	{name: "connection", steps: []step{
		x("+PONG\r\n", "PING"),
		x(bs("hi"), "PING", "hi"),
		x(arity("ping"), "PING", "a", "b"),
		x(bs("x y"), "ECHO", "x y"),
		x(arity("echo"), "ECHO"),
		x(ok, "SELECT", "0"),
		x(er("ERR DB index is out of range"), "SELECT", "16"),
		x(ok, "SELECT", "1"),
		x(ok, "SELECT", "0"),
		x(nai, "SELECT", "x"),
		x(arity("select"), "SELECT"),
		x("re:^\\*2\r\n\\$10\r\n\\d{10}\r\n\\$\\d\r\n\\d{1,6}\r\n$", "TIME"),
		x(er("ERR unknown command 'FOO', with args beginning with: 'a' 'b' "), "FOO", "a", "b"),
		x(er("ERR unknown command 'NOPE', with args beginning with: "), "NOPE"),
		x(er("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), "AUTH", "x"),
		x(ok, "AUTH", "default", "anything"),
		x(syn, "AUTH", "a", "b", "c"),
		x(arity("auth"), "AUTH"),
	}},
	{name: "hello", steps: []step{
		x(er("NOPROTO unsupported protocol version"), "HELLO", "4"),
		x(er("NOPROTO unsupported protocol version"), "HELLO", "1"),
		x(er("ERR Protocol version is not an integer or out of range"), "HELLO", "x"),
		x(er("ERR Syntax error in HELLO option 'FOO'"), "HELLO", "3", "FOO"),
		x(er("ERR Syntax error in HELLO option 'AUTH'"), "HELLO", "3", "AUTH", "default"),
		x(er("ERR Client names cannot contain spaces, newlines or special characters."), "HELLO", "2", "SETNAME", "a b"),
		x(er("WRONGPASS invalid username-password pair or user is disabled."), "HELLO", "2", "AUTH", "nobody", "x"),
		x("re:^\\*14\r\n\\$6\r\nserver\r\n\\$5\r\nredis\r\n\\$7\r\nversion\r\n\\$5\r\n7\\.2\\.4\r\n\\$5\r\nproto\r\n:2\r\n\\$2\r\nid\r\n:\\d+\r\n\\$4\r\nmode\r\n\\$10\r\nstandalone\r\n\\$4\r\nrole\r\n\\$6\r\nmaster\r\n\\$7\r\nmodules\r\n\\*0\r\n$", "HELLO", "2", "SETNAME", "me").nodiff(),
		x(bs("me"), "CLIENT", "GETNAME"),
	}},
	{name: "client", steps: []step{
		x(nul, "CLIENT", "GETNAME"),
		x(ok, "CLIENT", "SETNAME", "foo"),
		x(bs("foo"), "CLIENT", "GETNAME"),
		x(ok, "CLIENT", "SETNAME", ""),
		x(nul, "CLIENT", "GETNAME"),
		x(er("ERR Client names cannot contain spaces, newlines or special characters."), "CLIENT", "SETNAME", "a b"),
		x("re:^:\\d+\r\n$", "CLIENT", "ID"),
		x(ok, "CLIENT", "SETINFO", "lib-name", "go-redis").nodiff(),
		x(ok, "CLIENT", "SETINFO", "LIB-VER", "9.0").nodiff(),
		x(er("ERR Unrecognized option 'foo'"), "CLIENT", "SETINFO", "foo", "x").nodiff(),
		x(er("ERR lib-name cannot contain spaces, newlines or special characters."), "CLIENT", "SETINFO", "lib-name", "a b").nodiff(),
		x(er("ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."), "CLIENT", "MAINT_NOTIFICATIONS", "on", "moving-endpoint-type", "internal-ip"),
		x(er("ERR unknown subcommand 'TRACKING'. Try CLIENT HELP."), "CLIENT", "TRACKING", "on").nodiff(),
		x(arity("client|setname"), "CLIENT", "SETNAME"),
		x(arity("client|id"), "CLIENT", "ID", "x"),
		x(arity("client"), "CLIENT"),
		x3("re:^\\$\\d+\r\nid=\\d+ addr=127\\.0\\.0\\.1:\\d+ .*lib-name=go-redis lib-ver=9\\.0\n\r\n$",
			"re:^=\\d+\r\ntxt:id=\\d+ addr=127\\.0\\.0\\.1:\\d+ .*resp=3 lib-name=go-redis lib-ver=9\\.0\n\r\n$", "CLIENT", "INFO").nodiff(),
		x3("re:^\\$\\d+\r\n(id=\\d+ addr=.*\n)+\r\n$", "re:^=\\d+\r\ntxt:(id=\\d+ addr=.*\n)+\r\n$", "CLIENT", "LIST"),
		x3("re:^\\$0\r\n\r\n$", "re:^=4\r\ntxt:\r\n$", "CLIENT", "LIST", "TYPE", "pubsub"),
	}},
	{name: "client list cmd", steps: []step{
		x(ok, "CLIENT", "SETNAME", "c0"),
		x3(arr(bs("maxmemory"), bs("0")), "%1\r\n"+bs("maxmemory")+bs("0"), "CONFIG", "GET", "maxmemory"),
		lastCmdOf("c0", "config|get").by(1),
		x(er("ERR unknown subcommand 'NOPE'. Try CONFIG HELP."), "CONFIG", "NOPE"),
		lastCmdOf("c0", "NULL").by(1),
		x(nul, "GET", "k"),
		lastCmdOf("c0", "get").by(1),
		x(arity("client"), "CLIENT"),
		lastCmdOf("c0", "client").by(1),
		x(er("ERR unknown command 'NOPE', with args beginning with: "), "NOPE"),
		lastCmdOf("c0", "NULL").by(1),
		x(bs("c0"), "CLIENT", "GETNAME"),
		lastCmdOf("c0", "client|getname").by(1),
	}},
	{name: "config", steps: []step{
		x3(arr(bs("maxmemory"), bs("0")), "%1\r\n"+bs("maxmemory")+bs("0"), "CONFIG", "GET", "maxmemory"),
		x3(arr(bs("appendfsync"), bs("everysec")), "%1\r\n"+bs("appendfsync")+bs("everysec"), "CONFIG", "GET", "appendfsync"),
		x3(arr(bs("APPENDFSYNC"), bs("everysec")), "%1\r\n"+bs("APPENDFSYNC")+bs("everysec"), "CONFIG", "GET", "APPENDFSYNC"),
		x3(arr(bs("appendfsync"), bs("everysec")), "%1\r\n"+bs("appendfsync")+bs("everysec"), "CONFIG", "GET", "APPENDFSYN?"),
		x3(arr(bs("maxmemory-policy"), bs("noeviction")), "%1\r\n"+bs("maxmemory-policy")+bs("noeviction"), "CONFIG", "GET", "maxmemory-p*"),
		x3(arr(bs("save"), bs("")), "%1\r\n"+bs("save")+bs(""), "CONFIG", "GET", "save"),
		x3(arr(), "%0\r\n", "CONFIG", "GET", "nosuchparam"),
		x(ok, "CONFIG", "SET", "maxmemory", "1mb"),
		x3(arr(bs("maxmemory"), bs("1048576")), "%1\r\n"+bs("maxmemory")+bs("1048576"), "CONFIG", "GET", "maxmemory"),
		x(ok, "CONFIG", "SET", "maxmemory", "0"),
		x(ok, "CONFIG", "SET", "appendfsync", "everysec"),
		x(er("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"), "CONFIG", "SET", "maxmemory", "1x"),
		x(er("ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no"), "CONFIG", "SET", "appendfsync", "foo"),
		x(er("ERR Unknown option or number of arguments for CONFIG SET - 'foo'"), "CONFIG", "SET", "foo", "bar"),
		x(arity("config|get"), "CONFIG", "GET"),
		x(arity("config|set"), "CONFIG", "SET", "maxmemory"),
		x(er("ERR unknown subcommand 'FOO'. Try CONFIG HELP."), "CONFIG", "FOO"),
		x(arity("config"), "CONFIG"),
	}},
	{name: "command", steps: []step{
		x(arr(bs("a")), "COMMAND", "GETKEYS", "SET", "a", "b"),
		x(arr(bs("a"), bs("c")), "COMMAND", "GETKEYS", "MSET", "a", "b", "c", "d"),
		x(er("ERR Invalid command specified"), "COMMAND", "GETKEYS", "NOPE", "a"),
		x(er("ERR Invalid number of arguments specified for command"), "COMMAND", "GETKEYS", "GET", "a", "b"),
		x(arity("command|getkeys"), "COMMAND", "GETKEYS", "GET"),
		x(er("ERR The command has no key arguments"), "COMMAND", "GETKEYS", "PING", "x"),
		x(er("ERR unknown subcommand 'FOO'. Try COMMAND HELP."), "COMMAND", "FOO"),
		x("re:^:\\d+\r\n$", "COMMAND", "COUNT"),
		x(arr(nul), "COMMAND", "INFO", "nope"),
		x3("re:^\\*1\r\n\\*10\r\n\\$3\r\nget\r\n:2\r\n\\*2\r\n\\+readonly\r\n\\+fast\r\n:1\r\n:1\r\n:1\r\n",
			"re:^\\*1\r\n\\*10\r\n\\$3\r\nget\r\n:2\r\n~2\r\n\\+readonly\r\n\\+fast\r\n:1\r\n:1\r\n:1\r\n", "COMMAND", "INFO", "get"),
		x3("re:^\\*2\r\n\\$3\r\nget\r\n\\*4\r\n\\$7\r\nsummary\r\n", "re:^%1\r\n\\$3\r\nget\r\n%2\r\n\\$7\r\nsummary\r\n", "COMMAND", "DOCS", "get").nodiff(),
	}},
	{name: "edge cases", steps: []step{
		x(ok, "MSET", "d", "1", "d", "2"),
		x(bs("2"), "GET", "d"),
		x(nul, "SET", "k", "v", "EX", "100", "GET"),
		x(in(100), "TTL", "k"),
		x(bs("v"), "SET", "k", "w", "KEEPTTL", "GET"),
		x(in(100), "TTL", "k"),
		x(in(4), "SETRANGE", "k", "3", "x"),
		x(in(100), "TTL", "k"),
		x(bs("w\x00\x00x"), "GETEX", "k", "PERSIST"),
		x(in(-1), "TTL", "k"),
		x(bs("w\x00\x00x"), "GETEX", "k", "PERSIST"),
		x(ok, "SET", "f", "1e-20"),
		x(bs("0"), "INCRBYFLOAT", "f", "0"),
		x(ok, "SET", "f", "1.5e3"),
		x(bs("1500.5"), "INCRBYFLOAT", "f", "0.5"),
		x(bs("1500.5"), "GETSET", "f", "-1e2"),
		x(bs("-99.99999999999999999"), "INCRBYFLOAT", "f", "0.00000000000000001"),
		x(ok, "SET", "f", "1e308"),
		x(bs("199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096"), "INCRBYFLOAT", "f", "1e308"),
		x(ok, "SET", "f", "3.0"),
		x(bs("3"), "INCRBYFLOAT", "f", "0"),
		x(bs("-3"), "INCRBYFLOAT", "f", "-6"),
		x(in(0), "EXPIRE", "nokey", "10", "NX"),
		x(ok, "SET", "n", "5"),
		x(in(6), "INCRBY", "n", "1"),
		x(nai, "DECRBY", "n", "9223372036854775814"),
		x(in(-9223372036854775801), "DECRBY", "n", "9223372036854775807"),
		x(nai, "INCRBY", "n", "9223372036854775808"),
		x(ok, "SET", "n", "-0"),
		x(nai, "INCR", "n"),
		x(bs("-0"), "GET", "n"),
		x(ok, "SET", "n", "0"),
		x(in(-1), "DECR", "n"),
		x(arr(bs("-1")), "MGET", "n"),
		x(bs("int"), "OBJECT", "ENCODING", "n"),
		x(ok, "SET", "n", "-0"),
		x(bs("embstr"), "OBJECT", "ENCODING", "n"),
		x(ok, "SET", "n", "12345678901234567890"),
		x(bs("embstr"), "OBJECT", "ENCODING", "n"),
		x(in(1), "TOUCH", "n"),
		x(arity("touch"), "TOUCH"),
		x(arity("unlink"), "UNLINK"),
	}},
	{name: "multi exec", steps: []step{
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "SET", "a", "1"),
		x("+QUEUED\r\n", "INCR", "a"),
		x("+QUEUED\r\n", "GET", "a"),
		x(arr(ok, in(2), bs("2")), "EXEC"),
		x(er("ERR EXEC without MULTI"), "EXEC"),
		x(er("ERR DISCARD without MULTI"), "DISCARD"),
		x(ok, "MULTI"),
		x(er("ERR MULTI calls can not be nested"), "MULTI"),
		x(er("ERR WATCH inside MULTI is not allowed"), "WATCH", "a"),
		x("+QUEUED\r\n", "UNWATCH"),
		x("+QUEUED\r\n", "INCR", "a"),
		x(arr(ok, in(3)), "EXEC"),
		x(ok, "MULTI"),
		x(arity("set"), "SET", "a"),
		x("+QUEUED\r\n", "INCR", "a"),
		x(er("EXECABORT Transaction discarded because of previous errors."), "EXEC"),
		x(bs("3"), "GET", "a"),
		x(ok, "MULTI"),
		x(er("ERR unknown command 'FOO', with args beginning with: "), "FOO"),
		x(er("EXECABORT Transaction discarded because of previous errors."), "EXEC"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "SET", "a", "b", "EX", "0"),
		x("+QUEUED\r\n", "INCR", "a"),
		x("+QUEUED\r\n", "PING"),
		x(arr(badExpire("set"), in(4), "+PONG\r\n"), "EXEC"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "SET", "a", "x"),
		x(ok, "DISCARD"),
		x(bs("4"), "GET", "a"),
		x(ok, "MULTI"),
		x(arr(), "EXEC"),
		x(ok, "WATCH", "a", "b"),
		x(ok, "SET", "a", "5"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "SET", "a", "6"),
		x3("*-1\r\n", "_\r\n", "EXEC"),
		x(bs("5"), "GET", "a"),
		x(ok, "WATCH", "a"),
		x(ok, "UNWATCH"),
		x(ok, "SET", "a", "7"),
		x(ok, "MULTI"),
		x("+QUEUED\r\n", "SET", "a", "8"),
		x(arr(ok), "EXEC"),
		x(arity("watch"), "WATCH"),
	}},
	// SELECT queues inside MULTI and runs at EXEC, as in Redis.
	{name: "select in multi", steps: []step{
		x(ok, "MULTI"),
		x(qd, "SELECT", "0"),
		x(qd, "SET", "k", "v"),
		x(arr(ok, ok), "EXEC"),
		x(ok, "MULTI"),
		x(qd, "SELECT", "16"),
		x(qd, "SELECT", "-1"),
		x(qd, "SELECT", "x"),
		x(qd, "PING"),
		x(arr(er("ERR DB index is out of range"), er("ERR DB index is out of range"), nai, "+PONG\r\n"), "EXEC"),
	}},
	// Redis looks a container's subcommand up before it queues: an unknown
	// one, or a wrong number of arguments for the subcommand, is refused
	// at once and EXEC aborts.
	{name: "subcommands", steps: []step{
		x(ok, "MULTI"),
		x(er("ERR unknown subcommand 'FOO'. Try OBJECT HELP."), "OBJECT", "FOO", "a"),
		x(qd, "SET", "k", "v"),
		x(execAbort, "EXEC"),
		x(nul, "GET", "k"),
		x(ok, "MULTI"),
		x(arity("object|encoding"), "OBJECT", "ENCODING"),
		x(execAbort, "EXEC"),
		x(ok, "MULTI"),
		x(arity("object|encoding"), "OBJECT", "encoding", "a", "b"),
		x(execAbort, "EXEC"),
		x(ok, "MULTI"),
		x(arity("object"), "OBJECT"),
		x(execAbort, "EXEC"),
		x(ok, "MULTI"),
		x(qd, "OBJECT", "ENCODING", "k"),
		x(qd, "OBJECT", "HELP"),
		x("re:^\\*2\r\n\\$-1\r\n\\*\\d+\r\n", "EXEC"),
		x(ok, "MULTI"),
		x(er("ERR unknown subcommand 'FOO'. Try CLIENT HELP."), "CLIENT", "FOO"),
		x(execAbort, "EXEC"),
		x(ok, "MULTI"),
		x(er("ERR unknown subcommand 'foo'. Try CONFIG HELP."), "CONFIG", "foo", "bar"),
		x(execAbort, "EXEC"),
		x(ok, "MULTI"),
		x(er("ERR unknown subcommand 'FOO'. Try COMMAND HELP."), "COMMAND", "FOO"),
		x(execAbort, "EXEC"),
		x(arity("object|help"), "OBJECT", "HELP", "x"),
		x(arity("client|help"), "CLIENT", "HELP", "x"),
		x(arity("client"), "CLIENT"),
		// CLIENT KILL is the proxy's: a node's clients are proxies.
		x(er("ERR unknown subcommand 'KILL'. Try CLIENT HELP."), "CLIENT", "KILL").nodiff(),
		x(arity("config|resetstat"), "CONFIG", "RESETSTAT", "x"),
		x(arity("config|get"), "CONFIG", "GET"),
		x(arity("command|count"), "COMMAND", "COUNT", "x"),
		x(arity("command|help"), "COMMAND", "HELP", "x"),
		x3("re:^\\*1\r\n\\*10\r\n\\$15\r\nobject\\|encoding\r\n:3\r\n\\*1\r\n\\+readonly\r\n:2\r\n:2\r\n:1\r\n",
			"re:^\\*1\r\n\\*10\r\n\\$15\r\nobject\\|encoding\r\n:3\r\n~1\r\n\\+readonly\r\n:2\r\n:2\r\n:1\r\n", "COMMAND", "INFO", "object|encoding"),
		x3("re:^\\*1\r\n\\*10\r\n\\$10\r\nconfig\\|get\r\n:-3\r\n", "re:^\\*1\r\n\\*10\r\n\\$10\r\nconfig\\|get\r\n:-3\r\n", "COMMAND", "INFO", "CONFIG|GET"),
		x(arr(nul), "COMMAND", "INFO", "object|foo"),
	}},
	// WATCH as Redis's multi.c: any write that modifies a watched key
	// aborts EXEC, even one that leaves it as it was, and so does the
	// expiry of a key that existed at WATCH.
	{name: "watch", steps: []step{
		// Another client creates and deletes a key that did not exist.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "1").by(1),
		x(in(1), "DEL", "x").by(1),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(nilArr, "EXEC"),
		x(nul, "GET", "y"),
		// A key expires between WATCH and EXEC.
		x(ok, "SET", "x", "1", "PX", "40"),
		x(ok, "WATCH", "x"),
		wait(80 * time.Millisecond),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(nilArr, "EXEC"),
		// A missing key is set with an expiry and expires again.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "1", "PX", "40").by(1),
		wait(80 * time.Millisecond),
		x(nul, "GET", "x"),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(nilArr, "EXEC"),
		// A key that had expired when WATCH looked, removed later by
		// another client's read: nothing changed.
		x(ok, "SET", "x", "1", "PX", "40"),
		wait(80 * time.Millisecond),
		x(ok, "WATCH", "x"),
		x(nul, "GET", "x").by(1),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "2"),
		x(arr(ok), "EXEC"),
		// A SET whose expiry has passed modifies even a missing key.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "1", "PXAT", "1").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		// The watcher's own write counts.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "1"),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		// EXEC forgot the keys: the next transaction runs.
		x(ok, "SET", "x", "2").by(1),
		x(ok, "MULTI"),
		x(arr(), "EXEC"),
		// Writing the same value is a modification.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "2").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		x(ok, "WATCH", "x"),
		x(in(1), "APPEND", "x", "").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		// Watching again after a change does not forget it.
		x(ok, "WATCH", "x"),
		x(ok, "SET", "x", "3").by(1),
		x(ok, "WATCH", "y"),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		// DISCARD and a refused transaction unwatch.
		x(ok, "WATCH", "x"),
		x(ok, "MULTI"),
		x(ok, "DISCARD"),
		x(ok, "SET", "x", "4").by(1),
		x(ok, "MULTI"),
		x(arr(), "EXEC"),
		x(ok, "WATCH", "x"),
		x(ok, "MULTI"),
		x(arity("get"), "GET"),
		x(execAbort, "EXEC"),
		x(ok, "SET", "x", "5").by(1),
		x(ok, "MULTI"),
		x(arr(), "EXEC"),
		// One client's transaction aborts another's that watches its key.
		x(ok, "WATCH", "x").by(1),
		x(ok, "WATCH", "x"),
		x(ok, "MULTI"),
		x(qd, "INCR", "x"),
		x(arr(in(6)), "EXEC"),
		x(ok, "MULTI").by(1),
		x(qd, "INCR", "x").by(1),
		x(nilArr, "EXEC").by(1),
	}},
	// Writes that modify nothing leave a watcher alone, as in Redis.
	{name: "watch unmodified", steps: []step{
		x(ok, "SET", "k", "v"),
		x(ok, "WATCH", "k", "missing"),
		x(in(0), "DEL", "missing").by(1),
		x(in(0), "EXPIRE", "missing", "100").by(1),
		x(in(0), "SETNX", "k", "w").by(1),
		x(in(0), "PERSIST", "k").by(1),
		x(in(0), "EXPIRE", "k", "100", "XX").by(1),
		x(bs("v"), "GETEX", "k").by(1),
		x(in(1), "SETRANGE", "k", "0", "").by(1),
		x(nul, "GETDEL", "missing").by(1),
		x(in(0), "MSETNX", "k", "1", "missing", "1").by(1),
		x(nai, "INCR", "k").by(1),
		x(ok, "RENAME", "k", "k").by(1),
		x(in(1), "EXISTS", "k").by(1),
		x(in(1), "TOUCH", "k").by(1),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(arr(ok), "EXEC"),
		// FLUSHALL modifies the watched keys it deletes, not missing ones.
		x(ok, "WATCH", "k"),
		x(ok, "FLUSHALL").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
		x(ok, "WATCH", "missing"),
		x(ok, "FLUSHALL").by(1),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(arr(ok), "EXEC"), // it deleted nothing watched
		x(ok, "SET", "k", "v"),
		x(ok, "WATCH", "k"),
		x(ok, "FLUSHDB").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
	}},
	// Writes of each kind to a watched key, each aborting EXEC.
	{name: "watch modified", steps: watchedBy(
		[]string{"SET", "k", "w"}, []string{"SETEX", "k", "100", "w"}, []string{"GETSET", "k", "w"},
		[]string{"INCR", "n"}, []string{"INCRBYFLOAT", "n", "1.5"}, []string{"APPEND", "k", "x"},
		[]string{"SETRANGE", "k", "1", "x"}, []string{"DEL", "k"}, []string{"UNLINK", "k"}, []string{"GETDEL", "k"},
		[]string{"EXPIRE", "k", "100"}, []string{"PEXPIREAT", "k", "1"}, []string{"GETEX", "k", "EX", "100"},
		[]string{"MSET", "k", "1"}, []string{"RENAME", "k", "other"}, []string{"RENAME", "other", "k"},
		[]string{"COPY", "other", "k", "REPLACE"}, []string{"COPY", "other", "absent"},
	)},
	{name: "watch hash modified", steps: watchedHashBy(
		[]string{"HSET", "h", "f", "1"}, []string{"HSET", "h", "new", "x"}, []string{"HMSET", "h", "f", "9"},
		[]string{"HSETNX", "h", "new", "x"}, []string{"HDEL", "h", "f"}, []string{"HDEL", "h", "f", "g"},
		[]string{"HINCRBY", "h", "f", "1"}, []string{"HINCRBYFLOAT", "h", "f", "0.5"},
		[]string{"DEL", "h"}, []string{"EXPIRE", "h", "100"}, []string{"RENAME", "h", "h2"},
	)},
	// Hash writes that modify nothing leave the watcher alone.
	{name: "watch hash unmodified", steps: []step{
		x(in(2), "HSET", "h", "f", "1", "g", "2"),
		x(ok, "WATCH", "h"),
		x(in(0), "HDEL", "h", "nosuch").by(1),
		x(in(0), "HSETNX", "h", "f", "x").by(1),
		x(bs("1"), "HGET", "h", "f").by(1),
		x(in(2), "HLEN", "h").by(1),
		x(nai, "HINCRBY", "h", "f", "x").by(1),
		x(ok, "MULTI"),
		x(qd, "SET", "y", "1"),
		x(arr(ok), "EXEC"),
		// A hash created and emptied again is a modification.
		x(ok, "WATCH", "m"),
		x(in(1), "HSET", "m", "f", "v").by(1),
		x(in(1), "HDEL", "m", "f").by(1),
		x(ok, "MULTI"),
		x(nilArr, "EXEC"),
	}},
}

// watchedHashBy is watchedBy for writes to a hash: WATCH h (a hash of two
// fields), the write on the second connection, a transaction that must
// abort.
func watchedHashBy(writes ...[]string) []step {
	var steps []step
	for _, w := range writes {
		steps = append(steps,
			step{args: []string{"DEL", "h"}, want: "re:."},
			x(in(2), "HSET", "h", "f", "1", "g", "2"),
			x(ok, "WATCH", "h"),
			step{args: w, want: "re:.", conn: 1},
			x(ok, "MULTI"),
			x(qd, "SET", "y", "1"),
			x(nilArr, "EXEC"),
		)
	}
	return steps
}

// watchedBy is a script: for each write, WATCH k, n, absent and other
// (set to known values first), the write on the second connection, then a
// transaction that must abort. The writes' own replies are not checked.
func watchedBy(writes ...[]string) []step {
	var steps []step
	for _, w := range writes {
		steps = append(steps,
			x(ok, "MSET", "k", "v", "n", "1", "other", "o"),
			x(ok, "WATCH", "k", "n", "absent", "other"),
			step{args: w, want: "re:.", conn: 1},
			x(ok, "MULTI"),
			x(qd, "SET", "y", "1"),
			x(nilArr, "EXEC"),
			step{args: []string{"DEL", "absent"}, want: "re:."},
		)
	}
	return steps
}

// toRESP3 spells the nulls of a RESP2 reply the RESP3 way.
func toRESP3(s string) string {
	s = strings.ReplaceAll(s, "$-1\r\n", "_\r\n")
	return strings.ReplaceAll(s, "*-1\r\n", "_\r\n")
}

// replyMatches compares a reply with an expectation: exact bytes, a "re:"
// regular expression, or an array compared without its order.
func replyMatches(got, want string, anyOrder bool) bool {
	return replyMatchesPairs(got, want, anyOrder, false)
}

// replyMatchesPairs is replyMatches that, with pairs, compares the
// elements two by two.
func replyMatchesPairs(got, want string, anyOrder, pairs bool) bool {
	if re, ok := strings.CutPrefix(want, "re:"); ok {
		return regexp.MustCompile(re).MatchString(got)
	}
	if anyOrder {
		if len(got) == 0 || len(want) == 0 || got[0] != want[0] {
			return false
		}
		g, err1 := resp.Elements(nil, []byte(got))
		w, err2 := resp.Elements(nil, []byte(want))
		if err1 != nil || err2 != nil || len(g) != len(w) {
			return false
		}
		step := 1
		if pairs && len(g) > 0 && g[0][0] != '*' {
			step = 2 // RESP3 nests pairs in arrays of their own instead
		}
		var gs, ws []string
		for i := 0; i+step <= len(g); i += step {
			var gb, wb []byte
			for j := i; j < i+step; j++ {
				gb, wb = append(gb, g[j]...), append(wb, w[j]...)
			}
			gs, ws = append(gs, string(gb)), append(ws, string(wb))
		}
		slices.Sort(gs)
		slices.Sort(ws)
		return slices.Equal(gs, ws)
	}
	return got == want
}

// runScript runs sc on a fresh connection to addr in RESP proto. Against
// redis-server (vsRedis) the steps marked noRedis still run, unchecked, so
// the state stays the same.
func runScript(t *testing.T, addr string, sc script, proto int, vsRedis bool) {
	t.Helper()
	var conns [2]*rawConn
	conn := func(i int) *rawConn {
		if conns[i] == nil {
			c := dialRaw(t, addr)
			if proto == 3 {
				if got := c.do("HELLO", "3"); !strings.HasPrefix(got, "%7\r\n") {
					t.Fatalf("HELLO 3: %q", got)
				}
			}
			conns[i] = c
		}
		return conns[i]
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if got := conn(0).do("FLUSHALL"); got != ok {
		t.Fatalf("FLUSHALL: %q", got)
	}
	for i, st := range sc.steps {
		if st.pause > 0 {
			time.Sleep(st.pause)
			continue
		}
		got := conn(st.conn).do(st.args...)
		if vsRedis && (st.noRedis || sc.noRedis) {
			continue
		}
		want := st.want
		if proto == 3 {
			if st.want3 != "" {
				want = st.want3
			} else {
				want = toRESP3(want)
			}
		}
		if !replyMatchesPairs(got, want, st.unordered, st.pairs) {
			t.Errorf("step %d %q:\n got %q\nwant %q", i, st.args, got, want)
		}
	}
}

func TestCommandScripts(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	for _, proto := range []int{2, 3} {
		for _, sc := range scripts {
			t.Run(fmt.Sprintf("RESP%d/%s", proto, sc.name), func(t *testing.T) {
				runScript(t, n.addr, sc, proto, false)
			})
		}
	}
}

// TestCommandScriptsMatchRedis checks the expectations above against a
// real redis-server, when one is installed: the table is Redis's behaviour,
// not a description of ours.
func TestCommandScriptsMatchRedis(t *testing.T) {
	addr := startRedis(t)
	for _, proto := range []int{2, 3} {
		for _, sc := range scripts {
			t.Run(fmt.Sprintf("RESP%d/%s", proto, sc.name), func(t *testing.T) {
				runScript(t, addr, sc, proto, true)
			})
		}
	}
}

// TestCommandTableCoverage: every row of cmdtable.Commands is served by the
// node except the proxy-only ones, which get the unknown-command error,
// never a fake reply; no handler exists without its row.
func TestCommandTableCoverage(t *testing.T) {
	for i := range cmdtable.Commands {
		cmd := &cmdtable.Commands[i]
		_, served := specs[cmd]
		if proxyOnly := cmd.Route == cmdtable.RouteProxyOnly; served == proxyOnly {
			t.Errorf("%s: served=%v, route %d", cmd.Name, served, cmd.Route)
		}
	}
	for name := range handlers {
		if cmdtable.Lookup([]byte(name)) == nil {
			t.Errorf("handler %q has no row in cmdtable.Commands", name)
		}
	}
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	for _, args := range [][]string{{"SHARD.LOCATE", "k"}, {"SHARD.MAP"}, {"SHARD.RELOAD"}, {"XADD", "s", "*", "f", "v"}} {
		want := er(cmdtable.ErrUnknownCommand([]byte(args[0]), toBytes(args[1:])))
		if got := c.do(args...); got != want {
			t.Errorf("%q: got %q, want %q", args, got, want)
		}
	}
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// TestArityFromTable sends every served command with one argument too few
// (and, for fixed arities, one too many): each gets Redis's arity error,
// read from the one command table.
func TestArityFromTable(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	for _, sp := range servedRows {
		var cases [][]string
		min := sp.Arity
		if min < 0 {
			min = -min
		}
		if min >= 2 {
			args := []string{strings.ToUpper(sp.Name)}
			for len(args) < min-1 {
				args = append(args, "x")
			}
			cases = append(cases, args)
		}
		if sp.Arity > 0 {
			args := []string{strings.ToUpper(sp.Name)}
			for len(args) < sp.Arity+1 {
				args = append(args, "x")
			}
			cases = append(cases, args)
		}
		for _, args := range cases {
			if got := c.do(args...); got != arity(sp.Name) {
				t.Errorf("%q: got %q, want the arity error", args, got)
			}
		}
	}
}
