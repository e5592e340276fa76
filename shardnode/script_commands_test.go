package shardnode

import (
	"fmt"
	"strings"
	"testing"
)

// Scripts replayed against the node and against redis-server 7.0.15 in the
// same run, RESP2 and RESP3: each step's reply from the node must be the
// one Redis gives, byte for byte (error texts, line numbers and digests
// included). The expectations are Redis's own: nothing here is hard-coded
// but the commands. A script whose reply has several map or set elements
// is avoided (their order is the Lua table's).

type evalScript struct {
	name  string
	steps [][]string
}

func ev(body string, keysAndArgs ...string) []string {
	return append([]string{"EVAL", body}, keysAndArgs...)
}

var evalScripts = []evalScript{
	{name: "conversions lua to reply", steps: [][]string{
		ev("return 1", "0"),
		ev("return 3.99", "0"),
		ev("return -3.99", "0"),
		ev("return 'hello'", "0"),
		ev("return true", "0"),
		ev("return false", "0"),
		ev("return nil", "0"),
		ev("return {1, 2, 3, 'x'}", "0"),
		ev("return {1, 2, nil, 4}", "0"),
		ev("return {}", "0"),
		ev("return {{1, {2, 'a'}}, 'b'}", "0"),
		ev("return {ok = 'fine'}", "0"),
		ev("return {err = 'bad thing'}", "0"),
		ev("return {err = 'MYCODE bad thing'}", "0"),
		ev("return redis.status_reply('PONG')", "0"),
		ev("return redis.error_reply('My Error')", "0"),
		ev("return redis.error_reply('oops')", "0"),
		ev("return redis.error_reply('-WRONG type')", "0"),
		ev("return {1, true, false, 'x'}", "0"),
		ev("return {ok = 'line\\nbreak'}", "0"),
		ev("return 1e20", "0"),
		ev("return 0/0", "0"),
		ev("return {double = 3.5}", "0"),
		ev("return function() end", "0"),
		ev("return KEYS", "2", "k1", "k2", "a1", "a2"),
		ev("return ARGV", "1", "k1", "a1", "a2"),
		ev("return {#KEYS, #ARGV}", "0"),
		ev("return {#KEYS, #ARGV}", "0", "a", "b"),
	}},
	{name: "resp3 conversions", steps: [][]string{
		ev("redis.setresp(3); return {double = 3.5}", "0"),
		ev("redis.setresp(3); return {map = {a = 1}}", "0"),
		ev("redis.setresp(3); return {set = {a = true}}", "0"),
		ev("redis.setresp(3); return {big_number = '123456789012345678901234567890'}", "0"),
		ev("redis.setresp(3); return true", "0"),
		ev("redis.setresp(3); return false", "0"),
		ev("return {map = {a = 1}}", "0"),
		ev("return {set = {a = true}}", "0"),
		ev("return {big_number = '12345'}", "0"),
		ev("redis.setresp(4)", "0"),
		ev("redis.setresp()", "0"),
		{"HSET", "h", "f", "v"},
		ev("redis.setresp(3); return redis.call('hgetall', KEYS[1])", "1", "h"),
		ev("redis.setresp(3); local r = redis.call('hgetall', KEYS[1]); return type(r.map)", "1", "h"),
		ev("local r = redis.call('hgetall', KEYS[1]); return type(r.map)", "1", "h"),
		ev("redis.setresp(3); return redis.call('get', 'nokey')", "0"),
		ev("redis.setresp(3); return redis.call('get', 'nokey') == nil", "0"),
		ev("return redis.call('get', 'nokey') == false", "0"),
		{"ZADD", "z", "1.5", "m"},
		ev("redis.setresp(3); return redis.call('zscore', KEYS[1], 'm')", "1", "z"),
		ev("redis.setresp(3); local r = redis.call('zscore', KEYS[1], 'm'); return tostring(r.double)", "1", "z"),
		ev("return redis.call('zscore', KEYS[1], 'm')", "1", "z"),
		{"SADD", "s", "one"},
		ev("redis.setresp(3); return redis.call('smembers', KEYS[1])", "1", "s"),
		ev("redis.setresp(3); local r = redis.call('smembers', KEYS[1]); return r.set.one", "1", "s"),
		ev("redis.setresp(3); return redis.call('sismember', KEYS[1], 'one')", "1", "s"),
	}},
	{name: "redis.call", steps: [][]string{
		ev("return redis.call('set', KEYS[1], ARGV[1])", "1", "k", "v"),
		ev("return redis.call('get', KEYS[1])", "1", "k"),
		ev("return redis.call('GET', KEYS[1])", "1", "k"),
		ev("return redis.call('incr', 'n')", "0"),
		ev("return redis.call('incrby', 'n', 5)", "0"),
		ev("return redis.call('incrbyfloat', 'f', 1.5)", "0"),
		ev("return redis.call('set', 'f2', 0.1)", "0"),
		{"GET", "f2"},
		ev("return redis.call('set', 'f3', 3)", "0"),
		{"GET", "f3"},
		ev("return redis.call('mget', 'k', 'nokey', 'n')", "0"),
		ev("return redis.call('del', 'k', 'n', 'nokey')", "0"),
		ev("return redis.call('exists', 'k')", "0"),
		ev("redis.call('rpush_nope')", "0"),
		ev("return redis.call('nosuch')", "0"),
		ev("return redis.call()", "0"),
		ev("return redis.call('get')", "0"),
		ev("return redis.call('get', {})", "0"),
		ev("return redis.call('get', nil)", "0"),
		ev("return redis.call('eval', 'return 1', 0)", "0"),
		ev("return redis.call('multi')", "0"),
		ev("return redis.call('script', 'load', 'return 1')", "0"),
		ev("return redis.call('client', 'id')", "0"),
		ev("return redis.call('object', 'nosuch')", "0"),
		{"SET", "str", "abc"},
		ev("return redis.call('incr', 'str')", "0"),
		ev("return redis.pcall('incr', 'str')", "0"),
		ev("local r = redis.pcall('incr', 'str'); return r.err", "0"),
		ev("local r = redis.pcall('nosuch'); return r.err", "0"),
		ev("return redis.call('hset', 'str', 'f', 'v')", "0"),
		ev("return redis.pcall('hset', 'str', 'f', 'v')", "0"),
		ev("local ok, e = pcall(redis.call, 'incr', 'str'); return {tostring(ok), e}", "0"),
		ev("local ok, e = pcall(error, {err = 'x'}); return {type(e), e}", "0"),
		ev("local ok, e = pcall(error, {foo = 'x'}); return type(e)", "0"),
		ev("local ok, a, b = pcall(function() return 1, 2 end); return {tostring(ok), a, b}", "0"),
		ev("local ok, e = pcall(function() redis.call('nosuch') end); return e", "0"),
		ev("\n\nlocal x = 1\nreturn redis.call('incr', 'str')", "0"),
		ev("return redis.call('ping')", "0"),
		ev("return redis.call('set', 'x', 'y', 'nx')", "0"),
		ev("return redis.call('set', 'x', 'y', 'nx')", "0"),
		ev("return redis.call('set', 'x', 'y', 'xx', 'get')", "0"),
		ev("return redis.call('type', 'x')", "0"),
		ev("return redis.call('select', 1)", "0"),
		ev("redis.call('select', 1); return redis.call('get', 'x')", "0"),
		{"GET", "x"},
		ev("return redis.call('echo', 'a\\r\\nb')", "0"),
		ev("return redis.call('expire', 'x', 100)", "0"),
		ev("return redis.call('ttl', 'x')", "0"),
		ev("return redis.call('sadd', 'set1', 'a', 'b')", "0"),
		ev("return redis.call('scard', 'set1')", "0"),
		ev("return redis.call('zadd', 'zs', 1, 'a', 2, 'b')", "0"),
		ev("return redis.call('zrange', 'zs', 0, -1, 'withscores')", "0"),
		ev("return redis.call('hset', 'hh', 'f', 'v')", "0"),
		ev("return redis.call('hget', 'hh', 'f')", "0"),
		ev("return redis.call('hgetall', 'hh')", "0"),
	}},
	{name: "errors and sandbox", steps: [][]string{
		ev("a = 5", "0"),
		ev("return nosuch", "0"),
		ev("return nosuch()", "0"),
		ev("return _G.x", "0"),
		ev("_G.x = 1", "0"),
		ev("local t = {} t.x = 1 return t.x", "0"),
		ev("error('boom')", "0"),
		ev("error({err = 'X boom'})", "0"),
		ev("error('boom', 0)", "0"),
		ev("\nlocal a = 1\n\nerror('third line')", "0"),
		ev("os.exit()", "0"),
		ev("return io", "0"),
		ev("print(1)", "0"),
		ev("return require", "0"),
		ev("return type(arg)", "0"),
		ev("return dofile", "0"),
		ev("return loadfile", "0"),
		ev("return type(loadstring)", "0"),
		ev("return type(pcall)", "0"),
		ev("return type(string.format)", "0"),
		ev("return type(table.concat)", "0"),
		ev("return type(math.floor)", "0"),
		ev("return type(cjson.encode)", "0"),
		ev("return type(bit.band)", "0"),
		ev("return type(coroutine.create)", "0"),
		ev("return redis.LOG_WARNING", "0"),
		ev("return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE}", "0"),
		ev("redis.log(redis.LOG_WARNING, 'from a script')", "0"),
		ev("redis.log(redis.LOG_WARNING)", "0"),
		ev("redis.log(99, 'x')", "0"),
		ev("return redis.sha1hex('')", "0"),
		ev("return redis.sha1hex('hello')", "0"),
		ev("return 1", "1"),
		ev("return 1", "-1"),
		ev("return 1", "x"),
		{"EVAL", "return 1"},
		{"EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"},
		{"EVALSHA", "abc", "0"},
		{"EVALSHA_RO", "ffffffffffffffffffffffffffffffffffffffff", "0"},
		{"EVAL_RO", "return redis.call('set', 'k', 'v')", "0"},
		{"EVAL_RO", "return redis.call('get', 'k')", "0"},
		{"EVAL_RO", "return redis.pcall('del', 'k')", "0"},
		ev("return tostring(0.1 + 0.2)", "0"),
		ev("return tostring(1/3)", "0"),
		ev("return tostring(100)", "0"),
		ev("return tostring(1e100)", "0"),
		ev("return string.format('%d %s %5.2f', 3, 'x', 1.5)", "0"),
		ev("return string.rep('ab', 3)", "0"),
		ev("return table.concat({1, 2, 3}, ',')", "0"),
		ev("return tonumber('0x10')", "0"),
		ev("return select('#', 1, 2, 3)", "0"),
		ev("return {unpack({1, 2, 3})}", "0"),
	}},
	{name: "random is deterministic", steps: [][]string{
		ev("return tostring(math.random())", "0"),
		ev("return {math.random(100), math.random(100), math.random(1, 6)}", "0"),
		ev("math.randomseed(42); return {math.random(1000), math.random(1000)}", "0"),
		ev("return math.random(0)", "0"),
	}},
	{name: "cjson", steps: [][]string{
		ev("return cjson.encode({1, 2, 3})", "0"),
		ev("return cjson.encode({a = 1})", "0"),
		ev("return cjson.encode({})", "0"),
		ev("return cjson.encode('a/b\"c\\n')", "0"),
		ev("return cjson.encode({1.5, true, false, 'x'})", "0"),
		ev("return cjson.encode({a = {b = {1, 2}}})", "0"),
		ev("return cjson.encode(cjson.null)", "0"),
		ev("return cjson.encode(0.1)", "0"),
		ev("local t = cjson.decode('[1, 2, {\"a\": \"b\"}]'); return {t[1], t[2], t[3].a}", "0"),
		ev("local t = cjson.decode('{\"n\": null}'); return tostring(t.n == cjson.null)", "0"),
		ev("return cjson.decode('\"str\"')", "0"),
		ev("return cjson.decode('12.5')", "0"),
		ev("return cjson.decode('{\"a\":[true,false]}').a[1]", "0"),
	}},
	{name: "bit", steps: [][]string{
		ev("return bit.band(0xff, 0x0f)", "0"),
		ev("return bit.bor(1, 2, 4)", "0"),
		ev("return bit.bxor(5, 3)", "0"),
		ev("return bit.bnot(0)", "0"),
		ev("return bit.lshift(1, 31)", "0"),
		ev("return bit.rshift(-1, 28)", "0"),
		ev("return bit.arshift(-256, 4)", "0"),
		ev("return bit.rol(0x12345678, 8)", "0"),
		ev("return bit.ror(0x12345678, 8)", "0"),
		ev("return bit.bswap(0x12345678)", "0"),
		ev("return bit.tohex(255)", "0"),
		ev("return bit.tohex(-1, -4)", "0"),
		ev("return bit.tohex(0x1234, 2)", "0"),
		ev("return bit.tobit(2^32 + 5)", "0"),
		ev("return bit.tobit(2^31)", "0"),
	}},
	{name: "script cache", steps: [][]string{
		{"SCRIPT", "FLUSH"},
		{"SCRIPT", "LOAD", "return 'loaded'"},
		{"EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"},
		{"EVALSHA", "B534286061D4B9E4026607613B95C06C06015AE8", "0"},
		{"EVALSHA_RO", "b534286061d4b9e4026607613b95c06c06015ae8", "0"},
		{"SCRIPT", "EXISTS", "b534286061d4b9e4026607613b95c06c06015ae8", "ffffffffffffffffffffffffffffffffffffffff", "x"},
		ev("return 'via eval'", "0"),
		{"EVALSHA", "1e3e52a8ae5e4a4b5c2dd43e4ac4f2bcd1df0a1a", "0"},
		{"SCRIPT", "FLUSH", "ASYNC"},
		{"SCRIPT", "EXISTS", "b534286061d4b9e4026607613b95c06c06015ae8"},
		{"EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"},
		{"SCRIPT", "FLUSH", "SYNC"},
		{"SCRIPT", "FLUSH", "NOPE"},
		{"SCRIPT", "FLUSH", "SYNC", "ASYNC"},
		{"SCRIPT", "KILL"},
		{"SCRIPT", "KILL", "x"},
		{"SCRIPT", "LOAD"},
		{"SCRIPT", "EXISTS"},
		{"SCRIPT", "NOSUCH"},
		{"SCRIPT"},
	}},
	{name: "scripts in transactions", steps: [][]string{
		{"MULTI"},
		ev("return redis.call('incr', 'c')", "0"),
		ev("return redis.call('incr', 'c')", "0"),
		{"EXEC"},
		{"GET", "c"},
	}},
}

func TestEvalScriptsMatchRedis(t *testing.T) {
	addr := startRedis(t)
	n := startNode(t, "", nil)
	n.assignAll()
	for _, proto := range []int{2, 3} {
		for _, sc := range evalScripts {
			t.Run(fmt.Sprintf("RESP%d/%s", proto, sc.name), func(t *testing.T) {
				rc, nc := dialRaw(t, addr), dialRaw(t, n.addr)
				defer rc.close()
				defer nc.close()
				for _, c := range []*rawConn{rc, nc} {
					if proto == 3 {
						c.do("HELLO", "3")
					}
					c.do("FLUSHALL")
				}
				for i, args := range sc.steps {
					want, got := rc.do(args...), nc.do(args...)
					if got != want {
						t.Errorf("step %d %q:\n got %q\nwant %q", i, strings.Join(args, " "), got, want)
					}
				}
			})
		}
	}
}
