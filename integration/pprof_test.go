package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPprof: both servers serve net/http/pprof on the loopback address
// -pprof names, and a CPU profile can be taken from each under load.
func TestPprof(t *testing.T) {
	ports := freePorts(t, 2)
	nodeAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	c := StartCluster(t, Options{Shards: 1, NodeArgs: []string{"-pprof", nodeAddr}, ProxyArgs: []string{"-pprof", proxyAddr}})
	rdb := c.Client()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // load, so the profiles have something in them
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rdb.Set(t.Context(), fmt.Sprintf("k%d", i%100), "v", 0)
		}
	}()
	defer func() { close(stop); <-done }()
	client := &http.Client{Timeout: 30 * time.Second}
	for _, addr := range []string{nodeAddr, proxyAddr} {
		resp, err := client.Get("http://" + addr + "/debug/pprof/")
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
			t.Fatalf("%s/debug/pprof/: %d %.200q", addr, resp.StatusCode, body)
		}
		resp, err = client.Get("http://" + addr + "/debug/pprof/profile?seconds=1")
		if err != nil {
			t.Fatalf("%s profile: %v", addr, err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		// A profile is gzip-compressed protobuf.
		if resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
			t.Fatalf("%s profile: %d, %d bytes", addr, resp.StatusCode, len(body))
		}
	}
}
