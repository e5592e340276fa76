package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// rawConn is a client that writes exact bytes and reads raw replies.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	rr *resp.ReplyReader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, rr: resp.NewReplyReader(nc, 4096)}
}

// do sends a command and returns its raw reply.
func (c *rawConn) do(args ...string) string {
	c.t.Helper()
	if _, err := c.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *rawConn) read() string {
	c.t.Helper()
	b, err := c.rr.Next()
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

// The handshake real clients send: HELLO 3, CLIENT SETINFO twice, CLIENT
// MAINT_NOTIFICATIONS (refused with Redis's unknown-subcommand error so the
// client turns it off), SELECT 0; then INFO as clients parse it.
func TestHandshakeAsClientsSendIt(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	raw := dialRaw(t, c.addr)
	hello := raw.do("HELLO", "3")
	for _, want := range []string{"%7\r\n", "$6\r\nserver\r\n$5\r\nredis\r\n", "$5\r\nproto\r\n:3\r\n", "$4\r\nmode\r\n$10\r\nstandalone\r\n"} {
		if !strings.Contains(hello, want) {
			t.Fatalf("HELLO 3 reply %q lacks %q", hello, want)
		}
	}
	if got := raw.do("CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26)"); got != "+OK\r\n" {
		t.Fatalf("SETINFO LIB-NAME: %q", got)
	}
	if got := raw.do("CLIENT", "SETINFO", "LIB-VER", "9.23.0"); got != "+OK\r\n" {
		t.Fatalf("SETINFO LIB-VER: %q", got)
	}
	want := "-" + cmdtable.ErrUnknownSubcommand("client", "MAINT_NOTIFICATIONS") + "\r\n"
	if got := raw.do("CLIENT", "MAINT_NOTIFICATIONS", "on", "moving-endpoint-type", "internal-ip"); got != want {
		t.Fatalf("MAINT_NOTIFICATIONS: %q, want %q", got, want)
	}
	if got := raw.do("SELECT", "0"); got != "+OK\r\n" {
		t.Fatalf("SELECT 0: %q", got)
	}
	if got := raw.do("SELECT", "16"); got != "-ERR DB index is out of range\r\n" {
		t.Fatalf("SELECT 16: %q", got)
	}
	if got := raw.do("GET", "missing"); got != "_\r\n" {
		t.Fatalf("RESP3 null: %q", got)
	}
	info := raw.do("CLIENT", "INFO")
	if !strings.HasPrefix(info, "=") || !strings.Contains(info, "lib-name=go-redis(,go1.26) lib-ver=9.23.0") || !strings.Contains(info, "resp=3") {
		t.Fatalf("CLIENT INFO: %q", info)
	}
	if got := raw.do("HELLO", "2"); !strings.HasPrefix(got, "*14\r\n") {
		t.Fatalf("HELLO 2: %q", got)
	}
	if got := raw.do("GET", "missing"); got != "$-1\r\n" {
		t.Fatalf("RESP2 null: %q", got)
	}
	if got := raw.do("HELLO", "4"); got != "-NOPROTO unsupported protocol version\r\n" {
		t.Fatalf("HELLO 4: %q", got)
	}

	// go-redis at its defaults (RESP3, maintenance notifications on auto,
	// identity on) connects, and so does it in RESP2.
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: proto})
		defer r.Close()
		if err := r.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		info, err := r.Info(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"redis_version:", "loading:0", "# Keyspace", "# Shard_s0", "# Shard_s1", "shard_reachable:1", "connected_clients:"} {
			if !strings.Contains(info, want) {
				t.Fatalf("INFO lacks %q:\n%s", want, info)
			}
		}
		if server := r.Info(ctx, "server").Val(); strings.Contains(server, "# Shard_") || !strings.Contains(server, "redis_version:") {
			t.Fatalf("INFO server: %s", server)
		}
		name, err := r.ClientGetName(ctx).Result()
		if err != redis.Nil || name != "" {
			t.Fatalf("CLIENT GETNAME: %q %v", name, err)
		}
		list := r.ClientList(ctx).Val()
		if !strings.Contains(list, "lib-name=go-redis") {
			t.Fatalf("CLIENT LIST: %s", list)
		}
		if id := r.ClientID(ctx).Val(); id <= 0 {
			t.Fatalf("CLIENT ID = %d", id)
		}
		if got := r.Echo(ctx, "hi").Val(); got != "hi" {
			t.Fatalf("ECHO = %q", got)
		}
		if tm, err := r.Time(ctx).Result(); err != nil || time.Since(tm).Abs() > time.Minute {
			t.Fatalf("TIME = %v %v", tm, err)
		}
		cfg, err := r.ConfigGet(ctx, "maxclients").Result()
		if err != nil || cfg["maxclients"] != "10000" {
			t.Fatalf("CONFIG GET maxclients = %v %v", cfg, err)
		}
		if cfg := r.ConfigGet(ctx, "*").Val(); cfg["databases"] != "1" || cfg["proto-max-bulk-len"] == "" {
			t.Fatalf("CONFIG GET * = %v", cfg)
		}
	})
}

// SETNAME through HELLO and CLIENT; RESET and QUIT.
func TestClientNameResetQuit(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	raw := dialRaw(t, c.addr)
	if got := raw.do("HELLO", "3", "SETNAME", "app1"); !strings.HasPrefix(got, "%7") {
		t.Fatalf("HELLO SETNAME: %q", got)
	}
	if got := raw.do("CLIENT", "GETNAME"); got != "$4\r\napp1\r\n" {
		t.Fatalf("GETNAME: %q", got)
	}
	if got := raw.do("CLIENT", "SETNAME", "bad name"); got != "-ERR Client names cannot contain spaces, newlines or special characters.\r\n" {
		t.Fatalf("bad SETNAME: %q", got)
	}
	if got := raw.do("RESET"); got != "+RESET\r\n" {
		t.Fatalf("RESET: %q", got)
	}
	if got := raw.do("CLIENT", "GETNAME"); got != "$-1\r\n" {
		t.Fatalf("GETNAME after RESET (RESP2 again): %q", got)
	}
	if got := raw.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING: %q", got)
	}
	if got := raw.do("QUIT"); got != "+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	if _, err := raw.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after QUIT the connection is open: %v", err)
	}
}

// COMMAND, COUNT, INFO and DOCS come from the command table.
func TestCommandFromTable(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		want := 0
		for _, ci := range cmdtable.Commands {
			if ci.Route != cmdtable.RouteNodeOnly {
				want++
			}
		}
		if n, err := r.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || n != want {
			t.Fatalf("COMMAND COUNT = %d %v, want %d", n, err, want)
		}
		all, err := r.Command(ctx).Result()
		if err != nil || len(all) != want {
			t.Fatalf("COMMAND: %d entries, %v", len(all), err)
		}
		mset := all["mset"]
		if mset == nil || mset.Arity != -3 || mset.FirstKeyPos != 1 || mset.LastKeyPos != -1 || mset.StepCount != 2 {
			t.Fatalf("COMMAND mset = %+v", mset)
		}
		if !all["get"].ReadOnly {
			t.Fatal("get is not readonly")
		}
		info, err := r.Do(ctx, "COMMAND", "INFO", "get", "nosuch").Slice()
		if err != nil || len(info) != 2 || info[1] != nil || info[0].([]any)[0] != "get" {
			t.Fatalf("COMMAND INFO = %v %v", info, err)
		}
		docs, err := r.Do(ctx, "COMMAND", "DOCS", "get").Result()
		if err != nil || !strings.Contains(fmt.Sprint(docs), "Returns the string value of a key.") {
			t.Fatalf("COMMAND DOCS = %v %v", docs, err)
		}
		keys, err := r.CommandGetKeys(ctx, "MSET", "a", "1", "b", "2").Result()
		if err != nil || fmt.Sprint(keys) != "[a b]" {
			t.Fatalf("COMMAND GETKEYS = %v %v", keys, err)
		}
		if err := r.Do(ctx, "COMMAND", "NOPE").Err(); err == nil || err.Error() != cmdtable.ErrUnknownSubcommand("command", "NOPE") {
			t.Fatalf("COMMAND NOPE: %v", err)
		}
	})
}

// requirepass: NOAUTH before AUTH, WRONGPASS, HELLO ... AUTH; and the proxy
// authenticates to password-protected nodes.
func TestAuth(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, requirePass: "secret", nodePassword: "nodepw"})
	raw := dialRaw(t, c.addr)
	if got := raw.do("GET", "k"); got != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("before AUTH: %q", got)
	}
	if got := raw.do("HELLO", "3"); !strings.HasPrefix(got, "-NOAUTH HELLO must be called with the client already authenticated") {
		t.Fatalf("HELLO before AUTH: %q", got)
	}
	if got := raw.do("AUTH", "wrong"); got != "-WRONGPASS invalid username-password pair or user is disabled.\r\n" {
		t.Fatalf("AUTH wrong: %q", got)
	}
	if got := raw.do("AUTH", "secret"); got != "+OK\r\n" {
		t.Fatalf("AUTH: %q", got)
	}
	if got := raw.do("SET", "k", "v"); got != "+OK\r\n" {
		t.Fatalf("SET after AUTH: %q", got)
	}
	// Before AUTH, a large multibulk is a protocol error, as in Redis.
	raw2 := dialRaw(t, c.addr)
	raw2.nc.Write([]byte("*100\r\n"))
	if got := raw2.read(); got != "-ERR Protocol error: unauthenticated multibulk length\r\n" {
		t.Fatalf("unauthenticated multibulk: %q", got)
	}
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		r := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: proto, Password: "secret"})
		if v, err := r.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("RESP%d with password: %q %v", proto, v, err)
		}
		r.Close()
	}
	r := redis.NewClient(&redis.Options{Addr: c.addr, Password: "nope"})
	defer r.Close()
	if err := r.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
}

// Over Redis's request limits the client gets "-ERR Protocol error: ..." and
// is disconnected, without the proxy buffering what the client announced.
func TestProtocolLimits(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	cases := []struct {
		name, send, want string
	}{
		{"multibulk count", "*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bulk length", "*2\r\n$3\r\nGET\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative bulk", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a bulk", "*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
		{"inline", strings.Repeat("a", 70<<10), "-ERR Protocol error: too big inline request\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := dialRaw(t, c.addr)
			// A command before the bad one is answered first.
			raw.nc.Write([]byte("PING\r\n" + tc.send))
			if got := raw.read(); got != "+PONG\r\n" {
				t.Fatalf("before the violation: %q", got)
			}
			if got := raw.read(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			raw.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := bufio.NewReader(raw.nc).ReadByte(); err != io.EOF {
				t.Fatalf("connection still open after a protocol error: %v", err)
			}
		})
	}
	// A bulk just under the limit is accepted and streamed (not buffered
	// whole before its bytes arrive).
	raw := dialRaw(t, c.addr)
	if got := raw.do("SET", "inline-ok", strings.Repeat("v", 100)); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	raw.nc.Write([]byte("GET inline-ok\r\n"))
	if got := raw.read(); got != "$100\r\n"+strings.Repeat("v", 100)+"\r\n" {
		t.Fatalf("inline GET: %q", got)
	}
}

// One client over maxclients gets Redis's error and is disconnected.
func TestMaxClients(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, maxClients: 2})
	a, b := dialRaw(t, c.addr), dialRaw(t, c.addr)
	a.do("PING")
	b.do("PING")
	third := dialRaw(t, c.addr)
	if got := third.read(); got != "-ERR max number of clients reached\r\n" {
		t.Fatalf("third client: %q", got)
	}
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := dialRaw(t, c.addr)
		if _, err := d.nc.Write([]byte("PING\r\n")); err == nil {
			if got, err := d.rr.Next(); err == nil && string(got) == "+PONG\r\n" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot never freed up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClientKill: CLIENT KILL closes other clients' connections by address,
// id, local address, type and user, as Redis does; the caller is spared
// unless it asks (SKIPME no) or names itself in the old form, and then it
// gets its reply before the close. Bad filters get Redis's errors and close
// nothing.
func TestClientKill(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	killer := dialRaw(t, c.addr)
	victimID := func(v *rawConn) string {
		t.Helper()
		got := v.do("CLIENT", "ID")
		if !strings.HasPrefix(got, ":") {
			t.Fatalf("CLIENT ID: %q", got)
		}
		return strings.TrimSuffix(got[1:], "\r\n")
	}
	// closed checks v's connection was closed by the proxy.
	closed := func(what string, v *rawConn) {
		t.Helper()
		v.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := v.rr.Next(); err != io.EOF {
			t.Fatalf("%s: the killed connection reads %v, want EOF", what, err)
		}
	}
	alive := func(what string, v *rawConn) {
		t.Helper()
		if got := v.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("%s: a client not killed: PING %q", what, got)
		}
	}

	bystander := dialRaw(t, c.addr)
	for _, tc := range []struct {
		name string
		args func(v *rawConn, id string) []string
		want string
	}{
		{"old form", func(v *rawConn, _ string) []string { return []string{v.nc.LocalAddr().String()} }, "+OK\r\n"},
		{"ADDR", func(v *rawConn, _ string) []string { return []string{"ADDR", v.nc.LocalAddr().String()} }, ":1\r\n"},
		{"ID", func(_ *rawConn, id string) []string { return []string{"ID", id} }, ":1\r\n"},
		{"ID and ADDR", func(v *rawConn, id string) []string {
			return []string{"id", id, "addr", v.nc.LocalAddr().String(), "TYPE", "normal", "USER", "default"}
		}, ":1\r\n"},
	} {
		v := dialRaw(t, c.addr)
		id := victimID(v)
		args := append([]string{"CLIENT", "KILL"}, tc.args(v, id)...)
		if got := killer.do(args...); got != tc.want {
			t.Fatalf("%s: %v: %q, want %q", tc.name, args, got, tc.want)
		}
		closed(tc.name, v)
		alive(tc.name, bystander)
	}

	// Filters that match nothing, and bad filters: nobody is closed.
	v := dialRaw(t, c.addr)
	id := victimID(v)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"127.0.0.1:1"}, "-ERR No such client\r\n"},
		{[]string{"ADDR", "127.0.0.1:1"}, ":0\r\n"},
		{[]string{"ID", id, "ADDR", "127.0.0.1:1"}, ":0\r\n"},
		{[]string{"TYPE", "pubsub"}, ":0\r\n"},
		{[]string{"ID", "0"}, "-ERR client-id should be greater than 0\r\n"},
		{[]string{"ID", "x"}, "-ERR client-id should be greater than 0\r\n"},
		{[]string{"TYPE", "bogus"}, "-ERR Unknown client type 'bogus'\r\n"},
		{[]string{"USER", "alice"}, "-ERR No such user 'alice'\r\n"},
		{[]string{"SKIPME", "maybe"}, "-ERR syntax error\r\n"},
		{[]string{"ID", id, "SKIPME"}, "-ERR syntax error\r\n"},
		{[]string{"NOSUCH", "x"}, "-ERR syntax error\r\n"},
		{nil, "-ERR wrong number of arguments for 'client|kill' command\r\n"},
	} {
		args := append([]string{"CLIENT", "KILL"}, tc.args...)
		if got := killer.do(args...); got != tc.want {
			t.Fatalf("%v: %q, want %q", args, got, tc.want)
		}
	}
	alive("after refused kills", v)

	// The caller: spared by default, killed with SKIPME no (after its reply).
	if got := killer.do("CLIENT", "KILL", "ID", victimID(killer)); got != ":0\r\n" {
		t.Fatalf("killing oneself with SKIPME yes: %q", got)
	}
	if got := killer.do("CLIENT", "KILL", "LADDR", bystander.nc.RemoteAddr().String(), "SKIPME", "no"); got != ":3\r\n" {
		t.Fatalf("LADDR with SKIPME no: %q, want :3 (killer, bystander, v)", got)
	}
	closed("the killer itself", killer)
	closed("bystander", bystander)
	closed("v", v)

	// The old form may name the caller.
	self := dialRaw(t, c.addr)
	if got := self.do("CLIENT", "KILL", self.nc.LocalAddr().String()); got != "+OK\r\n" {
		t.Fatalf("old form on oneself: %q", got)
	}
	closed("old form on oneself", self)
}

// TestClientReply: CLIENT REPLY OFF, SKIP and ON drop replies exactly as
// Redis 7 does, in one pipeline mixing local, forwarded and failing
// commands. want is what redis-server 7.0.15 wrote for the same bytes.
func TestClientReply(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	cmds := [][]string{
		{"CLIENT", "REPLY", "SKIP"}, {"SET", "a", "1"}, {"GET", "a"},
		{"CLIENT", "REPLY", "OFF"}, {"SET", "b", "2"}, {"NOSUCH"}, {"CLIENT", "REPLY", "SKIP"}, {"GET", "b"},
		{"CLIENT", "REPLY", "ON"}, {"GET", "b"}, {"CLIENT", "REPLY", "BOGUS"}, {"CLIENT", "REPLY"},
		{"CLIENT", "REPLY", "SKIP"}, {"CLIENT", "REPLY", "ON"}, {"PING"},
		{"CLIENT", "REPLY", "OFF"}, {"RESET"}, {"PING"},
	}
	want := "$1\r\n1\r\n+OK\r\n$1\r\n2\r\n-ERR syntax error\r\n" +
		"-ERR wrong number of arguments for 'client|reply' command\r\n+OK\r\n+PONG\r\n+RESET\r\n+PONG\r\n"
	for _, pipelined := range []bool{true, false} {
		raw := dialRaw(t, c.addr)
		var req []byte
		for _, cmd := range cmds {
			req = resp.AppendCommandStrings(req, cmd...)
			if !pipelined {
				// one command per batch: the state carries across batches
				if _, err := raw.nc.Write(req); err != nil {
					t.Fatal(err)
				}
				req = req[:0]
				time.Sleep(2 * time.Millisecond)
			}
		}
		if _, err := raw.nc.Write(req); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(raw.nc, got); err != nil {
			t.Fatalf("pipelined=%v: read %q: %v", pipelined, got, err)
		}
		if string(got) != want {
			t.Fatalf("pipelined=%v:\n got %q\nwant %q", pipelined, got, want)
		}
		// Nothing more comes: a final PING's reply is the next byte.
		if r := raw.do("PING"); r != "+PONG\r\n" {
			t.Fatalf("pipelined=%v: after the sequence: %q", pipelined, r)
		}
	}
}

// TestClientListType: CLIENT LIST TYPE lists every client for NORMAL, none
// for the types the proxy has no clients of, and refuses unknown types.
func TestClientListType(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	raw := dialRaw(t, c.addr)
	id := strings.TrimSuffix(strings.TrimPrefix(raw.do("CLIENT", "ID"), ":"), "\r\n")
	if got := raw.do("CLIENT", "LIST", "TYPE", "normal"); !strings.Contains(got, "id="+id+" ") {
		t.Errorf("TYPE normal: %q lacks id=%s", got, id)
	}
	if got := raw.do("CLIENT", "LIST", "TYPE", "PUBSUB"); got != "$0\r\n\r\n" {
		t.Errorf("TYPE pubsub: %q, want an empty list", got)
	}
	if got := raw.do("CLIENT", "LIST", "TYPE", "bogus"); got != "-ERR Unknown client type 'bogus'\r\n" {
		t.Errorf("TYPE bogus: %q", got)
	}
}

// TestClientListLastCommand: CLIENT LIST's cmd is the last command as
// Redis 7 names it, with its subcommand (config|get), the container alone
// for an arity error, NULL after an unknown command or subcommand.
func TestClientListLastCommand(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	a, b := dialRaw(t, c.addr), dialRaw(t, c.addr)
	id := strings.TrimSuffix(strings.TrimPrefix(a.do("CLIENT", "ID"), ":"), "\r\n")
	for _, tc := range []struct {
		args []string
		cmd  string
	}{
		{[]string{"CONFIG", "GET", "maxmemory"}, "config|get"},
		{[]string{"GET", "k"}, "get"},
		{[]string{"OBJECT", "HELP"}, "object|help"},
		{[]string{"CONFIG", "NOPE"}, "NULL"},
		{[]string{"CLIENT"}, "client"},
		{[]string{"NOPE"}, "NULL"},
		{[]string{"CLIENT", "GETNAME"}, "client|getname"},
	} {
		a.do(tc.args...)
		list := b.do("CLIENT", "LIST")
		var line string
		for _, l := range strings.Split(list, "\n") {
			if strings.Contains(l, "id="+id+" ") {
				line = l
			}
		}
		if !strings.Contains(line, " cmd="+tc.cmd+" ") {
			t.Errorf("after %q: CLIENT LIST line %q, want cmd=%s", tc.args, line, tc.cmd)
		}
	}
}
