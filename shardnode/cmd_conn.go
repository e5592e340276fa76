package shardnode

import (
	"crypto/subtle"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

func cmdPing(c *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.out = append(c.out, "+PONG\r\n"...)
	case 2:
		c.bulk(args[1])
	default:
		c.arityErr("ping")
	}
}

func cmdEcho(c *client, args [][]byte) { c.bulk(args[1]) }

func cmdQuit(c *client, args [][]byte) {
	c.ok()
	c.closing = true
}

func cmdReset(c *client, args [][]byte) {
	c.resetState()
	c.simple("RESET")
}

func cmdSelect(c *client, args [][]byte) {
	n, ok := parseInt(args[1])
	if !ok || n < -1<<31 || n > 1<<31-1 {
		c.errReply(errNotInteger)
		return
	}
	if n != 0 {
		c.errReply(errDBRange)
		return
	}
	c.ok()
}

// authenticate checks a user and password the way Redis's default user
// does: with requirepass, user "default" and that password; without, the
// default user takes any password.
func (c *client) authenticate(user, pass []byte) bool {
	if string(user) != "default" {
		return false
	}
	want := c.srv.cfg.RequirePass
	if want == "" {
		return true
	}
	return subtle.ConstantTimeCompare(pass, []byte(want)) == 1
}

func cmdAuth(c *client, args [][]byte) {
	if len(args) > 3 {
		c.errReply(errSyntax)
		return
	}
	if len(args) == 2 {
		if c.srv.cfg.RequirePass == "" {
			c.errReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		if !c.authenticate([]byte("default"), args[1]) {
			c.errReply(errWrongPass)
			return
		}
	} else if !c.authenticate(args[1], args[2]) {
		c.errReply(errWrongPass)
		return
	}
	c.authed = true
	c.ok()
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
func cmdHello(c *client, args [][]byte) {
	ver := int64(0)
	next := 1
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.errReply("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			c.errReply("NOPROTO unsupported protocol version")
			return
		}
		ver = v
		next = 2
	}
	var user, pass, name []byte
	hasName := false
	for j := next; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case eqFold(args[j], "auth") && more >= 2:
			user, pass = args[j+1], args[j+2]
			j += 2
		case eqFold(args[j], "setname") && more >= 1:
			name, hasName = args[j+1], true
			if !validName(name) {
				c.errReply("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			j++
		default:
			c.errReply("ERR Syntax error in HELLO option '" + string(args[j]) + "'")
			return
		}
	}
	if user != nil {
		if !c.authenticate(user, pass) {
			c.errReply(errWrongPass)
			return
		}
		c.authed = true
	}
	if !c.authed {
		c.errReply("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if hasName {
		c.setName(name)
	}
	if ver != 0 {
		c.proto = resp.Proto(ver)
		c.protoSeen.Store(int32(ver))
	}
	c.mapHeader(7)
	c.bulkStr("server")
	c.bulkStr("redis")
	c.bulkStr("version")
	c.bulkStr(redisVersion)
	c.bulkStr("proto")
	c.intReply(int64(c.proto))
	c.bulkStr("id")
	c.intReply(c.id)
	c.bulkStr("mode")
	c.bulkStr("standalone")
	c.bulkStr("role")
	c.bulkStr("master")
	c.bulkStr("modules")
	c.array(0)
}

// validName is Redis's rule for client names and library attributes:
// printable ASCII without spaces.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *client) setName(name []byte) {
	if len(name) == 0 {
		c.name.Store(nil)
		return
	}
	s := string(name)
	c.name.Store(&s)
}

var clientHelp = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GETNAME",
	"    Return the name of the current connection.",
	"ID",
	"    Return the ID of the current connection.",
	"INFO",
	"    Return information about the current client connection.",
	"LIST [TYPE <type>] [ID <id> [<id> ...]]",
	"    Return information about client connections.",
	"SETINFO <option> <value>",
	"    Set client meta attr. Options are:",
	"    * LIB-NAME: the client lib name.",
	"    * LIB-VER: the client lib version.",
	"SETNAME <name>",
	"    Assign the name <name> to the current connection.",
	"HELP",
	"    Print this help.",
}

func cmdClient(c *client, args [][]byte) {
	sub := args[1]
	arity := func(n int, name string) bool {
		if len(args) != n {
			c.arityErr("client|" + name)
			return false
		}
		return true
	}
	switch {
	case eqFold(sub, "id"):
		if arity(2, "id") {
			c.intReply(c.id)
		}
	case eqFold(sub, "getname"):
		if !arity(2, "getname") {
			return
		}
		if n := c.name.Load(); n != nil {
			c.bulkStr(*n)
		} else {
			c.null()
		}
	case eqFold(sub, "setname"):
		if !arity(3, "setname") {
			return
		}
		if !validName(args[2]) {
			c.errReply("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.setName(args[2])
		c.ok()
	case eqFold(sub, "setinfo"):
		if !arity(4, "setinfo") {
			return
		}
		attr := args[2]
		var dst = &c.libName
		switch {
		case eqFold(attr, "lib-name"):
		case eqFold(attr, "lib-ver"):
			dst = &c.libVer
		default:
			c.errReply("ERR Unrecognized option '" + string(attr) + "'")
			return
		}
		if !validName(args[3]) {
			c.errReply("ERR " + string(attr) + " cannot contain spaces, newlines or special characters.")
			return
		}
		v := string(args[3])
		dst.Store(&v)
		c.ok()
	case eqFold(sub, "info"):
		if !arity(2, "info") {
			return
		}
		c.out = resp.AppendVerbatim(c.out, c.proto, "txt", c.infoLine(time.Now())+"\n")
	case eqFold(sub, "list"):
		clientList(c, args)
	case eqFold(sub, "help"):
		if arity(2, "help") {
			c.helpReply(clientHelp)
		}
	default:
		c.errReply(cmdtable.ErrUnknownSubcommand("client", string(sub)))
	}
}

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
func clientList(c *client, args [][]byte) {
	typeOK := true
	var ids map[int64]bool
	for i := 2; i < len(args); i++ {
		switch {
		case eqFold(args[i], "type") && i+1 < len(args):
			t := args[i+1]
			switch {
			case eqFold(t, "normal"):
			case eqFold(t, "master"), eqFold(t, "replica"), eqFold(t, "slave"), eqFold(t, "pubsub"):
				typeOK = false
			default:
				c.errReply("ERR Unknown client type '" + string(t) + "'")
				return
			}
			i++
		case eqFold(args[i], "id") && i+1 < len(args):
			ids = make(map[int64]bool)
			for i++; i < len(args); i++ {
				id, ok := parseInt(args[i])
				if !ok || id <= 0 {
					c.errReply("ERR Invalid client ID")
					return
				}
				ids[id] = true
			}
		default:
			c.errReply(errSyntax)
			return
		}
	}
	var b strings.Builder
	now := time.Now()
	if typeOK {
		c.srv.mu.Lock()
		all := make([]*client, 0, len(c.srv.clients))
		for o := range c.srv.clients {
			all = append(all, o)
		}
		c.srv.mu.Unlock()
		sortClients(all)
		for _, o := range all {
			if ids != nil && !ids[o.id] {
				continue
			}
			b.WriteString(o.infoLine(now))
			b.WriteByte('\n')
		}
	}
	c.out = resp.AppendVerbatim(c.out, c.proto, "txt", b.String())
}

func sortClients(cs []*client) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].id < cs[j-1].id; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// infoLine is one line of CLIENT LIST / CLIENT INFO with the fields the
// node tracks; it is called from other connections' goroutines, so it reads
// only atomics and immutable fields.
func (c *client) infoLine(now time.Time) string {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	flags := "N"
	multi := c.multiLen.Load()
	if multi >= 0 {
		flags = "x"
	}
	cmd := "NULL"
	if p := c.lastCmd.Load(); p != nil {
		cmd = *p
	}
	laddr := c.laddr
	var b []byte
	b = append(b, "id="...)
	b = strconv.AppendInt(b, c.id, 10)
	b = append(b, " addr="...)
	b = append(b, c.addr...)
	b = append(b, " laddr="...)
	b = append(b, laddr...)
	b = append(b, " name="...)
	b = append(b, str(c.name.Load())...)
	b = append(b, " age="...)
	b = strconv.AppendInt(b, int64(now.Sub(c.created)/time.Second), 10)
	b = append(b, " idle="...)
	b = strconv.AppendInt(b, max(0, (now.UnixMilli()-c.lastActive.Load())/1000), 10)
	b = append(b, " flags="...)
	b = append(b, flags...)
	b = append(b, " db=0 sub=0 psub=0 ssub=0 multi="...)
	b = strconv.AppendInt(b, int64(multi), 10)
	b = append(b, " cmd="...)
	b = append(b, cmd...)
	b = append(b, " user=default redir=-1 resp="...)
	b = strconv.AppendInt(b, int64(c.protoSeen.Load()), 10)
	b = append(b, " lib-name="...)
	b = append(b, str(c.libName.Load())...)
	b = append(b, " lib-ver="...)
	b = append(b, str(c.libVer.Load())...)
	return string(b)
}
