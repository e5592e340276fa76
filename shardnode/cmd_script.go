package shardnode

import (
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (the engine is script.go).
//
// A script runs inside the storage transaction of its command: the
// dispatch treats the four EVAL forms as writes, so a script is one step
// of a bitcask Update (a pipeline's run, or EXEC's), its redis.call
// commands run against that transaction one after the other, and nothing
// else runs on the node's data meanwhile: other writers wait for the
// Update, readers see the data before the script. Its writes touch WATCH
// like any command's.
//
// Keys: a script declares its keys (numkeys); the node checks them like
// any command's, and every key a redis.call names must be this node's too
// (Redis allows undeclared keys; here they must still live on this node,
// or the call fails with the node's WRONGSHARD error).

const (
	errNoScript   = "NOSCRIPT No matching script. Please use EVAL."
	errBusy       = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
	errNotBusy    = "NOTBUSY No scripts in execution right now."
	errUnkillable = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."
)

// scriptCommands are the rows the dispatch runs as writes (dispatch.go).
var scriptCommands = map[string]bool{"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true}

func cmdEval(c *client, args [][]byte)      { c.eval(args, false, false) }
func cmdEvalSha(c *client, args [][]byte)   { c.eval(args, true, false) }
func cmdEvalRO(c *client, args [][]byte)    { c.eval(args, false, true) }
func cmdEvalShaRO(c *client, args [][]byte) { c.eval(args, true, true) }

func (c *client) eval(args [][]byte, bySha, readOnly bool) {
	e := c.srv.scripts
	numkeys, err := strconv.ParseInt(string(args[2]), 10, 64)
	switch {
	case err != nil:
		c.errReply(errNotInteger)
		return
	case numkeys > int64(len(args)-3):
		c.errReply("ERR Number of keys can't be greater than number of args")
		return
	case numkeys < 0:
		c.errReply("ERR Number of keys can't be negative")
		return
	}
	var sha string
	var p *lua.FunctionProto
	if bySha {
		if len(args[1]) != 40 {
			c.errReply(errNoScript)
			return
		}
		sha = strings.ToLower(string(args[1]))
		if p = e.lookup(sha); p == nil {
			c.errReply(errNoScript)
			return
		}
	} else {
		sha = sha1hex(args[1])
		var msg string
		if p, msg = e.compile(sha, args[1]); p == nil {
			c.errReply(msg)
			return
		}
	}
	keys := args[3 : 3+numkeys]
	argv := args[3+numkeys:]
	e.exec(c, sha, p, keys, argv, readOnly)
}

// scriptHelp is Redis's SCRIPT HELP less DEBUG, which is not served.
var scriptHelp = []string{
	"EXISTS <sha1> [<sha1> ...]",
	"    Return information about the existence of the scripts in the script cache.",
	"FLUSH [ASYNC|SYNC]",
	"    Flush the Lua scripts cache. Very dangerous on replicas.",
	"    When called without the optional mode argument, the behavior is determined by the",
	"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
	"    * ASYNC: Asynchronously flush the scripts cache.",
	"    * SYNC: Synchronously flush the scripts cache.",
	"KILL",
	"    Kill the currently executing Lua script.",
	"LOAD <script>",
	"    Load a script into the scripts cache without executing it.",
	"HELP",
	"    Prints this help.",
}

// cmdScript is SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP (DEBUG is not served).
func cmdScript(c *client, args [][]byte) {
	e := c.srv.scripts
	switch strings.ToLower(string(args[1])) {
	case "load":
		sha := sha1hex(args[2])
		if _, msg := e.compile(sha, args[2]); msg != "" {
			c.errReply(msg)
			return
		}
		c.bulkStr(sha)
	case "exists":
		c.array(len(args) - 2)
		for _, a := range args[2:] {
			n := int64(0)
			if len(a) == 40 && e.exists(strings.ToLower(string(a))) {
				n = 1
			}
			c.intReply(n)
		}
	case "flush":
		if len(args) > 3 || len(args) == 3 && !strings.EqualFold(string(args[2]), "async") && !strings.EqualFold(string(args[2]), "sync") {
			c.errReply("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
			return
		}
		e.flush()
		c.ok()
	case "kill":
		run := e.run.Load()
		switch {
		case run == nil:
			c.errReply(errNotBusy)
		case run.wrote.Load():
			c.errReply(errUnkillable)
		default:
			run.killed.Store(true)
			run.kill.cancel()
			e.srv.log.Warn("script killed by SCRIPT KILL", "sha", run.sha, "client", c.sess.Addr)
			c.ok()
		}
	case "help":
		c.array(len(scriptHelp) + 1)
		c.simple("SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
		for _, l := range scriptHelp {
			c.simple(l)
		}
	}
}

// redisCall is redis.call (raise) and redis.pcall: it runs one command
// for the running script, in its transaction, and returns the reply
// converted to Lua in the script's protocol (redis.setresp). An error
// reply is raised by redis.call and returned by redis.pcall; the
// refusals are Redis's texts.
func (e *scriptEngine) redisCall(L *lua.LState, raise bool) int {
	fail := func(msg string) int {
		t := errorTable(L, msg)
		if raise {
			L.Error(t, 0)
		}
		L.Push(t)
		return 1
	}
	run := e.run.Load()
	n := L.GetTop()
	if n == 0 {
		return fail("Please specify at least one argument for this redis lib call")
	}
	args := make([][]byte, n)
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			args[i-1] = []byte(v)
		case lua.LNumber:
			// "%.17g", as Redis 7.0 formats a number argument.
			args[i-1] = strconv.AppendFloat(nil, float64(v), 'g', 17, 64)
		default:
			return fail("Lua redis lib command arguments must be strings or integers")
		}
	}
	if run == nil {
		return fail("redis.call is not allowed outside a script")
	}
	c := run.c
	spec := lookupSpec(args[0])
	if spec == nil {
		return fail("Unknown Redis command called from script")
	}
	row, msg := spec.Resolve(args, cmdtable.SideNode)
	if msg != "" {
		if row == spec.Command && spec.Subcommands != nil && !strings.HasPrefix(msg, "ERR wrong number") {
			return fail("Unknown Redis command called from script")
		}
		return fail("Wrong number of args calling Redis command from script")
	}
	if (spec.Flags|row.Flags)&cmdtable.FlagNoScript != 0 || spec.kind == kindTx || scriptCommands[spec.Name] {
		return fail("This Redis command is not allowed from script")
	}
	write := spec.write || row.Flags&cmdtable.FlagWrite != 0
	if write && run.readOnly {
		return fail("-ERR Write commands are not allowed from read-only scripts.")
	}
	if spec.kind == kindKeyed || spec.kind == kindKeyless {
		if msg := c.checkKeys(spec, args); msg != "" {
			return fail("-" + msg)
		}
	}
	if spec.Flags&cmdtable.FlagDenyOOM != 0 && !run.wrote.Load() {
		if limit := c.srv.sizeLimit.Load(); limit > 0 && c.st.liveBytes() >= limit {
			return fail("-" + errOOM)
		}
	}
	mark := len(c.out)
	proto := c.sess.Proto
	c.sess.Proto = resp.Proto(run.resp)
	// The reply is read back from c.out whole: no big value streamed
	// (replymem.go), and a blocking pop does not block, as inside EXEC.
	streamOK, inExec := c.streamOK, c.inExec
	c.streamOK, c.inExec = false, true
	spec.fn(c, args)
	c.streamOK, c.inExec = streamOK, inExec
	c.sess.Proto = proto
	if write {
		run.wrote.Store(true)
	}
	if db := c.sess.DB(); db != c.txs.tx.Num() { // SELECT
		c.txs.tx = c.txs.tx.Select(db)
	}
	v, _, err := resp.Parse(c.out[mark:])
	var lv lua.LValue
	if err != nil {
		lv = errorTable(L, "ERR internal error: unreadable reply from '"+spec.Name+"'")
	} else {
		lv = respToLua(L, v, run.resp)
	}
	c.out = c.out[:mark]
	if t, ok := lv.(*lua.LTable); ok && raise && (v.Type == '-' || v.Type == '!') {
		L.Error(t, 0)
	}
	L.Push(lv)
	return 1
}
