package shardnode

import (
	"errors"
	"maps"
	"strings"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// handlerFunc executes one command whose name, arity, authentication,
// assignment and key ownership were already checked. It appends its reply
// to c.out and reads and writes through c.st.
type handlerFunc func(c *client, args [][]byte)

// handlers are the shard node's handler rows: one per command of
// cmdtable.Commands the node executes. Arity, flags and key positions come from
// that table; a row of it without a handler here (SHARD.LOCATE and the
// other proxy-only commands) gets the unknown-command error.
var handlers = map[string]handlerFunc{
	// strings
	"get": cmdGet, "set": cmdSet, "setnx": cmdSetNX, "setex": cmdSetEX, "psetex": cmdPSetEX,
	"getdel": cmdGetDel, "getex": cmdGetEx, "getset": cmdGetSet, "mget": cmdMGet, "mset": cmdMSet,
	"msetnx": cmdMSetNX, "append": cmdAppend, "strlen": cmdStrlen, "getrange": cmdGetRange,
	"setrange": cmdSetRange, "incr": cmdIncr, "decr": cmdDecr, "incrby": cmdIncrBy,
	"decrby": cmdDecrBy, "incrbyfloat": cmdIncrByFloat, "substr": cmdGetRange, "lcs": cmdLCS,
	// bitmaps
	"setbit": cmdSetBit, "getbit": cmdGetBit, "bitcount": cmdBitCount, "bitpos": cmdBitPos,
	"bitop": cmdBitOp, "bitfield": cmdBitField, "bitfield_ro": cmdBitFieldRO,
	// keyspace
	"del": cmdDel, "unlink": cmdDel, "exists": cmdExists, "touch": cmdExists, "type": cmdType,
	"expire": cmdExpire, "pexpire": cmdExpire, "expireat": cmdExpire, "pexpireat": cmdExpire,
	"ttl": cmdTTL, "pttl": cmdTTL, "expiretime": cmdTTL, "pexpiretime": cmdTTL,
	"persist": cmdPersist, "rename": cmdRename, "renamenx": cmdRename, "copy": cmdCopy, "move": cmdMove,
	"scan": cmdScan, "keys": cmdKeys, "randomkey": cmdRandomKey, "dbsize": cmdDBSize,
	"flushdb": cmdFlush, "flushall": cmdFlush, "object": cmdObject,
	"memory": cmdMemory,
	// hashes
	"hset": cmdHSet, "hmset": cmdHSet, "hsetnx": cmdHSetNX, "hget": cmdHGet, "hmget": cmdHMGet,
	"hdel": cmdHDel, "hexists": cmdHExists, "hlen": cmdHLen, "hstrlen": cmdHStrlen,
	"hkeys": cmdHKeys, "hvals": cmdHVals, "hgetall": cmdHGetAll, "hincrby": cmdHIncrBy,
	"hincrbyfloat": cmdHIncrByFloat, "hrandfield": cmdHRandField, "hscan": cmdHScan,
	// sets
	"sadd": cmdSAdd, "srem": cmdSRem, "sismember": cmdSIsMember, "smismember": cmdSMIsMember,
	"scard": cmdSCard, "smembers": cmdSMembers, "srandmember": cmdSRandMember, "spop": cmdSPop,
	"smove": cmdSMove, "sinter": cmdSetOp, "sunion": cmdSetOp, "sdiff": cmdSetOp,
	"sintercard": cmdSInterCard, "sinterstore": cmdSetOpStore, "sunionstore": cmdSetOpStore,
	"sdiffstore": cmdSetOpStore, "sscan": cmdSScan,
	// lists
	"lpush": cmdLPush, "rpush": cmdRPush, "lpushx": cmdLPushX, "rpushx": cmdRPushX, "lpop": cmdLPop,
	"rpop": cmdRPop, "llen": cmdLLen, "lrange": cmdLRange, "lindex": cmdLIndex, "lset": cmdLSet,
	"linsert": cmdLInsert, "lrem": cmdLRem, "ltrim": cmdLTrim, "lpos": cmdLPos, "lmove": cmdLMove,
	"rpoplpush": cmdRPopLPush, "lmpop": cmdLMPop, "sort": cmdSort, "sort_ro": cmdSortRO,
	"blpop": cmdBLPop, "brpop": cmdBRPop, "blmove": cmdBLMove, "brpoplpush": cmdBRPopLPush, "blmpop": cmdBLMPop,
	// sorted sets: zsetHandlers (cmd_zset.go), added in init
	// server (the other connection and server commands are conncmd's,
	// added in init)
	"info": cmdInfo,
	// scripting
	"eval": cmdEval, "evalsha": cmdEvalSha, "eval_ro": cmdEvalRO, "evalsha_ro": cmdEvalShaRO, "script": cmdScript,
	// transactions
	"multi": cmdMulti, "exec": cmdExec, "discard": cmdDiscard, "watch": cmdWatch, "unwatch": cmdUnwatch,
	// shardkv
	"index.create": cmdIndexCreate, "index.drop": cmdIndexDrop, "index.list": cmdIndexList,
	"migrate.start": cmdMigrateStart, "migrate.status": cmdMigrateStatus, "migrate.abort": cmdMigrateAbort,
	"migrate.recv": cmdMigrateRecv, "migrate.flushrange": cmdMigrateFlushRange, "migrate.drop": cmdMigrateDrop,
	"shard.fence": cmdShardFence, "shard.unfence": cmdShardUnfence,
	// replication (cmd_repl.go)
	"replicaof": cmdReplicaOf, "slaveof": cmdReplicaOf, "role": cmdRole, "wait": cmdWait,
	"repl.role": cmdReplRole, "repl.attach": cmdReplAttach, "repl.recv": cmdReplRecv, "repl.offset": cmdReplOffset,
	"shard.assign": cmdShardAssign, "shard.unassign": cmdShardUnassign, "shard.watch": cmdShardWatch, "shard.unwatch": cmdShardUnwatch,
	"shard.exec": cmdShardExec, "tx.prepare": cmdTxPrepare, "tx.decide": cmdTxDecide,
	"tx.status": cmdTxStatus, "tx.commit": cmdTxCommit, "tx.abort": cmdTxCommit, "tx.forget": cmdTxForget,
	"tx.list": cmdTxList, "tx.dump": cmdTxDump, "tx.dumpx": cmdTxDump, "tx.put": cmdTxPut, "tx.load": cmdTxPut,
	"shard.streamrefs": cmdShardStreamRefs, "shard.fetch": cmdShardFetch,
	// Pub/Sub (pubsub.go)
	"subscribe": cmdSubscribe, "unsubscribe": cmdUnsubscribe, "psubscribe": cmdPSubscribe,
	"punsubscribe": cmdPUnsubscribe, "ssubscribe": cmdSSubscribe, "sunsubscribe": cmdSUnsubscribe,
	"publish": cmdPublish, "spublish": cmdSPublish, "pubsub": cmdPubsub, "shard.pubsub": cmdShardPubsub,
}

// cmdKind says where a command runs.
type cmdKind uint8

const (
	// kindLocal: connection and server commands; no storage, no assignment.
	kindLocal cmdKind = iota
	// kindKeyed: data commands that name their keys; consecutive ones of a
	// pipeline share one storage transaction.
	kindKeyed
	// kindKeyless: data commands over the whole keyspace (SCAN, KEYS,
	// FLUSHALL, INDEX.*): they need an assignment and run on their own.
	kindKeyless
	// kindTx: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
	kindTx
)

// cmdSpec is a row of cmdtable.Commands with the node's handler and what the
// dispatch derives from the row.
type cmdSpec struct {
	*cmdtable.Command
	fn   handlerFunc
	kind cmdKind
	// write: FlagWrite; storage writes happen in a transaction.
	write bool
	// control: the row's Multi is MultiNow: not queued inside MULTI (MULTI,
	// EXEC, DISCARD, WATCH, QUIT, RESET), as in Redis.
	control bool
	// handshake: a command of a proxy's handshake (AUTH, HELLO,
	// SHARD.ASSIGN; proxy/shards.go), all a connection admitted on
	// probation may send (admission.go).
	handshake bool
	// offLoop: a cross-shard transaction message that waits for fsyncs,
	// run on a goroutine of its own, not on the event loop (txexec.go).
	offLoop bool
}

// specs maps each served row of the command table to its cmdSpec;
// servedRows lists those rows in table order (COMMAND replies them). Both
// are built in init: handlers refer to them.
var (
	specs      map[*cmdtable.Command]*cmdSpec
	servedRows []*cmdtable.Command
)

func init() {
	for name, h := range conncmd.Handlers {
		handlers[name] = shared(h)
	}
	maps.Copy(handlers, zsetHandlers)
	m := make(map[*cmdtable.Command]*cmdSpec, len(cmdtable.Commands))
	for i := range cmdtable.Commands {
		cmd := &cmdtable.Commands[i]
		fn, ok := handlers[cmd.Name]
		if !ok || cmd.Route == cmdtable.RouteProxyOnly {
			continue
		}
		// A script may write: it runs in a transaction (cmd_script.go).
		sp := &cmdSpec{Command: cmd, fn: fn, write: cmd.Flags&cmdtable.FlagWrite != 0 || scriptCommands[cmd.Name]}
		switch {
		case cmd.Route == cmdtable.RouteTx:
			sp.kind = kindTx
		case cmd.Route == cmdtable.RouteLocal || cmd.Route == cmdtable.RouteNodeOnly:
			sp.kind = kindLocal
		case cmd.FirstKey > 0:
			sp.kind = kindKeyed
		default:
			sp.kind = kindKeyless
		}
		sp.control = cmd.Multi == cmdtable.MultiNow
		sp.handshake = cmd.Name == "auth" || cmd.Name == "hello" || cmd.Name == "shard.assign"
		sp.offLoop = txOffLoop[cmd.Name]
		m[cmd] = sp
		servedRows = append(servedRows, cmd)
	}
	specs = m
	specByName = make(map[string]*cmdSpec, 2*len(m))
	for _, sp := range m {
		specByName[sp.Name] = sp
		specByName[strings.ToUpper(sp.Name)] = sp
	}
}

// specByName indexes specs by name in lower and in upper case, the two
// spellings clients send, so the common lookup is one map access; other
// spellings go through cmdtable.Lookup.
var specByName map[string]*cmdSpec

func lookupSpec(name []byte) *cmdSpec {
	if sp, ok := specByName[string(name)]; ok {
		return sp
	}
	cmd := cmdtable.Lookup(name)
	if cmd == nil {
		return nil
	}
	return specs[cmd]
}

// Reply texts shared by several commands.
const (
	errSyntax        = "ERR syntax error"
	errNotInteger    = "ERR value is not an integer or out of range"
	errOverflow      = "ERR increment or decrement would overflow"
	errNotFloat      = "ERR value is not a valid float"
	errNaNInf        = "ERR increment would produce NaN or Infinity"
	errTooBig        = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	errOffset        = "ERR offset is out of range"
	errNoSuchKey     = "ERR no such key"
	errDBRange       = "ERR DB index is out of range"
	errNoAuth        = "NOAUTH Authentication required."
	errWrongPass     = "WRONGPASS invalid username-password pair or user is disabled."
	errOOM           = "OOM command not allowed when used memory > 'maxmemory'."
	errNoAssign      = "NOASSIGN this shard node has no range assignment yet (the proxy pushes one with SHARD.ASSIGN)"
	errNotInMulti    = "ERR Command not allowed inside a transaction"
	errExecAbort     = "EXECABORT Transaction discarded because of previous errors."
	errKeyTooLarge   = "ERR key exceeds the maximum key size"
	errSameObject    = "ERR source and destination objects are the same"
	errInvalidCursor = "ERR invalid cursor"
	errWrongType     = "WRONGTYPE Operation against a key holding the wrong kind of value"
)

// maxRunBytes ends a run of keyed commands so that one transaction never
// buffers more than this much of a pipeline's requests.
const maxRunBytes = 64 << 20

// startBatch begins one pipeline: the parsed commands, their specs and the
// command clock. serveFrom executes it.
func (c *client) startBatch(cmds []redcon.Command) {
	c.now = c.startClock()
	c.sess.Touch(c.now)
	c.cmds.Add(int64(len(cmds)))
	sp := c.specBuf[:0]
	for i := range cmds {
		sp = append(sp, lookupSpec(cmds[i].Args[0]))
		c.noteBig(len(cmds[i].Raw))
	}
	c.specBuf = sp
	c.batch, c.next = cmds, 0
}

// serveFrom executes the pipeline from c.next on. Runs of keyed commands
// that contain a write share one bitcask Update: one write, one fsync under
// always. On a connection of an event loop such a run is not committed
// here: it is handed to the loop, which commits the runs of every
// connection it read in one Update, and serveFrom returns servePark with
// c.next after the run; the loop calls it again once the run is committed.
// Once the replies waiting to be written reach maxPassReplies it stops
// before the next command and returns serveHeld (replymem.go).
func (c *client) serveFrom() serveState {
	cmds, sp := c.batch, c.specBuf
	i := c.next
	for {
		if c.repl.woff > c.repl.w0 && c.awaitAcks(i) {
			c.next = i
			return serveBlocked
		}
		c.markUnit(i)
		if c.stream != nil && !c.pumpStream() {
			c.next = i
			return serveHeld
		}
		if i >= len(cmds) || c.sess.Quit {
			break
		}
		if c.repliesFull() {
			c.next = i
			return serveHeld
		}
		if s := sp[i]; s != nil && s.kind == kindKeyed && !c.inMulti && c.srv.scripts.isBusy() && !c.admit(s, cmds[i].Args) {
			// BUSY: a script is past its threshold (script_busy_linux.go);
			// the run is not parked behind it.
			c.srv.obs.Commands.Rejected(s.Index)
			i++
			continue
		}
		if s := sp[i]; s != nil && s.kind == kindKeyed && !c.inMulti {
			j, write, size := i+1, s.write, len(cmds[i].Raw)
			for ; j < len(cmds) && size < maxRunBytes; j++ {
				if sp[j] == nil || sp[j].kind != kindKeyed {
					break
				}
				write = write || sp[j].write
				size += len(cmds[j].Raw)
			}
			if write {
				c.waitFenceRun(cmds[i:j], sp[i:j])
			}
			if write && c.loop != nil {
				c.req.cmds, c.req.sp = cmds[i:j], sp[i:j]
				c.loop.park(c)
				c.next = j
				return servePark
			}
			i += c.runKeyed(cmds[i:j], sp[i:j], write)
			if c.blocked != nil {
				c.repl.w0 = c.repl.woff // a run's writes before a blocking pop are not held (docs/REPLICATION.md)
				c.next = i
				return serveBlocked
			}
			continue
		}
		if s := sp[i]; s != nil && s.offLoop && c.loop != nil && !c.inMulti && c.srv.txWaits() {
			c.next, c.txOff = i, txPending
			return serveTx
		}
		c.execOne(sp[i], cmds[i].Args)
		i++
		if c.blocked != nil { // WAIT
			c.next = i
			return serveBlocked
		}
	}
	c.next = len(cmds)
	return serveDone
}

// endBatch finishes the pipeline serveFrom executed.
func (c *client) endBatch() {
	sp := c.specBuf
	if n := len(sp); n > 0 {
		var row *cmdtable.Command
		if sp[n-1] != nil {
			row = sp[n-1].Command
		}
		c.sess.SetLastCommand(row, c.batch[n-1].Args, cmdtable.SideNode)
	}
	c.srv.observeBatch(c)
	clear(sp)
	c.batch, c.next = nil, 0
}

// runKeyed executes consecutive keyed commands: straight against the
// database when none writes, else in one transaction (see commit.go). It
// returns how many it executed: it stops early, after at least one, once
// the replies fill the pass (repliesFull).
func (c *client) runKeyed(cmds []redcon.Command, sp []*cmdSpec, write bool) int {
	if !write {
		c.dbs.db = c.db()
		c.st = &c.dbs
		c.streamOK = true
		n := 0
		for n < len(cmds) && (n == 0 || !c.repliesFull()) {
			c.execOne(sp[n], cmds[n].Args)
			n++
		}
		c.st, c.streamOK = nil, false
		return n
	}
	// Commit, possibly together with other connections' runs.
	c.req.cmds, c.req.sp = cmds, sp
	c.srv.commitRun(&c.req)
	n := c.req.ran
	c.req.cmds, c.req.sp = nil, nil
	return n
}

// execOne checks and executes (or queues) one command.
func (c *client) execOne(spec *cmdSpec, args [][]byte) {
	if !c.admit(spec, args) {
		if spec != nil {
			c.srv.obs.Commands.Rejected(spec.Index)
		}
		return
	}
	if c.inMulti && !spec.control {
		c.enqueue(spec, args)
		return
	}
	mark := len(c.out)
	switch {
	case spec.kind == kindKeyless && spec.write && c.st == nil:
		var served []*waiter
		err := c.db().Update(func(tx *bitcask.Tx) error {
			c.txs.tx = tx
			c.st = &c.txs
			spec.fn(c, args)
			c.srv.serveReady(tx)
			served = c.srv.blocks.takeServed()
			return nil
		})
		c.txs.tx, c.st = nil, nil
		c.srv.handBack(served, err)
		if err != nil {
			c.out = resp.AppendError(c.out[:mark], c.srv.storageError(err))
		}
	case spec.kind == kindKeyless && c.st == nil:
		c.dbs.db = c.db()
		c.st = &c.dbs
		spec.fn(c, args)
		c.st = nil
	default:
		spec.fn(c, args)
	}
	if c.sess.Quit && c.ps != nil {
		c.dropSubs(true) // as Redis frees a client at QUIT, not once it closes
	}
	if len(c.out) > mark && c.out[mark] == '-' {
		c.srv.obs.Commands.Failed(spec.Index)
	}
}

// admit runs the checks Redis runs before a command, in Redis's order:
// existence (of the command, then of a container's subcommand), arity (the
// subcommand's), authentication, then the shard's own (assignment,
// ownership, strict indexes). A refused command gets its error reply and,
// inside MULTI, makes EXEC abort.
func (c *client) admit(spec *cmdSpec, args [][]byte) bool {
	if c.onProbation() && (spec == nil || !spec.handshake) {
		// Admitted past maxclients for a proxy's handshake, and this is
		// not one: Redis's refusal, then close.
		c.srv.stats.rejected.Add(1)
		c.errReply(errMaxClients)
		c.sess.Quit = true
		return false
	}
	if spec == nil {
		c.reject(cmdtable.ErrUnknownCommand(args[0], args[1:]))
		return false
	}
	row, msg := spec.Resolve(args, cmdtable.SideNode)
	if msg != "" {
		c.reject(msg)
		return false
	}
	if !c.sess.Authed && spec.Flags&cmdtable.FlagNoAuth == 0 {
		c.reject(errNoAuth)
		return false
	}
	if msg := c.replRefuse(spec); msg != "" {
		c.reject(msg)
		return false
	}
	if c.srv.scripts.isBusy() && !c.allowedWhileBusy(spec, args) {
		if c.inMulti && spec.Name == "exec" {
			// Redis refuses EXEC by aborting the transaction.
			c.endMulti()
			c.srv.watches.unwatch(&c.watch)
			c.errReply("EXECABORT Transaction discarded because of: " + errBusy)
			return false
		}
		c.reject(errBusy)
		return false
	}
	if spec.kind == kindKeyed || spec.kind == kindKeyless || spec.FirstKey > 0 { // WATCH, SHARD.WATCH, SSUBSCRIBE: keys of the range
		if msg := c.checkKeys(spec, args); msg != "" {
			c.reject(msg)
			return false
		}
		if spec.kind == kindKeyed && !c.inMulti && c.txLockedKeys(spec, args) {
			c.reject(errTxLocked)
			return false
		}
	}
	if c.ps != nil && c.sess.Proto == resp.RESP2 && c.ps.total() > 0 {
		name := spec.Name
		if row != nil {
			name = row.Name
		}
		if msg := conncmd.SubscribedModeError(name); msg != "" {
			c.reject(msg)
			return false
		}
	}
	if c.inMulti && !spec.control {
		if spec.Flags&cmdtable.FlagNoMulti != 0 {
			c.reject(errNotInMulti)
			return false
		}
		if msg := conncmd.RefuseInMulti(spec.Command, args, c.sess.DB()); msg != "" {
			c.reject(msg)
			return false
		}
		if spec.Flags&cmdtable.FlagDenyOOM != 0 {
			if limit := c.srv.sizeLimit.Load(); limit > 0 && c.srv.db.LiveBytes() >= limit {
				c.reject(errOOM)
				return false
			}
		}
	}
	return true
}

// reject replies an error for a command that was refused before it ran.
func (c *client) reject(msg string) {
	if c.inMulti {
		c.multiDirty = true
	}
	c.out = resp.AppendError(c.out, msg)
}

// checkKeys returns the error for a data command this node must refuse: no
// assignment yet, a key outside the range, a write to an index never
// created under strict indexes. It reads key positions from the command
// table without allocating.
func (c *client) checkKeys(spec *cmdSpec, args [][]byte) string {
	if c.migRecv {
		return "" // a move's stream (migrate.go)
	}
	if spec.write && c.srv.mig.fence.Load() != nil {
		for _, i := range spec.KeyIndexes(args) {
			if _, fr := c.keyFenced(args[i]); fr != nil {
				return errFenced
			}
		}
	}
	a := c.srv.assign.Load()
	if a == nil {
		return errNoAssign
	}
	strict := spec.write && c.srv.strict.Load()
	if spec.KeyNum > 0 || spec.MoreKeys != nil {
		for _, i := range spec.KeyIndexes(args) {
			if msg := c.checkKey(a, args[i], strict); msg != "" {
				return msg
			}
		}
		return ""
	}
	last := spec.LastKeyIndex(args)
	for i := spec.FirstKey; i > 0 && i <= last; i += spec.Step {
		if msg := c.checkKey(a, args[i], strict); msg != "" {
			return msg
		}
		if spec.Step <= 0 {
			break
		}
	}
	return ""
}

// checkKey is checkKeys for one key.
func (c *client) checkKey(a *Assignment, key []byte, strict bool) string {
	h := bitcask.Hash(key)
	if p := rangemap.PositionOfHash(a.placement(key, h)); !a.hasPosition(p) {
		return a.wrongShard(p)
	}
	c.hkey, c.hval = key, h
	if strict {
		if idx := rangemap.Index(key); len(idx) > 0 && !c.srv.indexExists(idx) {
			return "ERR no such index '" + string(idx) + "'"
		}
	}
	return ""
}

func (c *client) enqueue(spec *cmdSpec, args [][]byte) {
	// The arguments alias the connection's read buffer, which the next
	// read reuses: the queue keeps a copy.
	n := 0
	for _, a := range args {
		n += len(a)
	}
	data := make([]byte, 0, n)
	cp := make([][]byte, len(args))
	for i, a := range args {
		data = append(data, a...)
		cp[i] = data[len(data)-len(a) : len(data) : len(data)]
	}
	args = cp
	c.queue = append(c.queue, queued{spec: spec, args: args})
	c.sess.SetMulti(len(c.queue))
	c.out = append(c.out, "+QUEUED\r\n"...)
}

// storageError is the reply text for a storage failure; unexpected ones
// are logged.
func (s *Server) storageError(err error) string {
	s.noteStorageError(err)
	switch {
	case errors.Is(err, bitcask.ErrWrongType):
		return errWrongType
	case errors.Is(err, bitcask.ErrValueTooLarge):
		return errTooBig
	case errors.Is(err, bitcask.ErrKeyTooLarge):
		return errKeyTooLarge
	case errors.Is(err, bitcask.ErrClosed):
		return "ERR the shard node is shutting down"
	}
	s.log.Error("storage error", "error", err)
	return "ERR storage error: " + err.Error()
}

// Reply helpers.

func (c *client) ok()                { c.out = append(c.out, "+OK\r\n"...) }
func (c *client) errReply(m string)  { c.out = resp.AppendError(c.out, m) }
func (c *client) intReply(n int64)   { c.out = resp.AppendInt(c.out, n) }
func (c *client) bulk(b []byte)      { c.out = resp.AppendBulk(c.out, b) }
func (c *client) bulkStr(s string)   { c.out = resp.AppendBulkString(c.out, s) }
func (c *client) null()              { c.out = resp.AppendNull(c.out, c.sess.Proto) }
func (c *client) simple(s string)    { c.out = resp.AppendSimple(c.out, s) }
func (c *client) array(n int)        { c.out = resp.AppendArray(c.out, n) }
func (c *client) mapHeader(n int)    { c.out = resp.AppendMap(c.out, c.sess.Proto, n) }
func (c *client) storeErr(err error) { c.errReply(c.srv.storageError(err)) }

// arityErr replies the wrong-arity error for a command or subcommand
// ("config|get").
func (c *client) arityErr(name string) { c.errReply(cmdtable.ErrWrongArity(name)) }
