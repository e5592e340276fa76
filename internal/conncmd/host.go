package conncmd

import (
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// Host is what a server tells the shared commands about itself.
type Host interface {
	// RequirePass is the password of the default user, "" for none.
	RequirePass() string
	// Databases is the number of databases SELECT accepts.
	Databases() int
	// Sessions returns every open connection (CLIENT LIST, CLIENT KILL).
	Sessions() []*Session
	// Commands lists the rows of the command table this server serves, in
	// table order; Lookup finds one of them by name, nil when the server
	// does not serve it.
	Commands() []*cmdtable.Command
	Lookup(name []byte) *cmdtable.Command
	// Side is which of the two servers this is, for the subcommands only
	// one of them serves (CLIENT KILL is the proxy's).
	Side() cmdtable.Side
	// ConfigParams lists the settings CONFIG GET and SET know.
	ConfigParams() []Param
	// ResetStats is CONFIG RESETSTAT.
	ResetStats()
	// Observer is the server's command statistics, slow log and latency
	// monitor (SLOWLOG, LATENCY).
	Observer() *Observer
}

// Roler is a Host that may be a replica: Role is HELLO's role, "master"
// or "replica".
type Roler interface {
	Role() string
}

// Killer is a Host that can close another connection (CLIENT KILL). Kill
// closes the connection of s, which is not the caller's.
type Killer interface {
	Kill(s *Session)
}

// Unblocker is a Host that can end another client's blocking command
// (CLIENT UNBLOCK). Unblock unblocks the client whose id is id, when it is
// blocked, as if its timeout passed (asErr: with UnblockedErr instead), and
// returns 1; 0 when it is not blocked.
type Unblocker interface {
	Unblock(id int64, asErr bool) int64
}

// Conn is the connection a command came from.
type Conn interface {
	Session() *Session
	// SwitchProto is called before HELLO changes the session's protocol to
	// p, for what the server must do first (the proxy sends the commands
	// already queued in the old protocol).
	SwitchProto(p resp.Proto)
	// ResetConn is RESET's part that is the server's own (leave MULTI,
	// forget WATCHed keys); the session is reset after it.
	ResetConn()
}

// ReplyController is a Conn that honours CLIENT REPLY through the Session's
// ReplyOff, SkipArm and ReplyForce.
type ReplyController interface {
	Conn
	ControlsReplies()
}

// Param is one setting CONFIG GET shows. Set is nil for a setting that
// cannot change at run time; otherwise Check validates a value (an error
// reason, "" when fine) before any pair of a CONFIG SET is applied, and Set
// applies it.
type Param struct {
	Name  string
	Get   func() string
	Check func(v []byte) string
	Set   func(v []byte)
}

// Handler runs one shared command: it appends the reply to out and returns
// it. The caller checked that a container's subcommand exists and the
// arity (the table's, a subcommand's own), then authentication.
type Handler func(h Host, c Conn, out []byte, args [][]byte) []byte

// Handlers are the shared commands by their command table name.
var Handlers = map[string]Handler{
	"ping":    Ping,
	"echo":    Echo,
	"quit":    Quit,
	"reset":   Reset,
	"select":  Select,
	"swapdb":  SwapDB,
	"auth":    Auth,
	"hello":   Hello,
	"time":    Time,
	"client":  Client,
	"command": Command,
	"config":  Config,
	"slowlog": Slowlog,
	"latency": Latency,

	"readonly":  ReadOnly,
	"readwrite": ReadWrite,
}

// Databases is the number of databases both servers have, Redis's
// default 16 (SELECT 0-15).
const Databases = 16
