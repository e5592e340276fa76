package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/resp"
)

// Pub/Sub through the real binaries: two proxies in front of the same
// nodes (subscribe on one, publish on the other), the client libraries,
// a burst to 1,000 subscribers, and a subscriber that never reads.

// startSecondProxy starts another proxy over c's map and returns its
// address; it is killed when the test ends.
func startSecondProxy(t *testing.T, c *Cluster) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	p := &Proc{Name: "proxy2", Bin: bin("shardkv-proxy"),
		Args:    []string{"-addr", addr, "-map", c.MapFile, "-timeout", "2s", "-log-level", "info"},
		Addr:    addr,
		LogPath: filepath.Join(c.Dir, "logs", "proxy2.log")}
	p.Start(t)
	t.Cleanup(func() { p.Kill(); p.checkLog(t) })
	p.WaitReady(t)
	return addr
}

// pubsubChannel is a channel name owned by shard i.
func pubsubChannel(c *Cluster, i int) string { return c.KeysOn(i, "chan", 1)[0] }

// libOut is what each client library's script prints: the messages it
// received ("channel:message", "p:channel:message" for a pattern's) and
// the PUBLISH counts: a channel, a pattern, the channel after UNSUBSCRIBE.
type libOut struct {
	Got    []string
	Counts []int
}

func checkLibOut(t *testing.T, ch string, out libOut) {
	t.Helper()
	want := []string{ch + ":hello", "p:pp.x:world"}
	if fmt.Sprint(out.Got) != fmt.Sprint(want) {
		t.Errorf("messages %q, want %q", out.Got, want)
	}
	if fmt.Sprint(out.Counts) != "[1 1 0]" {
		t.Errorf("PUBLISH counts %v, want [1 1 0]", out.Counts)
	}
}

// TestPubsubGoRedis: go-redis's PubSub on one proxy, PUBLISH on the other,
// RESP2 and RESP3.
func TestPubsubGoRedis(t *testing.T) {
	c := StartCluster(t, Options{})
	other := startSecondProxy(t, c)
	ch := pubsubChannel(c, 1)
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			ctx := context.Background()
			sub := redis.NewClient(&redis.Options{Addr: other, Protocol: proto})
			defer sub.Close()
			pub := redis.NewClient(&redis.Options{Addr: c.ProxyAddr, Protocol: proto})
			defer pub.Close()
			ps := sub.Subscribe(ctx, ch)
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ps.PSubscribe(ctx, "pp.*"); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			var out libOut
			msgs := ps.Channel()
			// One at a time: the channel and the pattern's match may live
			// on different nodes, whose messages keep no order between them.
			for _, pm := range [][2]string{{ch, "hello"}, {"pp.x", "world"}} {
				n, err := pub.Publish(ctx, pm[0], pm[1]).Result()
				if err != nil {
					t.Fatal(err)
				}
				out.Counts = append(out.Counts, int(n))
				m := <-msgs
				if m.Pattern != "" {
					out.Got = append(out.Got, "p:"+m.Channel+":"+m.Payload)
				} else {
					out.Got = append(out.Got, m.Channel+":"+m.Payload)
				}
			}
			if err := ps.Unsubscribe(ctx, ch); err != nil {
				t.Fatal(err)
			}
			// The unsubscribe is acknowledged once NUMSUB says so.
			for i := 0; ; i++ {
				v, err := pub.PubSubNumSub(ctx, ch).Result()
				if err != nil {
					t.Fatal(err)
				}
				if v[ch] == 0 {
					break
				}
				if i == 1000 {
					t.Fatalf("NUMSUB %s after UNSUBSCRIBE: %v", ch, v)
				}
				time.Sleep(5 * time.Millisecond)
			}
			n, err := pub.Publish(ctx, ch, "again").Result()
			if err != nil {
				t.Fatal(err)
			}
			out.Counts = append(out.Counts, int(n))
			checkLibOut(t, ch, out)
		})
	}
}

const nodeRedisPubsubScript = `
const { createClient } = require("redis");
const [subAddr, pubAddr, ch] = process.argv.slice(2);
(async () => {
	const sub = createClient({ url: "redis://" + subAddr });
	const pub = createClient({ url: "redis://" + pubAddr });
	sub.on("error", (e) => { console.error(e); process.exit(1); });
	pub.on("error", (e) => { console.error(e); process.exit(1); });
	await sub.connect();
	await pub.connect();
	const out = { got: [], counts: [] };
	await sub.subscribe(ch, (msg, c) => out.got.push(c + ":" + msg));
	await sub.pSubscribe("pp.*", (msg, c) => out.got.push("p:" + c + ":" + msg));
	out.counts.push(await pub.publish(ch, "hello"));
	while (out.got.length < 1) await new Promise((r) => setTimeout(r, 5));
	out.counts.push(await pub.publish("pp.x", "world"));
	while (out.got.length < 2) await new Promise((r) => setTimeout(r, 5));
	await sub.unsubscribe(ch);
	out.counts.push(await pub.publish(ch, "again"));
	await sub.pUnsubscribe();
	console.log(JSON.stringify(out));
	await sub.quit();
	await pub.quit();
})().catch((e) => { console.error(e); process.exit(1); });
`

const ioredisPubsubScript = `
const Redis = require("ioredis");
const [subAddr, pubAddr, ch] = process.argv.slice(2);
const hp = (a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) });
(async () => {
	const sub = new Redis(hp(subAddr));
	const pub = new Redis(hp(pubAddr));
	const out = { got: [], counts: [] };
	sub.on("message", (c, msg) => out.got.push(c + ":" + msg));
	sub.on("pmessage", (p, c, msg) => out.got.push("p:" + c + ":" + msg));
	await sub.subscribe(ch);
	await sub.psubscribe("pp.*");
	out.counts.push(await pub.publish(ch, "hello"));
	while (out.got.length < 1) await new Promise((r) => setTimeout(r, 5));
	out.counts.push(await pub.publish("pp.x", "world"));
	while (out.got.length < 2) await new Promise((r) => setTimeout(r, 5));
	await sub.unsubscribe(ch);
	out.counts.push(await pub.publish(ch, "again"));
	await sub.punsubscribe();
	console.log(JSON.stringify(out));
	sub.disconnect();
	pub.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
`

const redisPyPubsubScript = `
import json, sys, redis
sub_addr, pub_addr, ch = sys.argv[1], sys.argv[2], sys.argv[3]
def client(a):
    h, p = a.rsplit(":", 1)
    return redis.Redis(host=h, port=int(p))
sub, pub = client(sub_addr), client(pub_addr)
ps = sub.pubsub()
ps.subscribe(ch)
ps.psubscribe("pp.*")
def wait_for(kind, n=1):
    seen = []
    while len(seen) < n:
        m = ps.get_message(timeout=30)
        if m is None:
            raise SystemExit("no " + kind)
        if m["type"] == kind:
            seen.append(m)
    return seen
wait_for("subscribe")
wait_for("psubscribe")
out = {"got": [], "counts": []}
out["counts"].append(pub.publish(ch, "hello"))
m = wait_for("message")[0]
out["got"].append(m["channel"].decode() + ":" + m["data"].decode())
out["counts"].append(pub.publish("pp.x", "world"))
m = wait_for("pmessage")[0]
out["got"].append("p:" + m["channel"].decode() + ":" + m["data"].decode())
ps.unsubscribe(ch)
wait_for("unsubscribe")
out["counts"].append(pub.publish(ch, "again"))
ps.punsubscribe()
wait_for("punsubscribe")
ps.close()
print(json.dumps(out))
`

// runPubsubScript runs a library's script: subscriber on the second proxy,
// publisher on the first.
func runPubsubScript(t *testing.T, bin string, env []string, name, src string) {
	t.Helper()
	c := StartCluster(t, Options{})
	other := startSecondProxy(t, c)
	ch := pubsubChannel(c, 2)
	script := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out libOut
	runClientScript(t, &out, env, bin, script, other, c.ProxyAddr, ch)
	checkLibOut(t, ch, out)
}

// TestPubsubNodeRedis: node-redis 4's subscribe and pSubscribe.
func TestPubsubNodeRedis(t *testing.T) {
	nodeBin, env := needNodeModule(t, nodeRedisDir(), "redis", nodeRedisVersion)
	runPubsubScript(t, nodeBin, env, "pubsub.js", nodeRedisPubsubScript)
}

// TestPubsubIoredis: ioredis's subscriber mode.
func TestPubsubIoredis(t *testing.T) {
	nodeBin, env := needNodeModule(t, ioredisDir(), "ioredis", ioredisVersion)
	runPubsubScript(t, nodeBin, env, "pubsub.js", ioredisPubsubScript)
}

// TestPubsubRedisPy: redis-py's PubSub.
func TestPubsubRedisPy(t *testing.T) {
	needBinaries(t)
	py := redisPython()
	if py == "" {
		t.Skip("no python3 with redis-py (Debian: apt-get install python3-redis; .ci/run does)")
	}
	runPubsubScript(t, py, nil, "pubsub.py", redisPyPubsubScript)
}

// rawSub is a subscriber on a plain connection.
type rawSub struct {
	nc net.Conn
	rr *resp.ReplyReader
}

func dialSub(t *testing.T, addr string, args ...string) *rawSub {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	s := &rawSub{nc: nc, rr: resp.NewReplyReader(bufio.NewReader(nc), 4096)}
	if _, err := nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *rawSub) next(t *testing.T) string {
	t.Helper()
	_ = s.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	b, err := s.rr.Next()
	if err != nil {
		t.Fatalf("subscriber read: %v", err)
	}
	return string(b)
}

// TestPubsubThousandSubscribers: 1,000 subscribers, half on each of two
// proxies, each receive every message of a burst of 100, in order, and
// PUBLISH counts all of them.
func TestPubsubThousandSubscribers(t *testing.T) {
	c := StartCluster(t, Options{})
	other := startSecondProxy(t, c)
	const subs, burst = 1000, 100
	var all []*rawSub
	for i := 0; i < subs; i++ {
		addr := c.ProxyAddr
		if i%2 == 1 {
			addr = other
		}
		all = append(all, dialSub(t, addr, "SUBSCRIBE", "burst"))
	}
	for _, s := range all {
		if got := s.next(t); !strings.HasPrefix(got, "*3\r\n$9\r\nsubscribe\r\n") {
			t.Fatalf("SUBSCRIBE: %q", got)
		}
	}
	pub := c.Client()
	ctx := context.Background()
	for i := 0; i < burst; i++ {
		n, err := pub.Publish(ctx, "burst", "m"+strconv.Itoa(i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != subs {
			t.Fatalf("PUBLISH %d: %d receivers, want %d", i, n, subs)
		}
	}
	for j, s := range all {
		for i := 0; i < burst; i++ {
			want := "*3\r\n$7\r\nmessage\r\n$5\r\nburst\r\n" + string(resp.AppendBulkString(nil, "m"+strconv.Itoa(i)))
			if got := s.next(t); got != want {
				t.Fatalf("subscriber %d, message %d: %q, want %q", j, i, got, want)
			}
		}
	}
}

// rssKB reads a process's resident set from /proc.
func rssKB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestPubsubSubscriberThatNeverReads: a subscriber that never reads is
// disconnected at the pubsub class's default limits (32 MB hard) while
// the proxy's resident memory stays bounded; the publisher and another
// subscriber go on.
func TestPubsubSubscriberThatNeverReads(t *testing.T) {
	c := StartCluster(t, Options{})
	slow := dialSub(t, c.ProxyAddr, "SUBSCRIBE", "flood")
	fast := c.Client().Subscribe(context.Background(), "flood")
	defer fast.Close()
	ctx := context.Background()
	if _, err := fast.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := fast.Channel(redis.WithChannelSize(1 << 16))
	pub := c.Client()
	start := rssKB(t, c.Proxy.Pid())
	peak := start
	payload := strings.Repeat("x", 64<<10)
	sent, gone := 0, false
	// 64 KB messages; 2 GB would be sent before giving up (the limit is 32 MB).
	for sent < 32768 && !gone {
		if err := pub.Publish(ctx, "flood", payload).Err(); err != nil {
			t.Fatal(err)
		}
		sent++
		<-msgs // the reading subscriber keeps up
		if sent%64 == 0 {
			peak = max(peak, rssKB(t, c.Proxy.Pid()))
			v, err := pub.PubSubNumSub(ctx, "flood").Result()
			if err != nil {
				t.Fatal(err)
			}
			gone = v["flood"] == 1
		}
	}
	if !gone {
		t.Fatalf("the subscriber that never reads is still counted after %d messages of 64 KB", sent)
	}
	peak = max(peak, rssKB(t, c.Proxy.Pid()))
	t.Logf("disconnected after %d messages of 64 KB (%d MB); proxy RSS %d MB at start, %d MB at peak",
		sent, sent/16, start/1024, peak/1024)
	if peak-start > 200<<10 {
		t.Errorf("proxy RSS grew by %d MB", (peak-start)/1024)
	}
	_ = slow.nc.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := bufio.NewReader(slow.nc).Discard(1 << 30); err == nil {
		t.Errorf("the slow subscriber's connection is still open")
	}
	if n, err := pub.Publish(ctx, "flood", "after").Result(); err != nil || n != 1 {
		t.Errorf("PUBLISH after the disconnect: %d, %v; want 1", n, err)
	}
}
