package conncmd

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// Redis's limits on what a slow log entry keeps of a command.
const (
	slowlogMaxArgs   = 32
	slowlogMaxString = 128
)

// SlowLog is Redis's slow log: the latest commands that took at least
// slowlog-log-slower-than microseconds, newest first, at most
// slowlog-max-len of them. Servers call Threshold once per pipeline and Add
// only for a slow one, so a server whose pipelines are fast pays one atomic
// load per pipeline.
type SlowLog struct {
	slower atomic.Int64 // µs; negative: off
	maxLen atomic.Int64

	mu      sync.Mutex
	entries []slowEntry // newest first
	nextID  int64
}

type slowEntry struct {
	id, unix, usec int64
	args           []string
	peer, name     string
}

// Redis's defaults.
const (
	DefaultSlowlogSlowerThan = 10000
	DefaultSlowlogMaxLen     = 128
)

func (l *SlowLog) init() {
	l.slower.Store(DefaultSlowlogSlowerThan)
	l.maxLen.Store(DefaultSlowlogMaxLen)
}

// Threshold is slowlog-log-slower-than in microseconds; negative when the
// slow log is off.
func (l *SlowLog) Threshold() int64 { return l.slower.Load() }

// Add logs a command (its arguments, args[0] the name) that took usec, from
// the client at peer named name. Arguments are cut as Redis cuts them, and
// AUTH's and HELLO's passwords are replaced by "(redacted)".
func (l *SlowLog) Add(args [][]byte, usec int64, peer, name string) {
	n := min(len(args), slowlogMaxArgs)
	kept := make([]string, n)
	redacted := Redacted(args)
	for i := 0; i < n; i++ {
		if i == n-1 && len(args) > slowlogMaxArgs {
			kept[i] = "... (" + strconv.Itoa(len(args)-slowlogMaxArgs+1) + " more arguments)"
			break
		}
		a := args[i]
		switch {
		case redacted(i):
			kept[i] = "(redacted)"
		case len(a) > slowlogMaxString:
			kept[i] = string(a[:slowlogMaxString]) + "... (" + strconv.Itoa(len(a)-slowlogMaxString) + " more bytes)"
		default:
			kept[i] = string(a)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := slowEntry{id: l.nextID, unix: time.Now().Unix(), usec: usec, args: kept, peer: peer, name: name}
	l.nextID++
	l.entries = append(l.entries, slowEntry{})
	copy(l.entries[1:], l.entries)
	l.entries[0] = e
	// As Redis, trimmed when an entry is added: lowering slowlog-max-len
	// shows at the next slow command.
	if max := int(l.maxLen.Load()); len(l.entries) > max {
		clear(l.entries[max:])
		l.entries = l.entries[:max]
	}
}

// Redacted returns which arguments of a command MONITOR and SLOWLOG must not
// show: every argument of AUTH, the user and password after HELLO's AUTH.
func Redacted(args [][]byte) func(i int) bool {
	switch {
	case len(args) > 1 && strings.EqualFold(string(args[0]), "auth"):
		return func(i int) bool { return i > 0 }
	case len(args) > 2 && strings.EqualFold(string(args[0]), "hello"):
		var hide []int
		for j := 2; j < len(args); j++ {
			more := len(args) - 1 - j
			switch {
			case strings.EqualFold(string(args[j]), "auth") && more >= 2:
				hide = append(hide, j+1, j+2)
				j += 2
			case strings.EqualFold(string(args[j]), "setname") && more >= 1:
				j++
			}
		}
		return func(i int) bool {
			for _, h := range hide {
				if h == i {
					return true
				}
			}
			return false
		}
	}
	return func(int) bool { return false }
}

func (l *SlowLog) reset() {
	l.mu.Lock()
	clear(l.entries)
	l.entries = l.entries[:0]
	l.mu.Unlock()
}

var slowlogHelp = []string{
	"GET [<count>]", "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
	"    Entries are made of:", "    id, timestamp, time in microseconds, arguments array, client IP and port,",
	"    client name",
	"LEN", "    Return the length of the slowlog.",
	"RESET", "    Reset the slowlog.",
}

// Slowlog is SLOWLOG GET [count] | LEN | RESET | HELP.
func Slowlog(h Host, c Conn, out []byte, args [][]byte) []byte {
	l := &h.Observer().Slow
	sub := strings.ToLower(string(args[1]))
	arityErr := func() []byte { return resp.AppendError(out, cmdtable.ErrWrongArity("slowlog|"+sub)) }
	switch sub {
	case "get":
		if len(args) > 3 {
			// Redis names the subcommand as the client spelled it.
			return resp.AppendError(out, "ERR unknown subcommand or wrong number of arguments for '"+string(args[1])+"'. Try SLOWLOG HELP.")
		}
		count := int64(10)
		if len(args) == 3 {
			n, err := strconv.ParseInt(string(args[2]), 10, 64)
			if err != nil || n < -1 {
				return resp.AppendError(out, "ERR count should be greater than or equal to -1")
			}
			count = n
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		n := len(l.entries)
		if count >= 0 && count < int64(n) {
			n = int(count)
		}
		out = resp.AppendArray(out, n)
		for _, e := range l.entries[:n] {
			out = resp.AppendArray(out, 6)
			out = resp.AppendInt(out, e.id)
			out = resp.AppendInt(out, e.unix)
			out = resp.AppendInt(out, e.usec)
			out = resp.AppendArray(out, len(e.args))
			for _, a := range e.args {
				out = resp.AppendBulkString(out, a)
			}
			out = resp.AppendBulkString(out, e.peer)
			out = resp.AppendBulkString(out, e.name)
		}
		return out
	case "len":
		if len(args) != 2 {
			return arityErr()
		}
		l.mu.Lock()
		n := len(l.entries)
		l.mu.Unlock()
		return resp.AppendInt(out, int64(n))
	case "reset":
		if len(args) != 2 {
			return arityErr()
		}
		l.reset()
		return resp.AppendOK(out)
	case "help":
		if len(args) != 2 {
			return arityErr()
		}
		return AppendHelp(out, "SLOWLOG", slowlogHelp)
	}
	return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("slowlog", string(args[1])))
}
