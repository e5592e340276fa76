package shardnode

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/resp"
)

// BenchmarkServe measures the node's request path through a real socket:
// one op is one command, sent in pipelines of depth P (P=1 is request-reply,
// where the read and write calls dominate) in each serving mode. allocs/op
// counts the whole process, the client's side included, which allocates
// nothing per command: it writes one prepared buffer and reads the replies
// into another.
func BenchmarkServe(b *testing.B) {
	for _, m := range serveModes {
		b.Run(m.name, func(b *testing.B) {
			addr := benchNode(b, m.loops, m.wrap)
			for _, cmd := range []string{"GET", "SET"} {
				for _, depth := range []int{1, 32} {
					b.Run(cmd+"/P="+strconv.Itoa(depth), func(b *testing.B) {
						benchPipeline(b, addr, cmd, "bench:key", depth)
					})
				}
			}
		})
	}
}

// BenchmarkServeHashTags is BenchmarkServe's pipelined GET and SET on a node
// whose assignment has hash tags, for a key with a tag and one without: the
// tag search is the only extra work, and allocs/op must stay what
// BenchmarkServe gives.
func BenchmarkServeHashTags(b *testing.B) {
	m := serveModes[0]
	addr := benchNode(b, m.loops, m.wrap, "HASHTAGS", "1")
	for _, key := range []string{"bench:{key}", "bench:key"} {
		for _, cmd := range []string{"GET", "SET"} {
			b.Run(m.name+"/"+key+"/"+cmd+"/P=32", func(b *testing.B) {
				benchPipeline(b, addr, cmd, key, 32)
			})
		}
	}
}

// benchPipeline sends b.N commands in pipelines of depth and reads every
// reply.
func benchPipeline(b *testing.B, addr, cmd, key string, depth int) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	val := string(bytes.Repeat([]byte("v"), 100))
	var req []byte
	for i := 0; i < depth; i++ {
		if cmd == "SET" {
			req = resp.AppendCommandStrings(req, "SET", key, val)
		} else {
			req = resp.AppendCommandStrings(req, "GET", key)
		}
	}
	if _, err := nc.Write(resp.AppendCommandStrings(nil, "SET", key, val)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	if _, err := nc.Read(buf); err != nil {
		b.Fatal(err)
	}
	reply := len("+OK\r\n")
	if cmd == "GET" {
		reply = len(resp.AppendBulkString(nil, val))
	}
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
}

// benchNode serves a node with the whole key space on a loopback port until
// the benchmark ends.
func benchNode(b *testing.B, loops int, wrap func(net.Listener) net.Listener, assign ...string) string {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Dir = b.TempDir()
	cfg.EventLoops = loops
	cfg.Logger = hclog.NewNullLogger()
	cfg.Storage = func(o *bitcask.Options) { o.MergeCheckInterval = time.Hour }
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var served net.Listener = ln
	if wrap != nil {
		served = wrap(ln)
	}
	done := make(chan struct{})
	go func() { srv.Serve(served); close(done) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	c := dialRaw(b, ln.Addr().String())
	defer c.close()
	if got := c.do(append([]string{"SHARD.ASSIGN", "all", "0", "1", "0"}, assign...)...); got != ok {
		b.Fatalf("SHARD.ASSIGN: %q", got)
	}
	return ln.Addr().String()
}
