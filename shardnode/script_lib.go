package shardnode

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The libraries a script sees (script.go says which and why).

// initVM builds the VM: libraries, the redis table, the read-only globals.
func (e *scriptEngine) initVM() {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	for _, name := range []string{"dofile", "loadfile", "load", "print", "require", "module", "_printregs", "newproxy"} {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("tostring", L.NewFunction(luaToString))
	g.RawSetString("pcall", L.NewFunction(luaPcall))
	mathT := g.RawGetString("math").(*lua.LTable)
	mathT.RawSetString("random", L.NewFunction(e.mathRandom))
	mathT.RawSetString("randomseed", L.NewFunction(e.mathRandomSeed))
	g.RawSetString("redis", e.redisLib(L))
	g.RawSetString("cjson", cjsonLib(L))
	g.RawSetString("bit", bitLib(L))

	// Scripts see the globals through env: reads of what is not there
	// and every write are errors, Redis 7.0's texts. env's __index is
	// the globals table itself (a lookup the VM does without a call) and
	// the globals' own __index raises the error for what they lack.
	gmt := L.NewTable()
	gmt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(L.ToStringMeta(L.Get(2))))
		return 0
	}))
	L.SetMetatable(g, gmt)
	env := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", g)
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Attempt to modify a readonly table")
		return 0
	}))
	mt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(env, mt)
	g.RawSetString("_G", env)
	e.L, e.globals, e.env = L, g, env
	e.errh = L.NewFunction(e.errHandler)
}

// luaToString is tostring with Lua 5.1's number format (%.14g).
func luaToString(L *lua.LState) int {
	v := L.CheckAny(1)
	if n, ok := v.(lua.LNumber); ok {
		L.Push(lua.LString(formatLuaNumber(float64(n))))
		return 1
	}
	L.Push(L.ToStringMeta(v))
	return 1
}

// formatLuaNumber is C's "%.14g", Lua 5.1's LUA_NUMBER_FMT.
func formatLuaNumber(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	}
	s := strconv.FormatFloat(f, 'g', 14, 64)
	// Go's %g keeps trailing zeros of the mantissa that C's drops.
	if i := strings.IndexAny(s, "e"); i >= 0 {
		m, exp := s[:i], s[i:]
		if strings.Contains(m, ".") {
			m = strings.TrimRight(strings.TrimRight(m, "0"), ".")
		}
		if len(exp) == 3 { // e+5 -> e+05, as C
			exp = exp[:2] + "0" + exp[2:]
		}
		return m + exp
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// mathRandom is Lua 5.1's math.random over Redis's rand48.
func (e *scriptEngine) mathRandom(L *lua.LState) int {
	r := float64(e.rand.next()%lrand48Max) / float64(lrand48Max)
	switch L.GetTop() {
	case 0:
		L.Push(lua.LNumber(r))
	case 1:
		u := L.CheckInt(1)
		if u < 1 {
			L.RaiseError("bad argument #1 to 'random' (interval is empty)")
		}
		L.Push(lua.LNumber(math.Floor(r*float64(u)) + 1))
	case 2:
		l, u := L.CheckInt(1), L.CheckInt(2)
		if l > u {
			L.RaiseError("bad argument #2 to 'random' (interval is empty)")
		}
		L.Push(lua.LNumber(math.Floor(r*float64(u-l+1)) + float64(l)))
	default:
		L.RaiseError("wrong number of arguments")
	}
	return 1
}

func (e *scriptEngine) mathRandomSeed(L *lua.LState) int {
	e.rand.seed(int32(L.CheckInt(1)))
	return 0
}

// redisLib is the redis table.
func (e *scriptEngine) redisLib(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	fns := map[string]lua.LGFunction{
		"call":  func(L *lua.LState) int { return e.redisCall(L, true) },
		"pcall": func(L *lua.LState) int { return e.redisCall(L, false) },
		"error_reply": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			if L.GetTop() != 1 || !ok {
				raiseRedis(L, "wrong number or type of arguments")
			}
			// error_reply adds the '-': "My Error" is code My.
			msg := string(s)
			if !strings.HasPrefix(msg, "-") {
				msg = "-" + msg
			}
			L.Push(errorTable(L, msg))
			return 1
		},
		"status_reply": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			if L.GetTop() != 1 || !ok {
				raiseRedis(L, "wrong number or type of arguments")
			}
			r := L.CreateTable(0, 1)
			r.RawSetString("ok", s)
			L.Push(r)
			return 1
		},
		"sha1hex": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				raiseRedis(L, "wrong number of arguments")
			}
			L.Push(lua.LString(sha1hex([]byte(lua.LVAsString(L.Get(1))))))
			return 1
		},
		"log": e.redisLog,
		"setresp": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				raiseRedis(L, "redis.setresp() requires one argument.")
			}
			n := L.CheckInt(1)
			if n != 2 && n != 3 {
				raiseRedis(L, "RESP version must be 2 or 3.")
			}
			if run := e.run.Load(); run != nil {
				run.resp = n
			}
			return 0
		},
		"replicate_commands": func(L *lua.LState) int { L.Push(lua.LTrue); return 1 },
		"set_repl": func(L *lua.LState) int {
			if L.GetTop() != 1 {
				raiseRedis(L, "redis.set_repl() requires one argument.")
			}
			if n := L.CheckInt(1); n&^3 != 0 {
				raiseRedis(L, "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
			}
			return 0
		},
		"breakpoint": func(L *lua.LState) int { L.Push(lua.LFalse); return 1 },
		"debug":      func(L *lua.LState) int { return 0 },
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	for name, v := range map[string]int{
		"LOG_DEBUG": 0, "LOG_VERBOSE": 1, "LOG_NOTICE": 2, "LOG_WARNING": 3,
		"REPL_NONE": 0, "REPL_AOF": 1, "REPL_SLAVE": 2, "REPL_REPLICA": 2, "REPL_ALL": 3,
	} {
		t.RawSetString(name, lua.LNumber(v))
	}
	t.RawSetString("REDIS_VERSION", lua.LString("7.0.15"))
	t.RawSetString("REDIS_VERSION_NUM", lua.LNumber(0x07000f))
	return t
}

// raiseRedis raises an error of the redis library as Redis does
// (luaPushError, luaError): a table {err="ERR msg"}, with no position in
// the text.
func raiseRedis(L *lua.LState, msg string) {
	L.Error(errorTable(L, msg), 0)
}

// luaPcall is Redis 7.0's pcall: an error that is a table with an err
// field (what redis.call raises) is returned as that string.
func luaPcall(L *lua.LState) int {
	n := L.GetTop()
	if n < 1 {
		L.RaiseError("bad argument #1 to 'pcall' (value expected)")
	}
	for i := 1; i <= n; i++ {
		L.Push(L.Get(i))
	}
	if err := L.PCall(n-1, lua.MultRet, nil); err != nil {
		obj := lua.LValue(lua.LString(err.Error()))
		if aerr, ok := err.(*lua.ApiError); ok {
			obj = aerr.Object
		}
		if t, ok := obj.(*lua.LTable); ok {
			if s, ok := t.RawGetString("err").(lua.LString); ok {
				obj = s
			}
		}
		L.Push(lua.LFalse)
		L.Push(obj)
		return 2
	}
	L.Insert(lua.LTrue, n+1)
	return L.GetTop() - n
}

// errorTable is Redis's luaPushErrorBuff: "-CODE msg" keeps its code,
// any other text gets ERR.
func errorTable(L *lua.LState, s string) *lua.LTable {
	msg := "ERR " + s
	if strings.HasPrefix(s, "-") {
		if i := strings.IndexByte(s, ' '); i >= 0 {
			msg = s[1:i] + " " + s[i+1:]
		} else {
			msg = "ERR " + s[1:]
		}
	}
	t := L.CreateTable(0, 1)
	t.RawSetString("err", lua.LString(strings.TrimRight(msg, "\r\n")))
	return t
}

// redisLog is redis.log(level, message, ...), to the node's log.
func (e *scriptEngine) redisLog(L *lua.LState) int {
	n := L.GetTop()
	if n < 2 {
		raiseRedis(L, "redis.log() requires two arguments or more.")
	}
	lv, ok := L.Get(1).(lua.LNumber)
	if !ok {
		raiseRedis(L, "First argument must be a number (log level).")
	}
	if lv < 0 || lv > 3 {
		raiseRedis(L, "Invalid debug level.")
	}
	parts := make([]string, 0, n-1)
	for i := 2; i <= n; i++ {
		if s, ok := L.Get(i).(lua.LString); ok {
			parts = append(parts, string(s))
		} else if num, ok := L.Get(i).(lua.LNumber); ok {
			parts = append(parts, formatLuaNumber(float64(num)))
		}
	}
	msg := strings.Join(parts, " ")
	log := e.srv.log.Named("script")
	switch int(lv) {
	case 0, 1:
		log.Debug(msg)
	case 2:
		log.Info(msg)
	default:
		log.Warn(msg)
	}
	return 0
}

// cjson: lua-cjson's encode and decode (Redis bundles lua-cjson 2.1),
// written over encoding/json: no gopher-lua cjson module is on the module
// proxy. Tables whose keys are exactly 1..n encode as arrays, the empty
// table as {}; numbers as %.14g; cjson.null is the JSON null.

var cjsonNull = &lua.LUserData{}

func cjsonLib(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("encode", L.NewFunction(cjsonEncode))
	t.RawSetString("decode", L.NewFunction(cjsonDecode))
	t.RawSetString("null", cjsonNull)
	return t
}

func cjsonEncode(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("bad argument #1 to 'encode' (expected 1 argument)")
	}
	var b bytes.Buffer
	if msg := encodeJSON(&b, L.Get(1), 0); msg != "" {
		L.RaiseError("%s", msg)
	}
	L.Push(lua.LString(b.String()))
	return 1
}

func encodeJSON(b *bytes.Buffer, v lua.LValue, depth int) string {
	if depth > 1000 {
		return "Cannot serialise, excessive nesting (1001)"
	}
	switch v := v.(type) {
	case lua.LString:
		encodeJSONString(b, string(v))
	case lua.LNumber:
		f := float64(v)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return "Cannot serialise number: must not be NaN or Inf"
		}
		b.WriteString(formatLuaNumber(f))
	case lua.LBool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case *lua.LNilType:
		b.WriteString("null")
	case *lua.LUserData:
		if v == cjsonNull {
			b.WriteString("null")
			return ""
		}
		return "Cannot serialise userdata: type not supported"
	case *lua.LTable:
		n, isArray := 0, true
		maxIdx := 0
		v.ForEach(func(k, _ lua.LValue) {
			n++
			num, ok := k.(lua.LNumber)
			if !ok || float64(num) != math.Floor(float64(num)) || num < 1 {
				isArray = false
				return
			}
			maxIdx = max(maxIdx, int(num))
		})
		if n > 0 && isArray && maxIdx <= 2*n+10 { // lua-cjson's sparse-array rule (ratio 2, safe 10)
			b.WriteByte('[')
			for i := 1; i <= maxIdx; i++ {
				if i > 1 {
					b.WriteByte(',')
				}
				if msg := encodeJSON(b, v.RawGetInt(i), depth+1); msg != "" {
					return msg
				}
			}
			b.WriteByte(']')
			return ""
		}
		if n > 0 && isArray {
			return "Cannot serialise table: excessively sparse array"
		}
		b.WriteByte('{')
		first := true
		var msg string
		v.ForEach(func(k, val lua.LValue) {
			if msg != "" {
				return
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			switch k := k.(type) {
			case lua.LString:
				encodeJSONString(b, string(k))
			case lua.LNumber:
				encodeJSONString(b, formatLuaNumber(float64(k)))
			default:
				msg = "Cannot serialise " + k.Type().String() + ": table key must be a number or string"
				return
			}
			b.WriteByte(':')
			msg = encodeJSON(b, val, depth+1)
		})
		b.WriteByte('}')
		return msg
	default:
		return "Cannot serialise " + v.Type().String() + ": type not supported"
	}
	return ""
}

// encodeJSONString escapes as lua-cjson does (it also escapes '/').
func encodeJSONString(b *bytes.Buffer, s string) {
	const hexd = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch ch {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if ch < 0x20 || ch == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte(hexd[ch>>4])
				b.WriteByte(hexd[ch&15])
			} else {
				b.WriteByte(ch)
			}
		}
	}
	b.WriteByte('"')
}

func cjsonDecode(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("bad argument #1 to 'decode' (expected 1 argument)")
	}
	s := L.CheckString(1)
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		L.RaiseError("Expected value but found invalid token at character 1")
	}
	if dec.More() {
		L.RaiseError("Expected the end but found invalid token at character %d", dec.InputOffset()+1)
	}
	L.Push(jsonToLua(L, v))
	return 1
}

func jsonToLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return cjsonNull
	case bool:
		return lua.LBool(v)
	case json.Number:
		f, _ := strconv.ParseFloat(string(v), 64)
		return lua.LNumber(f)
	case string:
		return lua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for i, el := range v {
			t.RawSetInt(i+1, jsonToLua(L, el))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.RawSetString(k, jsonToLua(L, v[k]))
		}
		return t
	}
	return lua.LNil
}

// bit is Lua BitOp (Redis bundles it): 32-bit operations on numbers
// normalized the way BitOp does (rounded, taken modulo 2^32, signed).

func toBit(L *lua.LState, n int) int32 {
	f := float64(L.CheckNumber(n))
	f = math.Mod(math.RoundToEven(f), 4294967296)
	return int32(uint32(int64(f)))
}

func bitLib(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	ret := func(L *lua.LState, v int32) int { L.Push(lua.LNumber(v)); return 1 }
	fold := func(op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			v := toBit(L, 1)
			for i := 2; i <= L.GetTop(); i++ {
				v = op(v, toBit(L, i))
			}
			return ret(L, v)
		}
	}
	fns := map[string]lua.LGFunction{
		"tobit": func(L *lua.LState) int { return ret(L, toBit(L, 1)) },
		"bnot":  func(L *lua.LState) int { return ret(L, ^toBit(L, 1)) },
		"band":  fold(func(a, b int32) int32 { return a & b }),
		"bor":   fold(func(a, b int32) int32 { return a | b }),
		"bxor":  fold(func(a, b int32) int32 { return a ^ b }),
		"lshift": func(L *lua.LState) int {
			return ret(L, int32(uint32(toBit(L, 1))<<(uint32(toBit(L, 2))&31)))
		},
		"rshift": func(L *lua.LState) int {
			return ret(L, int32(uint32(toBit(L, 1))>>(uint32(toBit(L, 2))&31)))
		},
		"arshift": func(L *lua.LState) int {
			return ret(L, toBit(L, 1)>>(uint32(toBit(L, 2))&31))
		},
		"rol": func(L *lua.LState) int {
			x, n := uint32(toBit(L, 1)), uint32(toBit(L, 2))&31
			return ret(L, int32(x<<n|x>>((32-n)&31)))
		},
		"ror": func(L *lua.LState) int {
			x, n := uint32(toBit(L, 1)), uint32(toBit(L, 2))&31
			return ret(L, int32(x>>n|x<<((32-n)&31)))
		},
		"bswap": func(L *lua.LState) int {
			x := uint32(toBit(L, 1))
			return ret(L, int32(x>>24|(x>>8)&0xff00|(x&0xff00)<<8|x<<24))
		},
		"tohex": func(L *lua.LState) int {
			x := uint32(toBit(L, 1))
			n := 8
			if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
				n = int(toBit(L, 2))
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n = -n
				digits = "0123456789ABCDEF"
			}
			if n > 8 {
				n = 8
			}
			buf := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				buf[i] = digits[x&15]
				x >>= 4
			}
			L.Push(lua.LString(buf))
			return 1
		},
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	return t
}
