package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
)

// needRedisCli returns redis-cli's path, or skips the test (.ci/run
// installs redis-tools).
func needRedisCli(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed")
	}
	return p
}

// openPTY returns a new pseudo-terminal's master and slave: redis-cli
// --stat writes its lines through stdio, which a pipe buffers until
// redis-cli exits (and --stat never exits).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	return m, s
}

// statLine is one data line of redis-cli --stat.
type statLine struct {
	keys             int64
	mem              float64 // bytes
	clients, blocked int64
	requests, delta  int64
	connections      int64
}

var statRe = regexp.MustCompile(`^(\d+)\s+(-?[\d.]+)([BKMG])\s+(\d+)\s+(\d+)\s+(\d+) \(\+(-?\d+)\)\s+(\d+)`)

// redisCliStat runs redis-cli --stat against addr until it printed n data
// lines, and returns them parsed. A line it cannot parse fails the test:
// that is what the --9223372036854775808B of a missing field looked like.
func redisCliStat(t *testing.T, addr string, n int) []statLine {
	t.Helper()
	cli := needRedisCli(t)
	host, port, _ := net.SplitHostPort(addr)
	master, slave := openPTY(t)
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "--stat", "-i", "0.2")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			select {
			case lines <- strings.TrimRight(sc.Text(), "\r "):
			case <-ctx.Done():
				return
			}
		}
	}()
	var out []statLine
	var seen []string
	for len(out) < n {
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
		case <-ctx.Done():
			t.Fatalf("redis-cli --stat: %d lines in 30 s: %q", len(out), seen)
		}
		if !ok {
			t.Fatalf("redis-cli --stat ended: %q", seen)
		}
		seen = append(seen, l)
		if strings.HasPrefix(l, "-------") || strings.HasPrefix(l, "keys ") {
			continue
		}
		m := statRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("redis-cli --stat printed %q", l)
		}
		var s statLine
		s.keys, _ = strconv.ParseInt(m[1], 10, 64)
		s.mem, _ = strconv.ParseFloat(m[2], 64)
		s.mem *= map[string]float64{"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m[3]]
		s.clients, _ = strconv.ParseInt(m[4], 10, 64)
		s.blocked, _ = strconv.ParseInt(m[5], 10, 64)
		s.requests, _ = strconv.ParseInt(m[6], 10, 64)
		s.delta, _ = strconv.ParseInt(m[7], 10, 64)
		s.connections, _ = strconv.ParseInt(m[8], 10, 64)
		out = append(out, s)
	}
	return out
}

// TestRedisCliStatAndMemkeys: redis-cli --stat and --memkeys against the
// proxy print sane numbers: the keys written, memory in a plausible range,
// the requests growing by what redis-cli itself sends, and MEMORY USAGE
// sizes that add up to what the keys hold. With a shard down --stat goes on
// with the live shard's keys.
func TestRedisCliStatAndMemkeys(t *testing.T) {
	needRedisCli(t)
	c := StartCluster(t, Options{Shards: 2})
	rdb := c.Client()
	ctx := context.Background()
	const keys = 300
	var wantBytes, biggest int64
	for i := 0; i < keys; i++ {
		k, v := fmt.Sprintf("key:%d", i), strings.Repeat("v", i)
		if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		// MEMORY USAGE: key directory entry and record header (88
		// bytes), the key twice, the value.
		sz := int64(88 + 2*len(k) + len(v))
		wantBytes += sz
		biggest = max(biggest, sz)
	}

	st := redisCliStat(t, c.ProxyAddr, 4)
	for i, s := range st {
		if s.keys != keys || s.mem < 64<<10 || s.mem > 1<<30 || s.clients < 1 || s.blocked != 0 || s.connections < 1 {
			t.Errorf("--stat line %d: %+v", i, s)
		}
		// Each line is one INFO: requests grow by it.
		if i > 0 && (s.delta < 1 || s.requests != st[i-1].requests+s.delta) {
			t.Errorf("--stat line %d: requests %d (+%d) after %d", i, s.requests, s.delta, st[i-1].requests)
		}
	}
	t.Logf("--stat: %+v", st)

	host, port, _ := net.SplitHostPort(c.ProxyAddr)
	mk, err := exec.Command(needRedisCli(t), "-h", host, "-p", port, "--memkeys").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --memkeys: %v\n%s", err, mk)
	}
	text := string(mk)
	if m := regexp.MustCompile(`Sampled (\d+) keys in the keyspace`).FindStringSubmatch(text); m == nil || m[1] != strconv.Itoa(keys) {
		t.Errorf("--memkeys sampled: %v\n%s", m, text)
	}
	m := regexp.MustCompile(`(\d+) strings with (\d+) bytes`).FindStringSubmatch(text)
	if m == nil || m[1] != strconv.Itoa(keys) || m[2] != strconv.FormatInt(wantBytes, 10) {
		t.Errorf("--memkeys strings: %v, want %d keys with %d bytes\n%s", m, keys, wantBytes, text)
	}
	if m := regexp.MustCompile(`Biggest string found '"?key:299"?' has (\d+) bytes`).FindStringSubmatch(text); m == nil || m[1] != strconv.FormatInt(biggest, 10) {
		t.Errorf("--memkeys biggest: %v, want key:299 with %d bytes\n%s", m, biggest, text)
	}
	if strings.Contains(text, "Warning") {
		t.Errorf("--memkeys warned:\n%s", text)
	}

	// A shard down: --stat counts the live shard's keys.
	live := int64(0)
	for i := 0; i < keys; i++ {
		if c.ShardOf(fmt.Sprintf("key:%d", i)) == 0 {
			live++
		}
	}
	c.Nodes[1].Kill()
	for i, s := range redisCliStat(t, c.ProxyAddr, 2) {
		if s.keys != live || s.mem <= 0 {
			t.Errorf("with s1 down, --stat line %d: %+v, want %d keys", i, s, live)
		}
	}
	info, err := rdb.Info(ctx, "keyspace").Result()
	if err != nil || !strings.Contains(info, "unreachable_shards:s1") {
		t.Errorf("INFO keyspace with s1 down: %q %v", info, err)
	}
}

// scrape fetches addr's /metrics and parses it with the client library's
// parser, holding names to Prometheus's legacy (strict) character set.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v", addr, err)
	}
	return fams
}

// metric returns the value of the family's metric whose labels include
// want (name=value pairs); a histogram's count, a summary's count.
func metric(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("no metric %s", name)
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		case dto.MetricType_SUMMARY:
			return float64(m.GetSummary().GetSampleCount())
		}
	}
	t.Errorf("no metric %s%v", name, want)
	return -1
}

// TestMetricsScrape: -metrics-addr on the node and the proxy serves
// metrics that parse, with the documented names and values that match
// the traffic.
func TestMetricsScrape(t *testing.T) {
	ports := freePorts(t, 2)
	nodeM := fmt.Sprintf("127.0.0.1:%d", ports[0])
	proxyM := fmt.Sprintf("127.0.0.1:%d", ports[1])
	c := StartCluster(t, Options{Shards: 1, AppendFsync: "always",
		NodeArgs: []string{"-metrics-addr", nodeM}, ProxyArgs: []string{"-metrics-addr", proxyM}})
	rdb := c.Client()
	ctx := context.Background()
	const n = 200
	var live int64
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("idx:k%d", i)
		if err := rdb.Set(ctx, k, "value", 0).Err(); err != nil {
			t.Fatal(err)
		}
		live += int64(len(k) + len("value"))
	}
	_ = rdb.Do(ctx, "INCR", "idx:k0").Err() // an error reply

	p := scrape(t, proxyM)
	if v := metric(t, p, "shardkv_proxy_commands_total", "cmd", "set"); v != n {
		t.Errorf("proxy set commands %v, want %d", v, n)
	}
	if v := metric(t, p, "shardkv_proxy_command_duration_seconds", "cmd", "set"); v != n {
		t.Errorf("proxy set latencies %v, want %d", v, n)
	}
	if v := metric(t, p, "shardkv_proxy_command_errors_total", "cmd", "incr"); v != 1 {
		t.Errorf("proxy incr errors %v, want 1", v)
	}
	if v := metric(t, p, "shardkv_proxy_shard_up", "shard", "s0"); v != 1 {
		t.Errorf("shard_up %v", v)
	}
	if v := metric(t, p, "shardkv_proxy_backend_duration_seconds", "shard", "s0"); v < 1 {
		t.Errorf("backend round trips sampled: %v", v)
	}
	if v := metric(t, p, "shardkv_proxy_connected_clients"); v < 1 {
		t.Errorf("connected clients %v", v)
	}
	if v := metric(t, p, "shardkv_proxy_net_output_bytes_total"); v < n*5 {
		t.Errorf("net output bytes %v", v)
	}
	if v := metric(t, p, "process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes %v", v)
	}

	nm := scrape(t, nodeM)
	for name, want := range map[string]float64{
		"shardkv_node_keys":       n,
		"shardkv_node_live_bytes": float64(live),
		"shardkv_node_data_files": 1,
	} {
		if v := metric(t, nm, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := metric(t, nm, "shardkv_node_commands_total", "cmd", "set"); v != n {
		t.Errorf("node set commands %v, want %d", v, n)
	}
	if v := metric(t, nm, "shardkv_node_index_keys", "index", "idx"); v != n {
		t.Errorf("node keys of index idx %v, want %d", v, n)
	}
	// appendfsync always: a group-commit fsync per write at least shared.
	if v := metric(t, nm, "shardkv_node_fsync_duration_seconds"); v < 1 || v > n+10 {
		t.Errorf("fsync rounds %v", v)
	}
	for _, name := range []string{"shardkv_node_dead_bytes", "shardkv_node_disk_bytes", "shardkv_node_merges_total",
		"shardkv_node_recovery_truncated_records", "shardkv_node_recovery_skipped_records", "shardkv_node_fsyncs_total",
		"shardkv_node_connected_clients", "go_goroutines"} {
		if v := metric(t, nm, name); v < 0 {
			t.Errorf("%s = %v", name, v)
		}
	}
	if v := metric(t, nm, "shardkv_node_shard_info", "shard", "s0", "start", "0", "end", "1"); v != 1 {
		t.Errorf("shard_info %v", v)
	}
}
