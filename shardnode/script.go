package shardnode

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// Lua scripting (EVAL, EVALSHA, SCRIPT): the engine is
// github.com/yuin/gopher-lua, a Lua 5.1 VM in pure Go (Redis embeds Lua
// 5.1), maintained and widely used; no cgo keeps the node one static
// binary. The node has one VM, as Redis does: a script runs inside the
// storage transaction of the command that called it, and transactions
// that write are serialized by the database, so one VM at a time is all
// scripts can use.
//
// The sandbox follows Redis 7.0: the libraries base (less dofile, loadfile,
// load, print, require, module), string, table, math, coroutine, cjson and
// bit; globals are read-only (a script sees them through an empty table
// whose __index and __newindex refuse what is not there, with Redis's
// texts); pcall returns the text of a redis.call error as Redis 7.0's
// does; math.random is Redis's rand48, which draws the sequence a freshly
// started Redis draws.
// Known differences from Redis's VM: numbers concatenated with .. are
// formatted by gopher-lua (tostring is replaced by one with Lua's %.14g),
// compile errors have gopher-lua's wording, struct and cmsgpack are not
// there, and the library tables are not read-only.

// scriptEngine is the node's Lua VM and its script cache.
type scriptEngine struct {
	srv *Server

	// mu guards the cache: SCRIPT LOAD and EXISTS run on any connection.
	mu     sync.Mutex
	protos map[string]*lua.FunctionProto // by lower-case hex SHA1
	// vm serializes the use of L.
	vm      sync.Mutex
	L       *lua.LState
	globals *lua.LTable // the real globals: libraries, redis, KEYS, ARGV
	env     *lua.LTable // what scripts see as their globals (read-only)
	funcs   map[string]*lua.LFunction
	errh    *lua.LFunction
	rand    rand48

	// run is the script executing now, nil when none (SCRIPT KILL, BUSY).
	run atomic.Pointer[scriptRun]
	// busy is set once the running script is past busy-reply-threshold:
	// every other command then gets BUSY.
	busy atomic.Bool
	// limitMs is busy-reply-threshold (lua-time-limit) in milliseconds.
	limitMs atomic.Int64
	// timer fires at the threshold of the running script (watchBusy);
	// kill is the context of the next script, reused until one is killed.
	timer *time.Timer
	kill  *killCtx
}

// scriptRun is one script's execution.
type scriptRun struct {
	c        *client
	sha      string
	readOnly bool // EVAL_RO, EVALSHA_RO
	start    time.Time
	resp     int // redis.setresp: the protocol of redis.call's replies
	wrote    atomic.Bool
	killed   atomic.Bool
	kill     *killCtx
	db       int // the caller's database, restored after the script
}

// killCtx is the context the VM checks between instructions: SCRIPT KILL
// closes it, and the VM raises its error in the script, at every
// instruction from then on, so that pcall cannot hold the script alive.
type killCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
}

var errScriptKilled = errors.New("Script killed by user with SCRIPT KILL...")

func newKillCtx() *killCtx {
	return &killCtx{Context: context.Background(), done: make(chan struct{})}
}
func (k *killCtx) Done() <-chan struct{} { return k.done }
func (k *killCtx) Err() error {
	select {
	case <-k.done:
		return errScriptKilled
	default:
		return nil
	}
}
func (k *killCtx) cancel() { k.once.Do(func() { close(k.done) }) }

const defaultBusyThresholdMs = 5000

func init() {
	// Redis runs a script's body as a function without varargs, so
	// scripts have no Lua 5.0 `arg` table; gopher-lua's compatibility
	// option would also build one on every call (a map each time).
	lua.CompatVarArg = false
}

func newScriptEngine(s *Server) *scriptEngine {
	e := &scriptEngine{
		srv:    s,
		protos: make(map[string]*lua.FunctionProto),
		funcs:  make(map[string]*lua.LFunction),
	}
	e.limitMs.Store(defaultBusyThresholdMs)
	e.rand.x = rand48Init
	e.initVM()
	return e
}

// isBusy reports whether a script is past the threshold. The flag alone
// can be late (the timer's goroutine sets it as the script ends): a
// script must also be running.
func (e *scriptEngine) isBusy() bool { return e.busy.Load() && e.run.Load() != nil }

// sha1hex is the hex SHA1 Redis names a script by.
func sha1hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// compile returns the script's compiled function, compiling and caching
// it (EVAL and SCRIPT LOAD cache every script, as Redis does). The error is
// Redis's reply text.
func (e *scriptEngine) compile(sha string, body []byte) (*lua.FunctionProto, string) {
	e.mu.Lock()
	p := e.protos[sha]
	e.mu.Unlock()
	if p != nil {
		return p, ""
	}
	chunk, err := parse.Parse(strings.NewReader(string(body)), "user_script")
	if err == nil {
		p, err = lua.Compile(chunk, "user_script")
	}
	if err != nil {
		return nil, "ERR Error compiling script (new function): " + compileError(err)
	}
	e.mu.Lock()
	if q := e.protos[sha]; q != nil {
		p = q
	} else {
		e.protos[sha] = p
	}
	e.mu.Unlock()
	return p, ""
}

// compileError words a gopher-lua parse error the way Lua 5.1 begins
// its own: "user_script:LINE: ...".
func compileError(err error) string {
	var perr *parse.Error
	if errors.As(err, &perr) {
		return "user_script:" + strconv.Itoa(perr.Pos.Line) + ": " + perr.Message + " near '" + perr.Token + "'"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func (e *scriptEngine) lookup(sha string) *lua.FunctionProto {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.protos[sha]
}

func (e *scriptEngine) exists(sha string) bool { return e.lookup(sha) != nil }

// flush forgets every script (SCRIPT FLUSH).
func (e *scriptEngine) flush() {
	e.mu.Lock()
	e.protos = make(map[string]*lua.FunctionProto)
	e.mu.Unlock()
	e.vm.Lock()
	e.funcs = make(map[string]*lua.LFunction)
	e.vm.Unlock()
}

// exec runs a compiled script for c with its keys and arguments and
// appends its reply to c.out. c.st is the transaction the script's
// commands run in.
func (e *scriptEngine) exec(c *client, sha string, p *lua.FunctionProto, keys, argv [][]byte, readOnly bool) {
	e.vm.Lock()
	defer e.vm.Unlock()
	L := e.L
	fn := e.funcs[sha]
	if fn == nil {
		fn = L.NewFunctionFromProto(p)
		fn.Env = e.env
		e.funcs[sha] = fn
	}
	e.globals.RawSetString("KEYS", byteArray(L, keys))
	e.globals.RawSetString("ARGV", byteArray(L, argv))
	if e.kill == nil || e.kill.Err() != nil {
		e.kill = newKillCtx()
	}
	run := &scriptRun{c: c, sha: sha, readOnly: readOnly, start: time.Now(), resp: 2, kill: e.kill, db: c.sess.DB()}
	L.SetContext(run.kill)
	e.run.Store(run)
	stop := c.watchBusy(e, run)
	L.Push(fn)
	err := L.PCall(0, 1, e.errh)
	stop()
	e.run.Store(nil)
	e.busy.Store(false)
	L.RemoveContext()
	if c.sess.DB() != run.db { // a SELECT in the script is the script's own
		c.sess.SetDB(run.db)
	}
	c.txs.tx = c.txs.tx.Select(run.db)
	if err != nil {
		L.SetTop(0)
		c.errReply(e.errorText(run, err))
		return
	}
	ret := L.Get(-1)
	L.SetTop(0)
	c.out = appendLuaReply(c.out, ret, c.sess.Proto, run.resp, 0)
	// Leave nothing of this script for the next one to find.
	e.globals.RawSetString("KEYS", lua.LNil)
	e.globals.RawSetString("ARGV", lua.LNil)
}

// errorText is the reply to a script that raised an error, as Redis 7.0
// formats it: the error's text, then " script: SHA, on @user_script:LINE."
// with the line the error was raised at.
func (e *scriptEngine) errorText(run *scriptRun, err error) string {
	var msg string
	line := 0
	var aerr *lua.ApiError
	if errors.As(err, &aerr) {
		if t, ok := aerr.Object.(*lua.LTable); ok {
			msg = lua.LVAsString(t.RawGetString("err"))
			if n, ok := t.RawGetString("line").(lua.LNumber); ok {
				line = int(n)
			}
		} else {
			msg = "ERR " + aerr.Object.String()
		}
	} else {
		msg = "ERR " + err.Error()
	}
	if run.killed.Load() {
		msg = "ERR " + errScriptKilled.Error()
	}
	msg = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg)
	if line > 0 {
		msg += " script: " + run.sha + ", on @user_script:" + strconv.Itoa(line) + "."
	}
	return msg
}

// errHandler is the message handler of the script's pcall, Redis's
// __redis__err__handler: it turns the error into a table {err=...} (a
// string error gets the ERR code) and adds the line of the Lua code that
// raised it (the caller's when a Go function, redis.call say, raised it).
func (e *scriptEngine) errHandler(L *lua.LState) int {
	v := L.Get(1)
	t, ok := v.(*lua.LTable)
	if !ok || t.RawGetString("err") == lua.LNil {
		t = L.NewTable()
		t.RawSetString("err", lua.LString("ERR "+lua.LVAsString(L.ToStringMeta(v))))
	}
	for level := 1; ; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err != nil {
			break
		}
		if dbg.What != "G" && dbg.CurrentLine > 0 {
			t.RawSetString("source", lua.LString("@user_script"))
			t.RawSetString("line", lua.LNumber(dbg.CurrentLine))
			break
		}
	}
	L.Push(t)
	return 1
}

func byteArray(L *lua.LState, items [][]byte) *lua.LTable {
	t := L.CreateTable(len(items), 0)
	for _, it := range items {
		t.Append(lua.LString(it))
	}
	return t
}

// The conversions between Lua values and replies are Redis's
// (script_lua.c): see appendLuaReply and respToLua.

// maxReplyDepth bounds the nesting of a script's reply (a table that holds
// itself would recurse for ever): Redis stops at its Lua stack limit.
const maxReplyDepth = 1000

// appendLuaReply appends the reply for a script's return value v to a
// client speaking proto; luaResp is the script's redis.setresp.
func appendLuaReply(b []byte, v lua.LValue, proto resp.Proto, luaResp, depth int) []byte {
	if depth > maxReplyDepth {
		return resp.AppendError(b, "ERR reached lua stack limit")
	}
	switch v := v.(type) {
	case lua.LString:
		return resp.AppendBulkString(b, string(v))
	case lua.LBool:
		if luaResp == 2 {
			if v {
				return resp.AppendInt(b, 1)
			}
			return resp.AppendNull(b, proto)
		}
		return resp.AppendBool(b, proto, bool(v))
	case lua.LNumber:
		return resp.AppendInt(b, luaToInt64(float64(v)))
	case *lua.LTable:
		if s, ok := v.RawGetString("err").(lua.LString); ok {
			return resp.AppendError(b, oneLine(string(s)))
		}
		if s, ok := v.RawGetString("ok").(lua.LString); ok {
			return resp.AppendSimple(b, oneLine(string(s)))
		}
		if n, ok := v.RawGetString("double").(lua.LNumber); ok {
			return resp.AppendDouble(b, proto, float64(n))
		}
		if s, ok := v.RawGetString("big_number").(lua.LString); ok {
			return resp.AppendBigInt(b, proto, oneLine(string(s)))
		}
		if m, ok := v.RawGetString("map").(*lua.LTable); ok {
			n := 0
			m.ForEach(func(lua.LValue, lua.LValue) { n++ })
			b = resp.AppendMap(b, proto, n)
			m.ForEach(func(k, val lua.LValue) {
				b = appendLuaReply(b, k, proto, luaResp, depth+1)
				b = appendLuaReply(b, val, proto, luaResp, depth+1)
			})
			return b
		}
		if s, ok := v.RawGetString("set").(*lua.LTable); ok {
			n := 0
			s.ForEach(func(lua.LValue, lua.LValue) { n++ })
			b = resp.AppendSet(b, proto, n)
			s.ForEach(func(k, _ lua.LValue) {
				b = appendLuaReply(b, k, proto, luaResp, depth+1)
			})
			return b
		}
		if vs, ok := v.RawGetString("verbatim_string").(*lua.LTable); ok {
			f, fok := vs.RawGetString("format").(lua.LString)
			s, sok := vs.RawGetString("string").(lua.LString)
			if fok && sok {
				return resp.AppendVerbatim(b, proto, string(f), string(s))
			}
		}
		// An array, up to the first nil.
		n := 0
		for v.RawGetInt(n+1) != lua.LNil {
			n++
		}
		b = resp.AppendArray(b, n)
		for i := 1; i <= n; i++ {
			b = appendLuaReply(b, v.RawGetInt(i), proto, luaResp, depth+1)
		}
		return b
	}
	return resp.AppendNull(b, proto)
}

// luaToInt64 is C's (long long) cast of a Lua number: truncation toward
// zero; what C leaves undefined (NaN, out of range) is LLONG_MIN, as x86
// gives.
func luaToInt64(f float64) int64 {
	if math.IsNaN(f) || f >= 9.223372036854775807e18 || f < -9.223372036854775808e18 {
		return math.MinInt64
	}
	return int64(f)
}

// oneLine replaces the line breaks a status or error cannot hold by
// spaces, as Redis does.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// respToLua converts a command's reply (in the script's protocol) to the
// Lua value redis.call returns.
func respToLua(L *lua.LState, v resp.Value, luaResp int) lua.LValue {
	switch v.Type {
	case '+':
		t := L.CreateTable(0, 1)
		t.RawSetString("ok", lua.LString(v.Str))
		return t
	case '-', '!':
		t := L.CreateTable(0, 1)
		t.RawSetString("err", lua.LString(v.Str))
		return t
	case ':':
		return lua.LNumber(v.Int)
	case '$':
		if v.Null {
			return lua.LFalse
		}
		return lua.LString(v.Str)
	case '_':
		if luaResp == 2 {
			return lua.LFalse
		}
		return lua.LNil
	case '#':
		return lua.LBool(v.Int != 0)
	case ',':
		f, _ := strconv.ParseFloat(string(v.Str), 64)
		switch string(v.Str) {
		case "inf":
			f = math.Inf(1)
		case "-inf":
			f = math.Inf(-1)
		case "nan":
			f = math.NaN()
		}
		t := L.CreateTable(0, 1)
		t.RawSetString("double", lua.LNumber(f))
		return t
	case '(':
		t := L.CreateTable(0, 1)
		t.RawSetString("big_number", lua.LString(v.Str))
		return t
	case '=':
		inner := L.CreateTable(0, 2)
		inner.RawSetString("format", lua.LString("txt"))
		inner.RawSetString("string", lua.LString(v.Str))
		t := L.CreateTable(0, 1)
		t.RawSetString("verbatim_string", inner)
		return t
	case '*', '>':
		if v.Null {
			if luaResp == 2 {
				return lua.LFalse
			}
			return lua.LNil
		}
		t := L.CreateTable(len(v.Elems), 0)
		for i, el := range v.Elems {
			t.RawSetInt(i+1, respToLua(L, el, luaResp))
		}
		return t
	case '%':
		m := L.CreateTable(0, len(v.Elems)/2)
		for i := 0; i+1 < len(v.Elems); i += 2 {
			m.RawSet(respToLua(L, v.Elems[i], luaResp), respToLua(L, v.Elems[i+1], luaResp))
		}
		t := L.CreateTable(0, 1)
		t.RawSetString("map", m)
		return t
	case '~':
		s := L.CreateTable(0, len(v.Elems))
		for _, el := range v.Elems {
			s.RawSet(respToLua(L, el, luaResp), lua.LTrue)
		}
		t := L.CreateTable(0, 1)
		t.RawSetString("set", s)
		return t
	}
	return lua.LNil
}

// rand48 is Redis's redisLrand48 (rand.c): the 48-bit linear
// congruential generator of drand48, which math.random and
// math.randomseed use, so that scripts draw the numbers they draw on Redis.
// Redis 7.0 no longer reseeds it before each script: the sequence starts
// at rand.c's initial state when the server starts and goes on across
// scripts (SCRIPT FLUSH included) until math.randomseed.
type rand48 struct{ x uint64 }

const (
	rand48Init = 0x1234ABCD330E // rand.c's X2 X1 X0
	rand48A    = 0x5DEECE66D
	rand48C    = 0xB
	rand48Mask = 1<<48 - 1
	lrand48Max = 2147483647 // REDIS_LRAND48_MAX, INT32_MAX
)

func (r *rand48) seed(v int32) {
	r.x = uint64(0x330E) | uint64(uint32(v))<<16
	r.x &= rand48Mask
}

func (r *rand48) next() int32 {
	r.x = (rand48A*r.x + rand48C) & rand48Mask
	return int32(r.x >> 17)
}

// thresholdParam is CONFIG busy-reply-threshold, or its old name
// lua-time-limit: milliseconds.
func (e *scriptEngine) thresholdParam(name string) conncmd.Param {
	return conncmd.Param{Name: name,
		Get: func() string { return strconv.FormatInt(e.limitMs.Load(), 10) },
		Check: func(v []byte) string {
			if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
				return "argument couldn't be parsed into an integer"
			}
			return ""
		},
		Set: func(v []byte) {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			e.limitMs.Store(n)
			e.srv.log.Info("busy-reply-threshold changed", "ms", n)
		}}
}
