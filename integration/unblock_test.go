package integration

import (
	"strings"
	"testing"
)

// TestClientUnblockThroughProxy: CLIENT UNBLOCK names the proxy's client
// id; the proxy unblocks the node connection the client waits on, whose
// id on the node is another. The unblocked client gets the timeout's
// reply or the UNBLOCKED error, goes on with its pipeline, and nothing is
// popped for it.
func TestClientUnblockThroughProxy(t *testing.T) {
	c := StartCluster(t, Options{})
	const shard = 1
	node := c.NodeClient(shard, "")
	keys := c.KeysOn(shard, "ub:key", 2)

	blocked := dialBlock(t, c.ProxyAddr)
	blocked.send("CLIENT", "ID")
	id := strings.TrimSuffix(strings.TrimPrefix(blocked.next(), ":"), "\r\n")
	other := dialBlock(t, c.ProxyAddr)
	do := func(args ...string) string {
		t.Helper()
		other.send(args...)
		return other.next()
	}
	expect := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}

	blocked.send("BLPOP", keys[0], "0")
	blocked.send("PING")
	waitNodeBlocked(t, node, 1)
	expect("CLIENT UNBLOCK", do("CLIENT", "UNBLOCK", id), ":1\r\n")
	expect("BLPOP unblocked", blocked.next(), "*-1\r\n")
	expect("PING after it", blocked.next(), "+PONG\r\n")
	waitNodeBlocked(t, node, 0)
	expect("CLIENT UNBLOCK again", do("CLIENT", "UNBLOCK", id), ":0\r\n")
	expect("RPUSH", do("RPUSH", keys[0], "a"), ":1\r\n")
	expect("nothing popped for the unblocked client", do("LLEN", keys[0]), ":1\r\n")

	blocked.send("BZPOPMIN", keys[1], "0")
	waitNodeBlocked(t, node, 1)
	expect("CLIENT UNBLOCK ERROR", do("CLIENT", "UNBLOCK", id, "ERROR"), ":1\r\n")
	expect("BZPOPMIN unblocked", blocked.next(), "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")

	// RESP3: the timeout's null.
	blocked.send("HELLO", "3")
	blocked.next()
	blocked.send("BRPOPLPUSH", keys[1], keys[1], "0")
	waitNodeBlocked(t, node, 1)
	expect("CLIENT UNBLOCK TIMEOUT", do("CLIENT", "UNBLOCK", id, "timeout"), ":1\r\n")
	expect("BRPOPLPUSH unblocked", blocked.next(), "_\r\n")

	expect("not blocked", do("CLIENT", "UNBLOCK", id), ":0\r\n")
	expect("no such client", do("CLIENT", "UNBLOCK", "987654321"), ":0\r\n")
	expect("bad reason", do("CLIENT", "UNBLOCK", id, "later"), "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n")
	expect("bad id", do("CLIENT", "UNBLOCK", "x"), "-ERR value is not an integer or out of range\r\n")
}
