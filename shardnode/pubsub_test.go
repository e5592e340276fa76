package shardnode

import (
	"strings"
	"testing"

	"github.com/shardkv/shardkv/internal/redistest"
)

// TestPubsubMatchesRedis replays redistest.PubsubSteps against redis-server and the
// node, on event loops and with a goroutine per connection.
func TestPubsubMatchesRedis(t *testing.T) {
	want := redistest.Transcript(t, startRedis(t), redistest.PubsubProtos, redistest.PubsubSteps)
	for _, m := range []struct {
		name  string
		loops int
	}{{"loops", 2}, {"goroutines", -1}} {
		t.Run(m.name, func(t *testing.T) {
			n := startNode(t, "", func(c *Config) { c.EventLoops = m.loops })
			n.assignAll()
			got := redistest.Transcript(t, n.addr, redistest.PubsubProtos, redistest.PubsubSteps)
			redistest.Compare(t, redistest.PubsubSteps, want, got)
		})
	}
}

// TestPubsubSlowSubscriber: a subscriber that does not read is closed once
// its pending messages pass the pubsub class's hard limit; the publisher
// goes on and the channel loses the subscriber.
func TestPubsubSlowSubscriber(t *testing.T) {
	for _, m := range []struct {
		name  string
		loops int
	}{{"loops", 2}, {"goroutines", -1}} {
		t.Run(m.name, func(t *testing.T) {
			n := startNode(t, "", func(c *Config) { c.EventLoops = m.loops })
			pub := n.raw()
			if got := pub.do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0"); got != "+OK\r\n" {
				t.Fatalf("CONFIG SET: %q", got)
			}
			sub := n.raw()
			if got := sub.do("SUBSCRIBE", "slow"); !strings.Contains(got, "subscribe") {
				t.Fatalf("SUBSCRIBE: %q", got)
			}
			payload := strings.Repeat("x", 64<<10)
			// The socket buffers take some megabytes before pushes stay
			// pending; 64 MB is far past them and the limit.
			sent, gone := 0, false
			for sent < 1024 && !gone {
				pub.do("PUBLISH", "slow", payload)
				sent++
				gone = pub.do("PUBSUB", "NUMSUB", "slow") == "*2\r\n$4\r\nslow\r\n:0\r\n"
			}
			if !gone {
				t.Fatalf("subscriber still there after %d messages of 64 KB", sent)
			}
			t.Logf("closed after %d messages of 64 KB", sent)
			if !strings.Contains(n.logs.String(), "overcoming of output buffer limits") {
				t.Errorf("no output buffer limit log line")
			}
			if got := pub.do("PING"); got != "+PONG\r\n" {
				t.Errorf("publisher: %q", got)
			}
		})
	}
}

// TestPubsubClientList: a subscribed client is of CLIENT LIST's pubsub
// type, with its counts and the P flag, as in Redis.
func TestPubsubClientList(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	sub := n.raw()
	sub.send("SUBSCRIBE", "a", "b")
	sub.next()
	sub.next()
	sub.send("PSUBSCRIBE", "p*")
	sub.next()
	other := n.raw()
	got := other.do("CLIENT", "LIST", "TYPE", "pubsub")
	if !strings.Contains(got, " flags=P ") || !strings.Contains(got, " sub=2 psub=1 ssub=0 ") || strings.Count(got, "id=") != 1 {
		t.Errorf("CLIENT LIST TYPE pubsub: %q", got)
	}
	if got := other.do("CLIENT", "LIST", "TYPE", "normal"); strings.Contains(got, "flags=P") || strings.Count(got, "id=") != 1 {
		t.Errorf("CLIENT LIST TYPE normal: %q", got)
	}
}

// TestShardPubsubWeights: a proxy's subscriber connection listens with a
// weight, which PUBLISH and PUBSUB NUMSUB count; the connection gets one
// copy of each message and stays out of subscribed mode.
func TestShardPubsubWeights(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	link := n.raw()
	pub := n.raw()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"SHARD.PUBSUB", "SET", "channel", "5", "ch"}, "+OK\r\n"},
		{[]string{"SHARD.PUBSUB", "SET", "pattern", "2", "c*"}, "+OK\r\n"},
		{[]string{"SHARD.PUBSUB", "SET", "nosuch", "1", "x"}, "-ERR syntax error\r\n"},
		{[]string{"SHARD.PUBSUB", "SET", "channel", "-1", "x"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"SHARD.PUBSUB", "SET", "channel", "1"}, "-ERR wrong number of arguments for 'shard.pubsub' command\r\n"},
		{[]string{"GET", "k"}, "$-1\r\n"}, // not in subscribed mode
	} {
		if got := link.do(c.args...); got != c.want {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
	if got := pub.do("PUBLISH", "ch", "m"); got != ":7\r\n" {
		t.Errorf("PUBLISH: %q, want 7 (5 for the channel, 2 for the pattern)", got)
	}
	if got := link.next(); got != "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n" {
		t.Errorf("link message: %q", got)
	}
	if got := link.next(); got != "*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$1\r\nm\r\n" {
		t.Errorf("link pattern message: %q", got)
	}
	if got := pub.do("PUBSUB", "NUMSUB", "ch"); got != "*2\r\n$2\r\nch\r\n:5\r\n" {
		t.Errorf("NUMSUB: %q", got)
	}
	if got := pub.do("SHARD.PUBSUB", "PATTERNS"); got != "*1\r\n$2\r\nc*\r\n" {
		t.Errorf("PATTERNS: %q", got)
	}
	link.do("SHARD.PUBSUB", "SET", "channel", "0", "ch")
	link.do("SHARD.PUBSUB", "SET", "pattern", "0", "c*")
	if got := pub.do("PUBLISH", "ch", "m"); got != ":0\r\n" {
		t.Errorf("PUBLISH after weights 0: %q", got)
	}
}
