package proxy

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/internal/redistest"
	"github.com/shardkv/shardkv/resp"
)

// BenchmarkServe measures the proxy's request path: a client on a real
// socket, an in-process proxy, one node process behind it. One op is one
// command, sent in pipelines of depth P (P=1 is request-reply). allocs/op
// counts this process, so the proxy's allocations and the client's, which
// allocates nothing per command (one prepared request buffer, one reply
// buffer); the node's are in its own process.
func BenchmarkServe(b *testing.B) {
	c := startCluster(b, clusterOpts{nodes: 1})
	val := strings.Repeat("v", 100)
	for _, cmd := range []string{"GET", "SET", "PING"} {
		for _, depth := range []int{1, 32} {
			b.Run(cmd+"/P="+strconv.Itoa(depth), func(b *testing.B) {
				nc, err := net.Dial("tcp", c.addr)
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				buf := make([]byte, 64<<10)
				if _, err := nc.Write(resp.AppendCommandStrings(nil, "SET", "bench:key", val)); err != nil {
					b.Fatal(err)
				}
				if _, err := nc.Read(buf); err != nil {
					b.Fatal(err)
				}
				var req []byte
				args := map[string][]string{"GET": {"GET", "bench:key"}, "SET": {"SET", "bench:key", val}, "PING": {"PING"}}[cmd]
				for i := 0; i < depth; i++ {
					req = resp.AppendCommandStrings(req, args...)
				}
				reply := map[string]int{"GET": len(resp.AppendBulkString(nil, val)), "SET": len("+OK\r\n"), "PING": len("+PONG\r\n")}[cmd]
				want := reply * depth
				b.ReportAllocs()
				b.ResetTimer()
				for done := 0; done < b.N; done += depth {
					if _, err := nc.Write(req); err != nil {
						b.Fatal(err)
					}
					for got := 0; got < want; {
						n, err := nc.Read(buf)
						if err != nil {
							b.Fatal(err)
						}
						got += n
					}
				}
			})
		}
	}
}

// BenchmarkPublish100Subscribers: PUBLISH to a channel with 100
// subscribers, through the proxy (two nodes behind it) and to a
// redis-server started in the same run. One op is one message published
// (in pipelines of 32) and received by all 100 subscribers; msgs/s is
// messages published per second, each delivered 100 times.
func BenchmarkPublish100Subscribers(b *testing.B) {
	targets := []struct{ name, addr string }{
		{"redis-server", redistest.Start(b)},
		{"shardkv", startCluster(b, clusterOpts{nodes: 2}).addr},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) { benchPublish(b, tg.addr, 100) })
	}
}

func benchPublish(b *testing.B, addr string, subs int) {
	var conns []net.Conn
	for i := 0; i < subs; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		nc.Write(resp.AppendCommandStrings(nil, "SUBSCRIBE", "bench"))
		rr := resp.NewReplyReader(nc, 4096)
		if _, err := rr.Next(); err != nil {
			b.Fatal(err)
		}
		conns = append(conns, nc)
	}
	msg := resp.AppendCommandStrings(nil, "PUBLISH", "bench", strings.Repeat("m", 32))
	push := len(resp.AppendBulkString(resp.AppendBulkString(resp.AppendBulkString([]byte("*3\r\n"), "message"), "bench"), strings.Repeat("m", 32)))
	pub, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	const depth = 32
	var req []byte
	for i := 0; i < depth; i++ {
		req = append(req, msg...)
	}
	want := int64(push) * int64(b.N)
	done := make(chan error, subs)
	b.ResetTimer()
	for _, nc := range conns {
		go func(nc net.Conn) {
			buf := make([]byte, 64<<10)
			for got := int64(0); got < want; {
				n, err := nc.Read(buf)
				if err != nil {
					done <- err
					return
				}
				got += int64(n)
			}
			done <- nil
		}(nc)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for sent := 0; sent < b.N; sent += depth {
			n := min(depth, b.N-sent)
			if _, err := pub.Write(req[:n*len(msg)]); err != nil {
				return
			}
			for got := 0; got < n*len(":100\r\n"); {
				m, err := pub.Read(buf)
				if err != nil {
					return
				}
				got += m
			}
		}
	}()
	for range conns {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
