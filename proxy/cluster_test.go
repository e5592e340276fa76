package proxy

import (
	"strings"
	"testing"

	"github.com/shardkv/shardkv/resp"
)

// TestKeySlot holds keySlot to the slots redis-server 7.0.15 replied for
// CLUSTER KEYSLOT of the same keys (integration/cluster_clients_test.go
// compares many more against a running redis-server).
func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		slot int
	}{
		{"", 0},
		{"foo", 12182},
		{"bar", 5061},
		{"123456789", 12739}, // CRC-16/XMODEM's check value 0x31C3
		{"user:1000", 1649},
		{"hello world", 15332},
		{"mykey", 14687},
		{"\x00\xff\x80", 4727},
		// hash tags: the bytes between the first '{' and the first '}'
		// after it, when there is at least one
		{"{user}x", 5474},
		{"{user}y", 5474},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"foo{bar}{zap}", 5061}, // the first tag: "bar"
		{"a{b}c{d}", 3300},
		{"foo{{bar}}zap", 4015}, // tag "{bar"
		{"{{}}", 4092},          // tag "{", the slot of "{"
		{"{", 4092},
		// no tag: the whole key
		{"{}x", 10595},
		{"x{}", 2608},
		{"foo{}{bar}", 8363}, // the first '{' is followed by '}': no tag at all
		{"x{y}", 12222},      // tag "y" at the end
		{"}", 12090},
		{"{}", 15257},
		{"{a", 10276},
		{"a}", 5921},
	} {
		if got := keySlot([]byte(tc.key)); got != tc.slot {
			t.Errorf("keySlot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
	}
}

// TestClusterAddressIsTheConnections: the node address CLUSTER SLOTS,
// SHARDS and NODES give is the local address of the client's connection,
// not a configured one, so it reaches the proxy on whichever interface the
// client used.
func TestClusterAddressIsTheConnections(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		laddr, ip, port string
	}{
		{"10.1.2.3:7000", "10.1.2.3", "7000"},
		{"[fd00::1]:6380", "fd00::1", "6380"},
	} {
		c := &client{s: &Server{runID: id}}
		c.sess.Init(1, "10.9.9.9:5555", tc.laddr, "")
		slots := string(c.clusterReply(nil, cmdArgs("CLUSTER", "SLOTS")))
		want := "*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n" + bulkReply(tc.ip) + ":" + tc.port + "\r\n" + bulkReply(id) + "*0\r\n"
		if slots != want {
			t.Errorf("%s: CLUSTER SLOTS %q, want %q", tc.laddr, slots, want)
		}
		nodes := string(c.clusterReply(nil, cmdArgs("CLUSTER", "NODES")))
		line := id + " " + tc.ip + ":" + tc.port + "@0 myself,master - 0 0 0 connected 0-16383\n"
		if nodes != bulkReply(line) {
			t.Errorf("%s: CLUSTER NODES %q, want %q", tc.laddr, nodes, bulkReply(line))
		}
		shards := string(c.clusterReply(nil, cmdArgs("CLUSTER", "SHARDS")))
		if !strings.Contains(shards, "$2\r\nip\r\n"+bulkReply(tc.ip)+"$8\r\nendpoint\r\n"+bulkReply(tc.ip)) ||
			!strings.Contains(shards, "$4\r\nport\r\n:"+tc.port+"\r\n") {
			t.Errorf("%s: CLUSTER SHARDS %q", tc.laddr, shards)
		}
	}
}

// TestClusterErrors: Redis's arity and unknown-subcommand errors, and a
// refusal that says why for what would change a cluster.
func TestClusterErrors(t *testing.T) {
	c := &client{s: &Server{runID: "0123456789abcdef0123456789abcdef01234567"}}
	c.sess.Init(1, "127.0.0.1:5555", "127.0.0.1:6380", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"CLUSTER", "KEYSLOT"}, "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n"},
		{[]string{"CLUSTER", "keyslot", "a", "b"}, "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n"},
		{[]string{"CLUSTER", "MYID", "x"}, "-ERR wrong number of arguments for 'cluster|myid' command\r\n"},
		{[]string{"CLUSTER", "MEET", "1.2.3.4"}, "-ERR wrong number of arguments for 'cluster|meet' command\r\n"},
		{[]string{"CLUSTER", "Foo"}, "-ERR unknown subcommand 'Foo'. Try CLUSTER HELP.\r\n"},
		{[]string{"CLUSTER", "REPLICAS", "nosuch"}, "-ERR Unknown node nosuch\r\n"},
		{[]string{"CLUSTER", "meet", "1.2.3.4", "5"}, "-ERR CLUSTER MEET is not supported: " + errClusterChange + "\r\n"},
		{[]string{"CLUSTER", "ADDSLOTS", "1"}, "-ERR CLUSTER ADDSLOTS is not supported: " + errClusterChange + "\r\n"},
		{[]string{"CLUSTER", "FAILOVER"}, "-ERR CLUSTER FAILOVER is not supported: " + errClusterChange + "\r\n"},
		{[]string{"CLUSTER", "COUNTKEYSINSLOT", "5"}, "-ERR CLUSTER COUNTKEYSINSLOT is not supported: " + errClusterKeys + "\r\n"},
	} {
		if got := string(c.clusterReply(nil, cmdArgs(tc.args...))); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
	c.sess.Proto = resp.RESP3
	if got := string(c.clusterReply(nil, cmdArgs("CLUSTER", "INFO"))); !strings.HasPrefix(got, "=") {
		t.Errorf("CLUSTER INFO in RESP3: %q, want a verbatim string", got)
	}
}

func cmdArgs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

func bulkReply(s string) string { return string(resp.AppendBulkString(nil, s)) }

// TestClusterSubcommandsInTable: the proxy answers (or refuses, saying why)
// exactly the CLUSTER subcommands the command table lists, whose rows hold
// the arities admission checks.
func TestClusterSubcommandsInTable(t *testing.T) {
	rows := map[string]bool{}
	for _, sub := range clusterRow.Subcommands {
		name := strings.TrimPrefix(sub.Name, "cluster|")
		rows[name] = true
		if _, ok := clusterSubs[name]; !ok {
			t.Errorf("%s: a row without an answer", sub.Name)
		}
	}
	for name := range clusterSubs {
		if !rows[name] {
			t.Errorf("cluster|%s: answered, but not in the table", name)
		}
	}
}
