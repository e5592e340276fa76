package shardnode

import (
	"strings"
	"testing"

	"github.com/shardkv/shardkv/internal/redistest"
)

// pubsubProtos are the connections of pubsubSteps: 0-2 speak RESP2, 3
// RESP3.
var pubsubProtos = []int{2, 2, 2, 3}

var S = redistest.S

// pubsubSteps is the Pub/Sub script replayed against redis-server and the
// node (and, in proxy/pubsub_test.go, the proxy): replies, pushes to the
// other connections, subscribed-mode refusals, counts.
var pubsubSteps = []redistest.Step{
	S(0, "SUBSCRIBE", "a", "b"),
	S(1, "PUBLISH", "a", "hello"),
	S(1, "PUBLISH", "zz", "x"),
	S(0, "GET", "k"),
	S(0, "CONFIG", "GET", "maxmemory"),
	S(0, "HELLO", "3"),
	S(0, "PING"),
	S(0, "PING", "hi"),
	S(0, "NOSUCHCMD"),
	S(0, "SUBSCRIBE"),
	S(2, "PSUBSCRIBE", "a*", "h?llo"),
	S(1, "PUBLISH", "a", "m2"),
	S(1, "PUBLISH", "hello", "m3"),
	S(1, "PUBSUB", "NUMSUB", "a", "b", "zz"),
	S(1, "PUBSUB", "NUMSUB"),
	S(1, "PUBSUB", "NUMPAT"),
	{Conn: 1, Args: []string{"PUBSUB", "CHANNELS"}, SortElems: true},
	S(1, "PUBSUB", "CHANNELS", "a*"),
	S(1, "PUBSUB", "CHANNELS", "nomatch*"),
	S(0, "UNSUBSCRIBE", "b"),
	S(0, "UNSUBSCRIBE", "b"),
	S(0, "UNSUBSCRIBE"),
	S(0, "UNSUBSCRIBE"),
	S(0, "PUNSUBSCRIBE"),
	S(0, "SUNSUBSCRIBE"),
	S(0, "GET", "k"),
	S(0, "PING"),
	S(2, "SUBSCRIBE", "a"),
	S(1, "PUBLISH", "a", "both"),
	S(2, "PUNSUBSCRIBE", "nosuch"),
	S(2, "PUNSUBSCRIBE"),
	S(2, "SSUBSCRIBE", "s1"),
	S(2, "UNSUBSCRIBE"),
	S(2, "GET", "k"),
	S(1, "SPUBLISH", "s1", "shard"),
	S(1, "PUBLISH", "s1", "notshard"),
	S(1, "PUBSUB", "SHARDCHANNELS"),
	S(1, "PUBSUB", "SHARDNUMSUB", "s1", "a"),
	S(2, "SUNSUBSCRIBE", "s1"),
	S(2, "SUNSUBSCRIBE"),
	S(3, "SUBSCRIBE", "a", "r3"),
	S(3, "GET", "k"),
	S(3, "PING"),
	S(1, "PUBLISH", "r3", "to-resp3"),
	S(3, "PUBLISH", "r3", "to-self"),
	S(3, "PSUBSCRIBE", "r*"),
	S(1, "PUBLISH", "r3", "twice"),
	S(3, "RESET"),
	S(3, "GET", "k"),
	S(1, "PUBLISH", "r3", "nobody"),
	S(1, "SUBSCRIBE", "m1", "m2", "m3"),
	S(1, "UNSUBSCRIBE", "m2", "m1", "m3"),
	S(1, "PUBLISH"),
	S(1, "PUBLISH", "a"),
	S(1, "SPUBLISH", "a"),
	S(1, "PSUBSCRIBE"),
	S(1, "SSUBSCRIBE"),
	S(1, "PUBSUB"),
	S(1, "PUBSUB", "NUMPAT", "x"),
	S(1, "PUBSUB", "CHANNELS", "a", "b"),
	S(1, "PUBSUB", "NOSUCH"),
	S(1, "PUBSUB", "HELP"),
	S(0, "SUBSCRIBE", "q"),
	S(0, "QUIT"),
	S(1, "PUBSUB", "NUMSUB", "q"),
}

// TestPubsubMatchesRedis replays pubsubSteps against redis-server and the
// node, on event loops and with a goroutine per connection.
func TestPubsubMatchesRedis(t *testing.T) {
	want := redistest.Transcript(t, startRedis(t), pubsubProtos, pubsubSteps)
	for _, m := range []struct {
		name  string
		loops int
	}{{"loops", 2}, {"goroutines", -1}} {
		t.Run(m.name, func(t *testing.T) {
			n := startNode(t, "", func(c *Config) { c.EventLoops = m.loops })
			n.assignAll()
			got := redistest.Transcript(t, n.addr, pubsubProtos, pubsubSteps)
			redistest.Compare(t, pubsubSteps, want, got)
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
