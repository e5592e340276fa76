package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
)

// `shardkv cluster --metrics-addr HOST:PORT` serves the proxy's metrics on
// PORT and the nodes', in map order, on the ports after it; each scrape
// parses with the Prometheus client library's text parser.
func TestClusterMetricsAddr(t *testing.T) {
	cc := newClusterCmd(t, 2)
	ports := consecutivePorts(t, 3)
	base := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cc.Start("--metrics-addr", base)
	want := fmt.Sprintf("Prometheus metrics: proxy http://127.0.0.1:%d/metrics, s0 http://127.0.0.1:%d/metrics, s1 http://127.0.0.1:%d/metrics",
		ports[0], ports[1], ports[2])
	if !strings.Contains(cc.out.String(), want) {
		t.Fatalf("stdout lacks %q:\n%s", want, cc.out.String())
	}
	proxy := scrape(t, base)
	if up := metric(t, proxy, "shardkv_proxy_shard_up", "shard", "s1"); up != 1 {
		t.Errorf("shardkv_proxy_shard_up{shard=s1} = %v, want 1", up)
	}
	node := scrape(t, fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if node["shardkv_node_connected_clients"] == nil {
		t.Errorf("node s1's scrape lacks shardkv_node_connected_clients: %v", keys(node))
	}
	if err := cc.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("cluster exit: %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// consecutivePorts returns n consecutive ports that were free on
// 127.0.0.1 a moment ago and that freePorts hands out to no one else.
func consecutivePorts(t testing.TB, n int) []int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
next:
	for tries := 0; tries < 1000; tries++ {
		base := 20000 + rand.IntN(12000-n)
		for p := base; p < base+n; p++ {
			if portsUsed[p] {
				continue next
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue next
			}
			l.Close()
		}
		out := make([]int, n)
		for i := range out {
			out[i] = base + i
			portsUsed[base+i] = true
		}
		return out
	}
	t.Fatal("no free consecutive ports")
	return nil
}
