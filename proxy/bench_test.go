package proxy

import (
	"net"
	"strconv"
	"strings"
	"testing"

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
