package shardnode

import (
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/shardkv/shardkv/resp"
)

// FuzzScriptReplyConversion: any reply a command could give, converted to
// Lua as redis.call returns it and back to a reply as a script returning
// it gets, is one well-formed reply in RESP2 and in RESP3; and cjson
// decodes or refuses any text, and encodes or refuses what it decoded,
// without panicking.
func FuzzScriptReplyConversion(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":5\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n:1\r\n$1\r\na\r\n",
		"%1\r\n+a\r\n:1\r\n", "~1\r\n+a\r\n", ",3.5\r\n", "#t\r\n", "(123\r\n", "=7\r\ntxt:abc\r\n", "_\r\n",
		`{"a":[1,2,{"b":null}]}`, `[1,"x",true]`, `"str"`} {
		f.Add([]byte(s))
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, _, err := resp.Parse(b); err == nil {
			for _, luaResp := range []int{2, 3} {
				lv := respToLua(L, v, luaResp)
				for _, proto := range []resp.Proto{resp.RESP2, resp.RESP3} {
					out := appendLuaReply(nil, lv, proto, luaResp, 0)
					if n, err := resp.ReplyLen(out); err != nil || n != len(out) {
						t.Fatalf("%q -> %q: not one reply (%d, %v)", b, out, n, err)
					}
				}
			}
		}
		L.SetTop(0)
		L.Push(L.NewFunction(cjsonDecode))
		L.Push(lua.LString(b))
		if err := L.PCall(1, 1, nil); err != nil {
			return
		}
		dec := L.Get(-1)
		L.SetTop(0)
		L.Push(L.NewFunction(cjsonEncode))
		L.Push(dec)
		// Encoding may refuse (a number out of range decodes as inf,
		// which lua-cjson will not encode), never panic.
		if err := L.PCall(1, 1, nil); err != nil {
			if aerr, ok := err.(*lua.ApiError); ok && aerr.Type == lua.ApiErrorPanic {
				t.Fatalf("cjson encode of what %q decodes to panicked: %v", b, err)
			}
		}
	})
}
