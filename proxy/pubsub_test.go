package proxy

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// TestPubsubMatchesRedis replays the Pub/Sub script (internal/redistest)
// against redis-server and a proxy in front of two nodes: replies,
// messages, counts, subscribed-mode refusals, RESP2 and RESP3.
func TestPubsubMatchesRedis(t *testing.T) {
	want := redistest.Transcript(t, redistest.Start(t), redistest.PubsubProtos, redistest.PubsubSteps)
	c := startCluster(t, clusterOpts{nodes: 2})
	got := redistest.Transcript(t, c.addr, redistest.PubsubProtos, redistest.PubsubSteps)
	redistest.Compare(t, redistest.PubsubSteps, want, got)
}

// startProxy serves another proxy over the map m until the test ends.
func startProxy(t *testing.T, m *rangemap.Map) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Map = m
	cfg.Logger = hclog.NewNullLogger()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// TestPubsubTwoProxies: a message published through one proxy reaches the
// subscribers of another proxy of the same nodes, and PUBLISH and PUBSUB
// count the clients of both.
func TestPubsubTwoProxies(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	other := startProxy(t, c.m)
	var chans []string
	for i := range c.nodes {
		chans = append(chans, c.keysOn(i, 1, "ch")...)
	}
	// Two subscribers on the other proxy, one on the first, for every
	// channel; one pattern subscriber on the other proxy.
	var subs []*rawConn
	for _, addr := range []string{other, other, c.addr} {
		s := dialRaw(t, addr)
		args := append([]string{"SUBSCRIBE"}, chans...)
		s.send(args...)
		for range chans {
			s.read()
		}
		subs = append(subs, s)
	}
	psub := dialRaw(t, other)
	psub.send("PSUBSCRIBE", "ch*")
	psub.read()
	pub := dialRaw(t, c.addr)
	for _, ch := range chans {
		if got := pub.do("PUBLISH", ch, "m-"+ch); got != ":4\r\n" {
			t.Errorf("PUBLISH %s: %q, want 4 receivers", ch, got)
		}
	}
	// The channels live on different nodes, whose messages come on
	// different links: their order is kept per channel, not across them.
	readAll := func(s *rawConn) string {
		var got []string
		for range chans {
			got = append(got, s.read())
		}
		slices.Sort(got)
		return strings.Join(got, "")
	}
	var wants, pwants []string
	for _, ch := range chans {
		wants = append(wants, "*3\r\n$7\r\nmessage\r\n"+bulk(ch)+bulk("m-"+ch))
		pwants = append(pwants, "*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n"+bulk(ch)+bulk("m-"+ch))
	}
	slices.Sort(wants)
	slices.Sort(pwants)
	want, pwant := strings.Join(wants, ""), strings.Join(pwants, "")
	for i, s := range subs {
		if got := readAll(s); got != want {
			t.Errorf("subscriber %d: %q, want %q", i, got, want)
		}
	}
	if got := readAll(psub); got != pwant {
		t.Errorf("pattern subscriber: %q, want %q", got, pwant)
	}
	other2 := dialRaw(t, other)
	if got, want := other2.do("PUBSUB", "NUMSUB", chans[0]), "*2\r\n"+bulk(chans[0])+":3\r\n"; got != want {
		t.Errorf("NUMSUB: %q, want %q", got, want)
	}
	if got := other2.do("PUBSUB", "NUMPAT"); got != ":1\r\n" {
		t.Errorf("NUMPAT: %q", got)
	}
	if got := other2.do("PUBSUB", "CHANNELS"); !strings.HasPrefix(got, "*3\r\n") {
		t.Errorf("CHANNELS: %q", got)
	}
	// Unsubscribing on the other proxy is seen in the count.
	subs[0].send("UNSUBSCRIBE", chans[0])
	subs[0].read()
	if got := pub.do("PUBLISH", chans[0], "x"); got != ":3\r\n" {
		t.Errorf("PUBLISH after UNSUBSCRIBE: %q, want 3", got)
	}
	// A closed subscriber is forgotten.
	psub.nc.Close()
	subs[1].nc.Close()
	for i := 0; ; i++ {
		got := other2.do("PUBSUB", "NUMPAT")
		if got == ":0\r\n" {
			break
		}
		if i == 1000 {
			t.Fatalf("NUMPAT after the pattern subscriber left: %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := pub.do("PUBLISH", chans[0], "y"); got != ":1\r\n" {
		t.Errorf("PUBLISH after closes: %q, want 1", got)
	}
}

// TestPubsubSlowSubscriberProxy: a subscriber of the proxy that never
// reads is closed at the pubsub class's hard limit; the publisher goes on
// and the nodes no longer count it.
func TestPubsubSlowSubscriberProxy(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	pub := dialRaw(t, c.addr)
	if got := pub.do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0"); got != "+OK\r\n" {
		t.Fatalf("CONFIG SET: %q", got)
	}
	slow := dialRaw(t, c.addr)
	slow.send("SUBSCRIBE", "slow")
	slow.read()
	payload := strings.Repeat("x", 64<<10)
	sent, gone := 0, false
	for sent < 1024 && !gone {
		pub.do("PUBLISH", "slow", payload)
		sent++
		gone = pub.do("PUBSUB", "NUMSUB", "slow") == "*2\r\n$4\r\nslow\r\n:0\r\n"
	}
	if !gone {
		t.Fatalf("subscriber still counted after %d messages of 64 KB", sent)
	}
	t.Logf("closed after %d messages of 64 KB", sent)
	if got := pub.do("PING"); got != "+PONG\r\n" {
		t.Errorf("publisher: %q", got)
	}
}

func bulk(s string) string { return "$" + itoa(int64(len(s))) + "\r\n" + s + "\r\n" }

// send writes a command without reading its reply.
func (c *rawConn) send(args ...string) {
	c.t.Helper()
	if _, err := c.nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		c.t.Fatal(err)
	}
}

// TestPubsubNodeRestart: the proxy's subscriber connection to a node that
// restarts is dialed again and told its clients' subscriptions, so they
// get the node's messages again without subscribing anew.
func TestPubsubNodeRestart(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ch := c.keysOn(0, 1, "rch")[0]
	sub := dialRaw(t, c.addr)
	sub.send("SUBSCRIBE", ch)
	sub.read()
	c.nodes[0].stop()
	c.nodes[0].start(t)
	pub := dialRaw(t, c.addr)
	for i := 0; ; i++ {
		got := pub.do("PUBLISH", ch, "back")
		if got == ":1\r\n" {
			break
		}
		if i == 2000 {
			t.Fatalf("PUBLISH after the node restarted: %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := sub.read(), "*3\r\n$7\r\nmessage\r\n"+bulk(ch)+bulk("back"); got != want {
		t.Errorf("message after the restart: %q, want %q", got, want)
	}
}

// TestPubsubDirectNodeSubscriber: a client subscribed on the channel's
// node itself gets what is published through the proxy, and is counted
// with the proxy's clients.
func TestPubsubDirectNodeSubscriber(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ch := c.keysOn(1, 1, "dch")[0]
	direct := dialRaw(t, c.nodes[1].addr)
	direct.send("SUBSCRIBE", ch)
	direct.read()
	viaProxy := dialRaw(t, c.addr)
	viaProxy.send("SUBSCRIBE", ch)
	viaProxy.read()
	pub := dialRaw(t, c.addr)
	if got := pub.do("PUBLISH", ch, "both"); got != ":2\r\n" {
		t.Errorf("PUBLISH: %q, want 2", got)
	}
	want := "*3\r\n$7\r\nmessage\r\n" + bulk(ch) + bulk("both")
	for name, s := range map[string]*rawConn{"direct": direct, "proxy": viaProxy} {
		if got := s.read(); got != want {
			t.Errorf("%s subscriber: %q, want %q", name, got, want)
		}
	}
	if got := pub.do("INFO", "stats"); !strings.Contains(got, "pubsub_channels:1\r\n") {
		t.Errorf("proxy INFO stats lacks pubsub_channels:1: %q", got)
	}
}

// FuzzParseLinkFrame: whatever a node sends on a link, the frame is read
// without a panic, and a well-formed message push comes back as it was
// encoded.
func FuzzParseLinkFrame(f *testing.F) {
	f.Add([]byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nmsg\r\n"), "ch", "msg")
	f.Add([]byte("*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$0\r\n\r\n"), "", "")
	f.Add([]byte("*3\r\n$8\r\nsmessage\r\n$-1\r\n:1\r\n"), "a", "b")
	f.Add([]byte("+OK\r\n"), "x", "y")
	f.Add([]byte("-ERR no\r\n"), "x", "y")
	f.Add([]byte("*1\r\n*0\r\n"), "x", "y")
	f.Fuzz(func(t *testing.T, raw []byte, ch, msg string) {
		m, isMsg, _ := parseLinkFrame(raw)
		if isMsg && m.kind >= 0 && (m.ch == nil || m.msg == nil) {
			t.Fatalf("message without channel or payload from %q", raw)
		}
		enc := resp.AppendCommandStrings(nil, "message", ch, msg)
		m, isMsg, err := parseLinkFrame(enc)
		if !isMsg || err != nil || m.kind != psChannel || string(m.ch) != ch || string(m.msg) != msg || string(m.name) != ch {
			t.Fatalf("message %q %q read back as %+v, %v, %v", ch, msg, m, isMsg, err)
		}
	})
}

// TestPublishInMultiCrossShard: a PUBLISH queued in MULTI runs on its
// channel's node, so a channel on another shard than the transaction's
// keys makes EXEC refuse, and nothing runs.
func TestPublishInMultiCrossShard(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	ctx := context.Background()
	rdb := c.client(2)
	key := c.keysOn(0, 1, "pk")[0]
	ch := c.keysOn(1, 1, "pch")[0]
	sub := rdb.Subscribe(ctx, ch)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "v", 0)
		p.Publish(ctx, ch, "m")
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "CROSSSHARD") {
		t.Fatalf("EXEC of SET and PUBLISH on two shards: %v, want CROSSSHARD", err)
	}
	if n, err := rdb.Exists(ctx, key).Result(); n != 0 || err != nil {
		t.Fatalf("EXISTS %s after the refused EXEC: %d, %v", key, n, err)
	}
	var n *redis.IntCmd
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Publish(ctx, ch, "m")
		return nil
	}); err != nil || n.Val() != 1 {
		t.Fatalf("EXEC of PUBLISH alone: %d, %v; want 1 receiver", n.Val(), err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "m" {
		t.Fatalf("message published in MULTI: %v, %v", msg, err)
	}
}
