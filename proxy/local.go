package proxy

import (
	"crypto/subtle"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// redisVersion is the Redis version the proxy presents in HELLO and INFO:
// clients pick features by it.
const redisVersion = "7.2.4"

// local answers the connection and server commands, and the proxy's own.
func (c *client) local(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	switch ci.Name {
	case "ping":
		if len(args) > 2 {
			c.errorReply(cmdtable.ErrWrongArity("ping"))
		} else if len(args) == 2 {
			c.bulk(args[1])
		} else {
			c.simple("PONG")
		}
	case "echo":
		c.bulk(args[1])
	case "quit":
		c.ok()
		c.quit = true
	case "reset":
		c.reset()
	case "time":
		now := time.Now()
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, 2)
		c.out = resp.AppendBulkInt(c.out, now.Unix())
		c.out = resp.AppendBulkInt(c.out, int64(now.Nanosecond()/1000))
		c.reply(mark)
	case "select":
		n, err := strconv.ParseInt(string(args[1]), 10, 64)
		switch {
		case err != nil:
			c.errorReply("ERR value is not an integer or out of range")
		case n != 0:
			c.errorReply("ERR DB index is out of range")
		default:
			c.ok()
		}
	case "auth":
		c.auth(args)
	case "hello":
		c.hello(args)
	case "client":
		c.clientCmd(args)
	case "command":
		c.command(args)
	case "config":
		c.config(args)
	case "info":
		c.infoCmd(args)
	case "shard.locate":
		p := rangemap.Position(args[1])
		sh := c.tbl.shards[c.tbl.m.Find(p)]
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, 3)
		c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(p))
		c.out = resp.AppendBulkString(c.out, sh.name)
		c.out = resp.AppendBulkString(c.out, sh.addr)
		c.reply(mark)
	case "shard.map":
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(c.tbl.shards))
		for i, sh := range c.tbl.shards {
			e := c.tbl.m.Shards[i]
			c.out = resp.AppendArray(c.out, 5)
			c.out = resp.AppendBulkString(c.out, sh.name)
			c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(e.Start))
			c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(e.End))
			c.out = resp.AppendBulkString(c.out, sh.addr)
			if backendUp(sh) {
				c.out = resp.AppendInt(c.out, 1)
			} else {
				c.out = resp.AppendInt(c.out, 0)
			}
		}
		c.reply(mark)
	case "shard.reload":
		if len(args) > 1 {
			c.errorReply("ERR syntax error")
			return
		}
		c.barrier()
		if err := c.s.Reload(); err != nil {
			c.s.log.Warn("map reload failed", "error", err)
			c.errorReply("ERR " + err.Error())
			return
		}
		c.s.log.Info("map reloaded", "by", "SHARD.RELOAD")
		c.tbl = c.s.table.Load()
		c.ok()
	default:
		c.errorReply(cmdtable.ErrUnknownCommand(args[0], args[1:]))
	}
}

func (c *client) reset() {
	if c.inMulti {
		c.endMulti()
	}
	if c.pin != nil {
		c.unpinAfter = true
	}
	if c.proto != resp.RESP2 {
		c.barrier()
		c.proto = resp.RESP2
	}
	c.authed = c.s.cfg.RequirePass == ""
	c.replyOff, c.skipArm, c.replyForce = false, false, true
	c.infoMu.Lock()
	c.info.name = ""
	c.info.proto = resp.RESP2
	c.infoMu.Unlock()
	c.simple("RESET")
}

// checkPass checks a user and password against requirepass; the only user
// is "default".
func (c *client) checkPass(user, pass []byte) bool {
	want := c.s.cfg.RequirePass
	return string(user) == "default" && subtle.ConstantTimeCompare(pass, []byte(want)) == 1
}

const errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func (c *client) auth(args [][]byte) {
	if len(args) > 3 {
		c.errorReply("ERR syntax error")
		return
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if c.s.cfg.RequirePass == "" {
		if len(args) == 2 {
			c.errorReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		if string(user) == "default" {
			c.ok() // the default user accepts any password when there is none
			return
		}
		c.errorReply(errWrongPass)
		return
	}
	if !c.checkPass(user, pass) {
		c.errorReply(errWrongPass)
		return
	}
	c.authed = true
	c.ok()
}

// hello handles HELLO [protover [AUTH user pass] [SETNAME name]].
func (c *client) hello(args [][]byte) {
	proto := c.proto
	if len(args) >= 2 {
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil {
			c.errorReply("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.errorReply("NOPROTO unsupported protocol version")
			return
		}
		proto = resp.Proto(v)
	}
	var user, pass, name []byte
	authGiven, nameGiven := false, false
	for i := 2; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		switch {
		case opt == "auth" && i+2 < len(args):
			user, pass = args[i+1], args[i+2]
			authGiven = true
			i += 2
		case opt == "setname" && i+1 < len(args):
			name = args[i+1]
			nameGiven = true
			i++
		default:
			c.errorReply("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	if authGiven {
		if c.s.cfg.RequirePass == "" {
			if string(user) != "default" {
				c.errorReply(errWrongPass)
				return
			}
		} else if !c.checkPass(user, pass) {
			c.errorReply(errWrongPass)
			return
		}
		c.authed = true
	}
	if !c.authed {
		c.errorReply("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if nameGiven {
		if msg := badName(name); msg != "" {
			c.errorReply(msg)
			return
		}
	}
	if proto != c.proto {
		// Commands already queued in this batch go out on the connections of
		// the protocol they were sent in.
		c.barrier()
		c.proto = proto
		if c.pin != nil {
			// The dedicated connection switches too (WATCH survives HELLO).
			r := c.newReq()
			r.Cmd = resp.AppendCommandStrings(r.buf[:0], "HELLO", strconv.Itoa(int(proto)))
			c.pin.conn.Send(&r.Request)
			c.barrier()
		}
	}
	c.infoMu.Lock()
	c.info.proto = proto
	if nameGiven {
		c.info.name = string(name)
	}
	c.infoMu.Unlock()
	mark := len(c.out)
	c.out = resp.AppendMap(c.out, c.proto, 7)
	c.out = resp.AppendBulkString(c.out, "server")
	c.out = resp.AppendBulkString(c.out, "redis")
	c.out = resp.AppendBulkString(c.out, "version")
	c.out = resp.AppendBulkString(c.out, redisVersion)
	c.out = resp.AppendBulkString(c.out, "proto")
	c.out = resp.AppendInt(c.out, int64(c.proto))
	c.out = resp.AppendBulkString(c.out, "id")
	c.out = resp.AppendInt(c.out, c.id)
	c.out = resp.AppendBulkString(c.out, "mode")
	c.out = resp.AppendBulkString(c.out, "standalone")
	c.out = resp.AppendBulkString(c.out, "role")
	c.out = resp.AppendBulkString(c.out, "master")
	c.out = resp.AppendBulkString(c.out, "modules")
	c.out = resp.AppendArray(c.out, 0)
	c.reply(mark)
}

// badName returns Redis's error for a client name with spaces or special
// characters, or "".
func badName(name []byte) string {
	for _, ch := range name {
		if ch < '!' || ch > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	return ""
}

func (c *client) clientCmd(args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "id":
		if len(args) != 2 {
			c.errorReply(cmdtable.ErrWrongArity("client|id"))
			return
		}
		c.integer(c.id)
	case "setname":
		if len(args) != 3 {
			c.errorReply(cmdtable.ErrWrongArity("client|setname"))
			return
		}
		if msg := badName(args[2]); msg != "" {
			c.errorReply(msg)
			return
		}
		c.infoMu.Lock()
		c.info.name = string(args[2])
		c.infoMu.Unlock()
		c.ok()
	case "getname":
		if len(args) != 2 {
			c.errorReply(cmdtable.ErrWrongArity("client|getname"))
			return
		}
		c.infoMu.Lock()
		name := c.info.name
		c.infoMu.Unlock()
		if name == "" {
			c.null()
		} else {
			c.bulk([]byte(name))
		}
	case "setinfo":
		if len(args) != 4 {
			c.errorReply(cmdtable.ErrWrongArity("client|setinfo"))
			return
		}
		attr := strings.ToLower(string(args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.errorReply("ERR Unrecognized option '" + string(args[2]) + "'")
			return
		}
		for _, ch := range args[3] {
			if ch < '!' || ch > '~' {
				c.errorReply("ERR " + attr + " cannot contain spaces, newlines or special characters.")
				return
			}
		}
		c.infoMu.Lock()
		if attr == "lib-name" {
			c.info.libName = string(args[3])
		} else {
			c.info.libVer = string(args[3])
		}
		c.infoMu.Unlock()
		c.ok()
	case "info":
		if len(args) != 2 {
			c.errorReply(cmdtable.ErrWrongArity("client|info"))
			return
		}
		mark := len(c.out)
		c.out = resp.AppendVerbatim(c.out, c.proto, "txt", c.describe(time.Now()))
		c.reply(mark)
	case "list":
		c.clientList(args)
	case "kill":
		c.clientKill(args)
	case "reply":
		if len(args) != 3 {
			c.errorReply(cmdtable.ErrWrongArity("client|reply"))
			return
		}
		switch strings.ToLower(string(args[2])) {
		case "on":
			c.replyOff, c.replyForce = false, true
			c.ok()
		case "off":
			c.replyOff = true
			c.ok() // dropped: replies are off
		case "skip":
			c.skipArm = !c.replyOff
			c.ok() // dropped, as is the next command's reply
		default:
			c.errorReply("ERR syntax error")
		}
	case "no-evict", "no-touch":
		if len(args) != 3 {
			c.errorReply(cmdtable.ErrWrongArity("client|" + sub))
			return
		}
		switch strings.ToLower(string(args[2])) {
		case "on", "off":
			c.ok()
		default:
			c.errorReply("ERR syntax error")
		}
	case "help":
		c.help("CLIENT", []string{
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
			"LIST [TYPE NORMAL] [ID id [id ...]]", "    Return information about client connections.",
			"REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
			"SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
		})
	default:
		c.errorReply(cmdtable.ErrUnknownSubcommand("client", string(args[1])))
	}
}

func (c *client) help(cmd string, lines []string) {
	mark := len(c.out)
	c.out = resp.AppendArray(c.out, len(lines)+1)
	c.out = resp.AppendSimple(c.out, cmd+" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, l := range lines {
		c.out = resp.AppendSimple(c.out, l)
	}
	c.reply(mark)
}

// describe is the client's CLIENT LIST / CLIENT INFO line.
func (c *client) describe(now time.Time) string {
	c.infoMu.Lock()
	info := c.info
	c.infoMu.Unlock()
	cmd := "NULL"
	if ci := c.lastCmd.Load(); ci != nil {
		cmd = ci.Name
	}
	flags := "N"
	if info.multi >= 0 {
		flags = "x"
	}
	watch := 0
	if info.watching {
		watch = 1
	}
	var b strings.Builder
	b.WriteString("id=" + itoa(c.id))
	b.WriteString(" addr=" + c.addr)
	b.WriteString(" laddr=" + c.laddr)
	b.WriteString(" fd=-1 name=" + info.name)
	b.WriteString(" age=" + itoa(int64(now.Sub(c.created)/time.Second)))
	b.WriteString(" idle=" + itoa(int64(now.Sub(time.Unix(0, c.lastAt.Load()))/time.Second)))
	b.WriteString(" flags=" + flags + " db=0 sub=0 psub=0 ssub=0")
	b.WriteString(" multi=" + strconv.Itoa(info.multi))
	b.WriteString(" watch=" + strconv.Itoa(watch))
	b.WriteString(" qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 tot-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 events=r")
	b.WriteString(" cmd=" + cmd)
	b.WriteString(" user=default redir=-1 resp=" + strconv.Itoa(int(info.proto)))
	b.WriteString(" lib-name=" + info.libName)
	b.WriteString(" lib-ver=" + info.libVer)
	b.WriteString("\n")
	return b.String()
}

func (c *client) clientList(args [][]byte) {
	var ids map[int64]bool
	for i := 2; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		switch {
		case opt == "type" && i+1 < len(args):
			normal, msg := clientType(args[i+1])
			if msg != "" {
				c.errorReply(msg)
				return
			}
			if !normal {
				ids = map[int64]bool{} // the proxy has no such clients
			}
			i++
		case opt == "id" && i+1 < len(args):
			if ids == nil {
				ids = map[int64]bool{}
			}
			for i++; i < len(args); i++ {
				n, err := strconv.ParseInt(string(args[i]), 10, 64)
				if err != nil || n <= 0 {
					c.errorReply("ERR Invalid client ID")
					return
				}
				ids[n] = true
			}
		default:
			c.errorReply("ERR syntax error")
			return
		}
	}
	now := time.Now()
	var b strings.Builder
	for _, o := range sortedClients(c.s.snapshot()) {
		if ids != nil && !ids[o.id] {
			continue
		}
		b.WriteString(o.describe(now))
	}
	mark := len(c.out)
	c.out = resp.AppendVerbatim(c.out, c.proto, "txt", b.String())
	c.reply(mark)
}

// clientKill closes other clients' connections, as Redis's CLIENT KILL
// does: the old form (an address; +OK or "No such client", and the caller
// may name itself) and the filter form (every filter must match; the number
// of connections closed). A caller that kills itself gets its reply first.
func (c *client) clientKill(args [][]byte) {
	var (
		id          int64
		addr, laddr string
		none        bool // a TYPE the proxy has no clients of
		skipme      = true
	)
	if len(args) < 3 {
		c.errorReply(cmdtable.ErrWrongArity("client|kill"))
		return
	}
	old := len(args) == 3
	if old {
		addr, skipme = string(args[2]), false
	} else {
		for i := 2; i < len(args); i += 2 {
			if i+1 >= len(args) {
				c.errorReply("ERR syntax error")
				return
			}
			val := string(args[i+1])
			switch strings.ToLower(string(args[i])) {
			case "id":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n <= 0 {
					c.errorReply("ERR client-id should be greater than 0")
					return
				}
				id = n
			case "type":
				normal, msg := clientType(args[i+1])
				if msg != "" {
					c.errorReply(msg)
					return
				}
				none = !normal
			case "addr":
				addr = val
			case "laddr":
				laddr = val
			case "user":
				if val != "default" { // the only user there is
					c.errorReply("ERR No such user '" + val + "'")
					return
				}
			case "skipme":
				switch strings.ToLower(val) {
				case "yes":
					skipme = true
				case "no":
					skipme = false
				default:
					c.errorReply("ERR syntax error")
					return
				}
			default:
				c.errorReply("ERR syntax error")
				return
			}
		}
	}
	killed := 0
	for _, o := range c.s.snapshot() {
		if none || (id != 0 && o.id != id) || (addr != "" && o.addr != addr) ||
			(laddr != "" && o.laddr != laddr) || (o == c && skipme) {
			continue
		}
		killed++
		if o == c {
			c.quit = true // after this batch's replies, like QUIT
			continue
		}
		o.nc.Close()
	}
	switch {
	case !old:
		c.integer(int64(killed))
	case killed == 0:
		c.errorReply("ERR No such client")
	default:
		c.ok()
	}
}

// clientType reads the TYPE of CLIENT LIST and CLIENT KILL: whether it is
// "normal", the only type of client the proxy has, or Redis's error for a
// type that does not exist.
func clientType(arg []byte) (normal bool, errMsg string) {
	switch strings.ToLower(string(arg)) {
	case "normal":
		return true, ""
	case "master", "replica", "slave", "pubsub":
		return false, ""
	}
	return false, "ERR Unknown client type '" + string(arg) + "'"
}

func sortedClients(cs []*client) []*client {
	sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
	return cs
}

// config answers CONFIG GET with the settings clients ask about; the proxy
// has no settings to change at runtime.
func (c *client) config(args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "get":
		if len(args) < 3 {
			c.errorReply(cmdtable.ErrWrongArity("config|get"))
			return
		}
		params := c.s.configParams()
		var pairs []string
		seen := map[string]bool{}
		for _, p := range params {
			for _, pat := range args[2:] {
				if glob.Match(pat, []byte(p[0]), true) && !seen[p[0]] {
					seen[p[0]] = true
					pairs = append(pairs, p[0], p[1])
				}
			}
		}
		mark := len(c.out)
		c.out = resp.AppendMap(c.out, c.proto, len(pairs)/2)
		for _, s := range pairs {
			c.out = resp.AppendBulkString(c.out, s)
		}
		c.reply(mark)
	case "set":
		if len(args) < 4 {
			c.errorReply(cmdtable.ErrWrongArity("config|set"))
			return
		}
		c.errorReply("ERR CONFIG SET is not supported by the shardkv proxy; restart it with new flags (parameter '" + string(args[2]) + "')")
	case "resetstat":
		c.s.commands.Store(0)
		c.s.connsReceived.Store(0)
		c.s.rejected.Store(0)
		c.s.netIn.Store(0)
		c.ok()
	case "help":
		c.help("CONFIG", []string{
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
		})
	default:
		c.errorReply(cmdtable.ErrUnknownSubcommand("config", string(args[1])))
	}
}

func (s *Server) configParams() [][2]string {
	host, port := "", ""
	if a := s.Addr(); a != nil {
		host, port, _ = net.SplitHostPort(a.String())
	}
	return [][2]string{
		{"bind", host},
		{"port", port},
		{"databases", "1"},
		{"maxclients", strconv.Itoa(s.cfg.MaxClients)},
		{"timeout", "0"},
		{"proto-max-bulk-len", strconv.Itoa(resp.MaxBulkLen)},
		{"maxmemory", "0"},
		{"maxmemory-policy", "noeviction"},
		{"appendonly", "yes"},
		{"save", ""},
		{"cluster-enabled", "no"},
		{"shardkv-node-timeout", s.cfg.Timeout.String()},
		{"shardkv-conns-per-node", strconv.Itoa(s.cfg.ConnsPerNode)},
		{"shardkv-map-file", s.cfg.MapFile},
	}
}
