package conncmd

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

var clientHelp = []string{
	"GETNAME", "    Return the name of the current connection.",
	"ID", "    Return the ID of the current connection.",
	"INFO", "    Return information about the current client connection.",
	"KILL <ip:port>", "    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are:",
	"    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
	"    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
	"    * USER <username>", "      Kill connections authenticated by <username>.",
	"    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
	"    * ID <client-id>", "      Kill connections by client id.",
	"LIST [options ...]", "    Return information about client connections. Options:",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Return clients of specified type.",
	"    * ID <client-id> [<client-id> ...]", "      Return clients of the specified ids.",
	"REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
	"SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
	"SETNAME <name>", "    Assign the name <name> to the current connection.",
	"NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
	"NO-TOUCH (ON|OFF)", "    Will not touch LRU/LFU stats when this mode is on.",
	"UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
}

// Client is CLIENT subcommand [args].
func Client(h Host, c Conn, out []byte, args [][]byte) []byte {
	s := c.Session()
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "id":
		return resp.AppendInt(out, s.ID)
	case "getname":
		if n := s.name.Load(); n != nil {
			return resp.AppendBulkString(out, *n)
		}
		return resp.AppendNull(out, s.Proto)
	case "setname":
		if !ValidName(args[2]) {
			return resp.AppendError(out, errBadName)
		}
		s.setName(args[2])
		return resp.AppendOK(out)
	case "setinfo":
		dst := &s.libName
		switch strings.ToLower(string(args[2])) {
		case "lib-name":
		case "lib-ver":
			dst = &s.libVer
		default:
			return resp.AppendError(out, "ERR Unrecognized option '"+string(args[2])+"'")
		}
		if !ValidName(args[3]) {
			return resp.AppendError(out, "ERR "+string(args[2])+" cannot contain spaces, newlines or special characters.")
		}
		v := string(args[3])
		dst.Store(&v)
		return resp.AppendOK(out)
	case "info":
		return resp.AppendVerbatim(out, s.Proto, "txt", s.Line(time.Now())+"\n")
	case "list":
		return clientList(h, s, out, args)
	case "kill":
		if k, ok := h.(Killer); ok {
			return clientKill(h, k, s, out, args)
		}
	case "unblock":
		if u, ok := h.(Unblocker); ok {
			return clientUnblock(u, out, args)
		}
	case "reply":
		if _, ok := c.(ReplyController); !ok {
			break
		}
		switch strings.ToLower(string(args[2])) {
		case "on":
			s.ReplyOff, s.ReplyForce = false, true
		case "off":
			s.ReplyOff = true // this reply is dropped too
		case "skip":
			s.SkipArm = !s.ReplyOff // dropped, as is the next command's reply
		default:
			return resp.AppendError(out, ErrSyntax)
		}
		return resp.AppendOK(out)
	case "no-evict", "no-touch":
		// Neither server evicts, nor keeps LRU/LFU stats: either mode is
		// what it already does.
		switch strings.ToLower(string(args[2])) {
		case "on", "off":
			return resp.AppendOK(out)
		}
		return resp.AppendError(out, ErrSyntax)
	case "help":
		return AppendHelp(out, "CLIENT", clientHelp)
	}
	return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("client", string(args[1])))
}

// UnblockedErr is the error a client unblocked by CLIENT UNBLOCK ERROR
// gets, Redis's text.
const UnblockedErr = "UNBLOCKED client unblocked via CLIENT UNBLOCK"

// clientUnblock is CLIENT UNBLOCK id [TIMEOUT|ERROR], with Redis 7.0's
// order of checks: the reason, then the id; 1 when the client was blocked
// and is now unblocked, else 0 (no such client, or not blocked).
func clientUnblock(u Unblocker, out []byte, args [][]byte) []byte {
	if len(args) > 4 {
		return resp.AppendError(out, "ERR unknown subcommand or wrong number of arguments for '"+string(args[1])+"'. Try CLIENT HELP.")
	}
	asErr := false
	if len(args) == 4 {
		switch strings.ToLower(string(args[3])) {
		case "timeout":
		case "error":
			asErr = true
		default:
			return resp.AppendError(out, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
		}
	}
	id, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		return resp.AppendError(out, "ERR value is not an integer or out of range")
	}
	return resp.AppendInt(out, u.Unblock(id, asErr))
}

// Client types of CLIENT LIST and CLIENT KILL: a client is pubsub while
// it has subscriptions, else normal; neither server has replicas or a
// master.
const (
	typeAny = iota
	typeNormal
	typePubsub
	typeNone
)

// clientType reads the TYPE of CLIENT LIST and CLIENT KILL, or returns
// Redis's error for a type that does not exist.
func clientType(arg []byte) (typ int, errMsg string) {
	switch strings.ToLower(string(arg)) {
	case "normal":
		return typeNormal, ""
	case "pubsub":
		return typePubsub, ""
	case "master", "replica", "slave":
		return typeNone, ""
	}
	return typeNone, "ERR Unknown client type '" + string(arg) + "'"
}

// ofType reports whether the session is of type typ.
func (s *Session) ofType(typ int) bool {
	switch typ {
	case typeNormal:
		return !s.Subscribed()
	case typePubsub:
		return s.Subscribed()
	case typeNone:
		return false
	}
	return true
}

// liveSessions is h's sessions less those CLIENT KILL closed whose
// goroutines have not left yet: Redis frees a killed client at once, so
// neither CLIENT LIST nor a later CLIENT KILL sees it.
func liveSessions(h Host) []*Session {
	all := h.Sessions()
	live := all[:0]
	for _, o := range all {
		if !o.killed.Load() {
			live = append(live, o)
		}
	}
	return live
}

func sortedSessions(h Host) []*Session {
	all := liveSessions(h)
	slices.SortFunc(all, func(a, b *Session) int { return int(a.ID - b.ID) })
	return all
}

// clientList is CLIENT LIST [TYPE type] [ID id [id ...]].
func clientList(h Host, s *Session, out []byte, args [][]byte) []byte {
	typ := typeAny
	var ids map[int64]bool
	for i := 2; i < len(args); i++ {
		switch {
		case bytes.EqualFold(args[i], []byte("type")) && i+1 < len(args):
			t, msg := clientType(args[i+1])
			if msg != "" {
				return resp.AppendError(out, msg)
			}
			if typ == typeAny || typ == t {
				typ = t
			} else {
				typ = typeNone // two TYPEs no client is both of
			}
			i++
		case bytes.EqualFold(args[i], []byte("id")) && i+1 < len(args):
			if ids == nil {
				ids = map[int64]bool{}
			}
			for i++; i < len(args); i++ {
				n, err := strconv.ParseInt(string(args[i]), 10, 64)
				if err != nil || n <= 0 {
					return resp.AppendError(out, "ERR Invalid client ID")
				}
				ids[n] = true
			}
		default:
			return resp.AppendError(out, ErrSyntax)
		}
	}
	var b strings.Builder
	if typ != typeNone {
		now := time.Now()
		for _, o := range sortedSessions(h) {
			if ids != nil && !ids[o.ID] || !o.ofType(typ) {
				continue
			}
			b.WriteString(o.Line(now))
			b.WriteByte('\n')
		}
	}
	return resp.AppendVerbatim(out, s.Proto, "txt", b.String())
}

// clientKill closes other clients' connections, as Redis's CLIENT KILL
// does: the old form (an address; +OK or "No such client", and the caller
// may name itself) and the filter form (every filter must match; the number
// of connections closed). A caller that kills itself gets its reply first.
func clientKill(h Host, k Killer, s *Session, out []byte, args [][]byte) []byte {
	var (
		id          int64
		addr, laddr string
		typ         = typeAny
		skipme      = true
	)
	old := len(args) == 3
	if old {
		addr, skipme = string(args[2]), false
	} else {
		for i := 2; i < len(args); i += 2 {
			if i+1 >= len(args) {
				return resp.AppendError(out, ErrSyntax)
			}
			val := string(args[i+1])
			switch strings.ToLower(string(args[i])) {
			case "id":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n <= 0 {
					return resp.AppendError(out, "ERR client-id should be greater than 0")
				}
				id = n
			case "type":
				t, msg := clientType(args[i+1])
				if msg != "" {
					return resp.AppendError(out, msg)
				}
				typ = t
			case "addr":
				addr = val
			case "laddr":
				laddr = val
			case "user":
				if val != "default" { // the only user there is
					return resp.AppendError(out, "ERR No such user '"+val+"'")
				}
			case "skipme":
				switch strings.ToLower(val) {
				case "yes":
					skipme = true
				case "no":
					skipme = false
				default:
					return resp.AppendError(out, ErrSyntax)
				}
			default:
				return resp.AppendError(out, ErrSyntax)
			}
		}
	}
	killed := 0
	for _, o := range liveSessions(h) {
		if !o.ofType(typ) || (id != 0 && o.ID != id) || (addr != "" && o.Addr != addr) ||
			(laddr != "" && o.LAddr != laddr) || (o == s && skipme) {
			continue
		}
		if o.killed.Swap(true) {
			continue // already closing
		}
		killed++
		if o == s {
			s.Quit = true // after this batch's replies, like QUIT
			continue
		}
		k.Kill(o)
	}
	switch {
	case !old:
		return resp.AppendInt(out, int64(killed))
	case killed == 0:
		return resp.AppendError(out, "ERR No such client")
	}
	return resp.AppendOK(out)
}
