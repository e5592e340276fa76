package integration

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// connStep is one connection or server command. Its reply from the real
// proxy binary and from the real node binary must be the same bytes, and,
// unless shardkvOnly, the bytes redis-server 7.0.15 replies.
type connStep struct {
	args []string
	// shardkvOnly: compared between the two servers only (what shardkv
	// presents differently from Redis 7.0 by design: its version, one
	// database).
	shardkvOnly bool
}

func cs(args ...string) connStep { return connStep{args: args} }
func csOwn(args ...string) connStep {
	return connStep{args: args, shardkvOnly: true}
}

// connSteps pin the behaviours that had drifted between the proxy's and the
// node's copies of these commands (the reported version, COMMAND GETKEYS's
// arity, COMMAND LIST's arguments, SELECT's range checks, COMMAND INFO of
// an unknown name) and the rest of what the shared code answers.
var connSteps = []connStep{
	cs("PING"), cs("PING", "hello"), cs("PING", "a", "b"), cs("ECHO", "x"), cs("ECHO"),
	csOwn("HELLO"), csOwn("INFO", "nosuchsection"),
	cs("COMMAND", "GETKEYS"), cs("COMMAND", "GETKEYS", "get"), cs("COMMAND", "GETKEYS", "get", "a", "b"),
	cs("COMMAND", "GETKEYS", "GET", "a"), cs("COMMAND", "GETKEYS", "nosuch", "a"),
	cs("COMMAND", "GETKEYS", "ping", "x"), cs("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"),
	cs("COMMAND", "LIST", "foo"), cs("COMMAND", "LIST", "FILTERBY", "PATTERN", "getr*"),
	cs("COMMAND", "LIST", "FILTERBY", "MODULE", "x"), cs("COMMAND", "LIST", "FILTERBY", "ACLCAT", "fast", "x"),
	cs("COMMAND", "LIST", "FILTERBY", "NOSUCH", "x"),
	cs("COMMAND", "COUNT", "x"), cs("COMMAND", "INFO", "nosuch"), cs("COMMAND", "DOCS", "nosuch"),
	cs("COMMAND", "FOO"), cs("COMMAND", "HELP", "x"),
	cs("SELECT", "0"), cs("SELECT", "1"), cs("SELECT", "0"), cs("SELECT", "16"), cs("SELECT", "-1"),
	cs("SELECT", "99999999999"), cs("SELECT", "99999999999999999999"), cs("SELECT", "abc"), cs("SELECT", "1.5"),
	cs("CLIENT", "GETNAME"), cs("CLIENT", "SETNAME", "me"), cs("CLIENT", "GETNAME"),
	cs("CLIENT", "SETNAME", "a b"), cs("CLIENT", "SETNAME", ""), cs("CLIENT", "GETNAME"),
	cs("CLIENT", "GETNAME", "x"), cs("CLIENT", "ID", "x"), cs("CLIENT", "INFO", "x"), cs("CLIENT", "HELP", "x"),
	cs("CLIENT", "FOO"), cs("CLIENT", "LIST", "TYPE", "foo"), cs("CLIENT", "LIST", "foo"),
	cs("CLIENT", "LIST", "ID", "x"), cs("CLIENT", "LIST", "TYPE", "pubsub"), cs("CLIENT", "NO-EVICT", "maybe"),
	cs("CLIENT", "NO-EVICT", "on"),
	cs("CONFIG", "GET"), cs("CONFIG", "GET", "nosuch"), cs("CONFIG", "GET", "maxmemory-policy"),
	cs("CONFIG", "GET", "MAXMEMORY-POLICY"), cs("CONFIG", "SET", "nosuch", "x"), cs("CONFIG", "SET", "maxmemory-policy"),
	cs("CONFIG", "RESETSTAT", "x"), cs("CONFIG", "REWRITE"), cs("CONFIG", "FOO"), cs("CONFIG", "HELP", "x"),
	cs("AUTH", "a"), cs("AUTH", "a", "b", "c"), cs("AUTH", "bob", "x"), cs("AUTH", "default", "anything"),
	cs("HELLO", "4"), cs("HELLO", "x"), cs("HELLO", "3", "FOO"), cs("HELLO", "2", "AUTH", "bob", "x"),
	cs("HELLO", "2", "SETNAME", "a b"),
	cs("TIME", "x"), cs("RESET", "x"), cs("NOSUCHCOMMAND", "a", "b"),
	// HELP texts are shardkv's (7.2's subcommands); their framing is held
	// by the steps after them, which a miscounted array would shift.
	csOwn("CLIENT", "HELP"), csOwn("COMMAND", "HELP"), csOwn("CONFIG", "HELP"),
	// Both servers answer READONLY and READWRITE (a standalone Redis
	// refuses them: it has cluster support disabled).
	csOwn("READONLY"), csOwn("READWRITE"), cs("READONLY", "x"), cs("READWRITE", "x"),
	// The command table's MULTI rules: UNWATCH and PING are queued, WATCH is
	// refused at once, EXEC runs what was queued.
	// SCAN cursors, read by one rule on both servers (strtoul's).
	cs("SCAN", "-1"), cs("SCAN", "18446744073709551615"), cs("SCAN", "abc"), cs("SCAN", "+0"),
	cs("MULTI"), cs("UNWATCH"), cs("PING"), cs("WATCH", "k"), cs("EXEC"),
	// A container's unknown subcommand, or a subcommand's wrong number of
	// arguments, is refused when it is queued, and EXEC aborts.
	cs("MULTI"), cs("OBJECT", "FOO", "a"), cs("SET", "k", "v"), cs("EXEC"), cs("GET", "k"),
	cs("MULTI"), cs("OBJECT", "ENCODING"), cs("EXEC"),
	cs("MULTI"), cs("CONFIG", "FOO"), cs("EXEC"),
	cs("MULTI"), cs("CLIENT", "FOO", "x"), cs("EXEC"),
	cs("OBJECT", "HELP", "x"), cs("OBJECT", "FOO"), cs("OBJECT"), cs("CONFIG", "GET"),
	// SELECT queues inside MULTI; another database than the selected one
	// is refused at once (a transaction runs in one database), so EXEC
	// aborts rather than run in the wrong one.
	cs("MULTI"), cs("SELECT", "0"), cs("PING"), cs("EXEC"),
	cs("MULTI"), cs("SELECT", "16"), cs("SELECT", "x"), cs("PING"), cs("EXEC"),
	csOwn("MULTI"), csOwn("SELECT", "1"), csOwn("PING"), csOwn("EXEC"),
}

// TestConnectionCommandsAgree replays connSteps on one connection to each of
// the proxy, a node and redis-server, in RESP2 and after HELLO 3 in RESP3.
func TestConnectionCommandsAgree(t *testing.T) {
	redisAddr := redistest.Start(t)
	c := StartCluster(t, Options{Shards: 1})
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			targets := map[string]*rawClient{
				"proxy": dialRaw(t, c.ProxyAddr),
				"node":  dialRaw(t, c.Map.Shards[0].Addr()),
				"redis": dialRaw(t, redisAddr),
			}
			if proto == 3 {
				for _, rc := range targets {
					if r := rc.do(t, "HELLO", "3"); r[0] != '%' {
						t.Fatalf("HELLO 3: %q", r)
					}
				}
			}
			for _, st := range connSteps {
				proxy, node := targets["proxy"].do(t, st.args...), targets["node"].do(t, st.args...)
				if sameIgnoringIDs(proxy) != sameIgnoringIDs(node) {
					t.Errorf("%q: proxy %q, node %q", st.args, proxy, node)
				}
				if st.shardkvOnly {
					continue
				}
				if want := targets["redis"].do(t, st.args...); proxy != want {
					t.Errorf("%q: shardkv %q, redis-server %q", st.args, proxy, want)
				}
			}
		})
	}
	// The version both servers report, one constant: HELLO and INFO agree.
	proxy, node := dialRaw(t, c.ProxyAddr), dialRaw(t, c.Map.Shards[0].Addr())
	pinfo, ninfo := proxy.do(t, "INFO", "server"), node.do(t, "INFO", "server")
	for _, field := range []string{"redis_version", "shardkv_version"} {
		if pv, nv := infoField(pinfo, field), infoField(ninfo, field); pv == "" || pv != nv {
			t.Errorf("INFO %s: proxy %q, node %q", field, pv, nv)
		}
	}
}

// sameIgnoringIDs blanks HELLO's connection id, which differs by server.
var helloID = regexp.MustCompile(`\$2\r\nid\r\n:\d+\r\n`)

func sameIgnoringIDs(reply string) string {
	return helloID.ReplaceAllString(reply, "$$2\r\nid\r\n:ID\r\n")
}

func infoField(reply, name string) string {
	for _, line := range strings.Split(reply, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return ""
}

// rawClient sends commands and reads their raw reply bytes.
type rawClient struct {
	nc net.Conn
	rr *resp.ReplyReader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{nc: nc, rr: resp.NewReplyReader(nc, 4096)}
}

func (rc *rawClient) do(t *testing.T, args ...string) string {
	t.Helper()
	rc.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	b, err := rc.rr.Next()
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return string(b)
}
