package conncmd

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// RedisVersion is the Redis version both servers present in HELLO and INFO;
// clients choose features by it (CLIENT SETINFO is 7.2's).
const RedisVersion = "7.2.4"

// Session is the per-connection state the shared commands read and change.
// The plain fields belong to the connection's goroutine; the atomics are read
// by other connections (CLIENT LIST, CLIENT KILL, INFO).
type Session struct {
	ID      int64
	Addr    string // remote address, CLIENT LIST's addr
	LAddr   string // local address, CLIENT LIST's laddr
	Created time.Time
	// Proto is the RESP version the client chose with HELLO.
	Proto resp.Proto
	// Authed is false until AUTH or HELLO AUTH when a password is set.
	Authed bool
	// Quit asks the server to close the connection once the replies of the
	// current batch are written (QUIT, CLIENT KILL of itself).
	Quit bool

	// CLIENT REPLY, on a Conn that is a ReplyController: ReplyOff drops
	// every reply; SkipArm is set by SKIP to drop the next command's;
	// ReplyForce makes the current command's reply go out although replies
	// are off (ON, RESET).
	ReplyOff, SkipArm, ReplyForce bool

	db        atomic.Int32 // the selected database
	fd        atomic.Int64 // the socket's descriptor, -1 when unknown
	name      atomic.Pointer[string]
	libName   atomic.Pointer[string]
	libVer    atomic.Pointer[string]
	protoSeen atomic.Int32
	multi     atomic.Int32 // queued commands, -1 outside MULTI
	watching  atomic.Bool
	readonly  atomic.Bool // READONLY, until READWRITE or RESET
	blocked   atomic.Bool // waiting in a blocking command (flags=b)
	// killed is set by CLIENT KILL before the connection is closed: the
	// close is seen by the connection's own goroutine later, and until it
	// has left the host's list neither CLIENT LIST nor another KILL shows it.
	killed     atomic.Bool
	lastCmd    atomic.Pointer[string]
	lastActive atomic.Int64 // Unix milliseconds
	// subs are the connection's subscriptions: channels, patterns and
	// shard channels (CLIENT LIST's sub, psub and ssub).
	subs [3]atomic.Int32
	omem atomic.Int64 // reply bytes built and not yet written: CLIENT LIST's omem
}

// Subscribed reports whether the connection has a subscription (Redis's
// CLIENT_PUBSUB: in RESP2 only the Pub/Sub commands, PING, QUIT and RESET
// are allowed then).
func (s *Session) Subscribed() bool {
	return s.subs[0].Load()+s.subs[1].Load()+s.subs[2].Load() > 0
}

// SubscribedModeError is Redis's refusal of a command in RESP2 subscribed
// mode, for the command's full name ("get", "config|get"), or "" when
// name is one of the commands allowed there.
func SubscribedModeError(name string) string {
	switch name {
	case "ping", "subscribe", "ssubscribe", "unsubscribe", "sunsubscribe", "psubscribe", "punsubscribe", "quit", "reset":
		return ""
	}
	return "ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
}

// SetSubs records the connection's channel, pattern and shard channel
// subscription counts.
func (s *Session) SetSubs(channels, patterns, shard int) {
	s.subs[0].Store(int32(channels))
	s.subs[1].Store(int32(patterns))
	s.subs[2].Store(int32(shard))
}

// Init sets a new connection's session: RESP2, no name, outside MULTI,
// authenticated unless the server has a password.
func (s *Session) Init(id int64, addr, laddr string, requirePass string) {
	s.ID, s.Addr, s.LAddr = id, addr, laddr
	s.Created = time.Now()
	s.Proto = resp.RESP2
	s.Authed = requirePass == ""
	s.fd.Store(-1)
	s.protoSeen.Store(2)
	s.multi.Store(-1)
	s.lastActive.Store(s.Created.UnixMilli())
}

// reset is what RESET does to the session: the state of a new connection
// (the identity, addresses and age stay).
func (s *Session) reset(requirePass string) {
	s.Proto = resp.RESP2
	s.protoSeen.Store(2)
	s.Authed = requirePass == ""
	s.db.Store(0)
	s.ReplyOff, s.SkipArm, s.ReplyForce = false, false, true
	s.name.Store(nil)
	s.multi.Store(-1)
	s.watching.Store(false)
	s.readonly.Store(false)
}

// SetFD records the socket's descriptor for CLIENT LIST (-1: none).
func (s *Session) SetFD(fd int) { s.fd.Store(int64(fd)) }

// SetMulti records the number of queued commands, -1 outside MULTI.
func (s *Session) SetMulti(n int) { s.multi.Store(int32(n)) }

// SetWatching records whether the connection WATCHes keys.
func (s *Session) SetWatching(w bool) { s.watching.Store(w) }

// Touch records the time of the connection's latest batch (CLIENT LIST idle).
func (s *Session) Touch(nowMs int64) { s.lastActive.Store(nowMs) }

// SetLastCmd records the name of the connection's last command (CLIENT LIST
// cmd). The pointer is kept, not copied: pass a command table row's name.
func (s *Session) SetLastCmd(name *string) { s.lastCmd.Store(name) }

// SetLastCommand records the command args called, as Redis 7's lastcmd:
// a container's subcommand by its full name ("client|list", "config|get"),
// the container itself when args has no subcommand, and nothing (CLIENT
// LIST's cmd=NULL) for an unknown command or subcommand (row nil, or args[1]
// not one of row's subcommands on side).
func (s *Session) SetLastCommand(row *cmdtable.Command, args [][]byte, side cmdtable.Side) {
	if row == nil {
		s.lastCmd.Store(nil)
		return
	}
	sub, known := row.Subcommand(args, side)
	switch {
	case !known:
		s.lastCmd.Store(nil)
	case sub != nil:
		s.lastCmd.Store(&sub.Name)
	default:
		s.lastCmd.Store(&row.Name)
	}
}

// Name is the name CLIENT SETNAME or HELLO SETNAME gave, or "".
func (s *Session) Name() string { return load(&s.name) }

func (s *Session) setName(name []byte) {
	if len(name) == 0 {
		s.name.Store(nil)
		return
	}
	v := string(name)
	s.name.Store(&v)
}

func load(p *atomic.Pointer[string]) string {
	if v := p.Load(); v != nil {
		return *v
	}
	return ""
}

// Line is the connection's line of CLIENT LIST and CLIENT INFO, without the
// newline, with Redis 7's fields in Redis's order. Fields of Redis's memory
// accounting that neither server keeps are 0. Other connections call it, so
// it reads only the atomics and the fields fixed at Init.
func (s *Session) Line(now time.Time) string {
	// Redis's flag letters in Redis's order; N when there is none.
	flags := ""
	multi := s.multi.Load()
	if multi >= 0 {
		flags += "x"
	}
	if s.blocked.Load() {
		flags += "b"
	}
	if s.readonly.Load() {
		flags += "r"
	}
	sub, psub, ssub := s.subs[0].Load(), s.subs[1].Load(), s.subs[2].Load()
	if sub+psub+ssub > 0 {
		flags += "P"
	}
	if flags == "" {
		flags = "N"
	}
	cmd := "NULL"
	if p := s.lastCmd.Load(); p != nil {
		cmd = *p
	}
	watch := 0
	if s.watching.Load() {
		watch = 1
	}
	b := make([]byte, 0, 320)
	b = append(b, "id="...)
	b = strconv.AppendInt(b, s.ID, 10)
	b = append(b, " addr="...)
	b = append(b, s.Addr...)
	b = append(b, " laddr="...)
	b = append(b, s.LAddr...)
	b = append(b, " fd="...)
	b = strconv.AppendInt(b, s.fd.Load(), 10)
	b = append(b, " name="...)
	b = append(b, load(&s.name)...)
	b = append(b, " age="...)
	b = strconv.AppendInt(b, int64(now.Sub(s.Created)/time.Second), 10)
	b = append(b, " idle="...)
	b = strconv.AppendInt(b, max(0, (now.UnixMilli()-s.lastActive.Load())/1000), 10)
	b = append(b, " flags="...)
	b = append(b, flags...)
	b = append(b, " db="...)
	b = strconv.AppendInt(b, int64(s.db.Load()), 10)
	b = append(b, " sub="...)
	b = strconv.AppendInt(b, int64(sub), 10)
	b = append(b, " psub="...)
	b = strconv.AppendInt(b, int64(psub), 10)
	b = append(b, " ssub="...)
	b = strconv.AppendInt(b, int64(ssub), 10)
	b = append(b, " multi="...)
	b = strconv.AppendInt(b, int64(multi), 10)
	b = append(b, " watch="...)
	b = strconv.AppendInt(b, int64(watch), 10)
	b = append(b, " qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 tot-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem="...)
	b = strconv.AppendInt(b, s.omem.Load(), 10)
	b = append(b, " events=r cmd="...)
	b = append(b, cmd...)
	b = append(b, " user=default redir=-1 resp="...)
	b = strconv.AppendInt(b, int64(s.protoSeen.Load()), 10)
	b = append(b, " lib-name="...)
	b = append(b, load(&s.libName)...)
	b = append(b, " lib-ver="...)
	b = append(b, load(&s.libVer)...)
	return string(b)
}

// ReadOnly reports whether the connection sent READONLY (a replica serves
// its reads only then).
func (s *Session) ReadOnly() bool { return s.readonly.Load() }

// SetBlocked says whether the connection waits in a blocking command
// (BLPOP, ...), which CLIENT LIST shows as flags=b.
func (s *Session) SetBlocked(b bool) { s.blocked.Store(b) }

// SetOutputMem records the reply bytes waiting for the client to read them
// (CLIENT LIST's omem).
func (s *Session) SetOutputMem(n int64) { s.omem.Store(n) }

// DB is the selected database (SELECT).
func (s *Session) DB() int { return int(s.db.Load()) }

// SetDB selects database n (a script's SELECT is undone when it returns).
func (s *Session) SetDB(n int) { s.db.Store(int32(n)) }
