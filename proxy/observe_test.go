package proxy

import (
	"bufio"
	"context"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// infoField returns field's value in INFO text, and whether it is there.
func infoField(info, field string) (string, bool) {
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return v, true
		}
	}
	return "", false
}

// TestInfoSumsAndPartial: the proxy's INFO has Redis's Memory,
// Persistence and Stats fields, used_memory summed over the nodes with the
// proxy's own beside it, and with a shard down the sums name the shards
// they miss while db0's line keeps Redis's shape.
func TestInfoSumsAndPartial(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2, timeout: time.Second})
	rdb := c.client(2)
	ctx := context.Background()
	for _, k := range append(c.keysOn(0, 5, "a"), c.keysOn(1, 7, "b")...) {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	info, err := rdb.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	nodeMem := int64(0)
	for _, n := range c.nodes {
		ni, err := n.client(t).Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		v, _ := infoField(ni, "used_memory")
		x, _ := strconv.ParseInt(v, 10, 64)
		nodeMem += x
	}
	used, _ := infoField(info, "used_memory")
	u, _ := strconv.ParseInt(used, 10, 64)
	own, _ := infoField(info, "proxy_used_memory")
	o, _ := strconv.ParseInt(own, 10, 64)
	// The nodes' heaps move between the two INFOs; the sum is within a
	// factor of the nodes' own figures.
	if u <= 0 || o <= 0 || u < nodeMem/3 || u > nodeMem*3 {
		t.Errorf("used_memory %d, proxy_used_memory %d, nodes' sum %d", u, o, nodeMem)
	}
	for _, f := range []string{"used_memory_human", "used_memory_rss", "used_memory_peak", "maxmemory",
		"aof_enabled", "rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_last_write_status",
		"instantaneous_ops_per_sec", "total_net_output_bytes", "keyspace_hits", "blocked_clients"} {
		if _, ok := infoField(info, f); !ok {
			t.Errorf("INFO lacks %s", f)
		}
	}
	if v, _ := infoField(info, "db0"); v != "keys=12,expires=0,avg_ttl=0" {
		t.Errorf("db0:%s", v)
	}
	if _, ok := infoField(info, "unreachable_shards"); ok {
		t.Errorf("unreachable_shards with every shard up:\n%s", info)
	}

	c.nodes[1].stop()
	info, err = rdb.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := infoField(info, "db0"); v != "keys=5,expires=0,avg_ttl=0" {
		t.Errorf("with s1 down, db0:%s", v)
	}
	ks := info[strings.Index(info, "# Keyspace"):]
	if v, _ := infoField(ks, "unreachable_shards"); v != "s1" {
		t.Errorf("with s1 down, Keyspace's unreachable_shards %q:\n%s", v, ks)
	}
	mem := info[strings.Index(info, "# Memory"):strings.Index(info, "# Persistence")]
	if v, _ := infoField(mem, "unreachable_shards"); v != "s1" {
		t.Errorf("with s1 down, Memory's unreachable_shards %q", v)
	}
	if v, _ := infoField(info, "shards_up"); v != "1" {
		t.Errorf("shards_up:%s", v)
	}
}

// monitorConn sends MONITOR on a raw connection and returns a reader of
// its stream, after +OK.
func monitorConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := br.ReadString('\n'); err != nil || l != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", l, err)
	}
	return nc, br
}

// TestMonitor: a monitor sees the commands of other clients in Redis's
// format, AUTH redacted, admin commands and refused commands left out; its
// own data commands are refused as Redis refuses them; RESET ends the
// stream.
func TestMonitor(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	mon, br := monitorConn(t, c.addr)
	cl, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cr := bufio.NewReader(cl)
	send := func(cmd string) {
		if _, err := cl.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := cr.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	send("*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$4\r\nx\ny\x01\r\n")
	send("AUTH secret\r\n")
	send("CONFIG RESETSTAT\r\n")
	send("GET\r\n")
	send("NOSUCH x\r\n")
	send("GET k\r\n")
	line := regexp.MustCompile(`^\+\d{10}\.\d{6} \[0 127\.0\.0\.1:\d+\] (.*)\r\n$`)
	var got []string
	for len(got) < 3 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("monitor line %q", l)
		}
		got = append(got, m[1])
	}
	want := []string{`"SET" "a b" "x\ny\x01"`, `"AUTH" "(redacted)"`, `"GET" "k"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("monitor saw\n %q\nwant\n %q", got, want)
	}
	// The monitor's own commands: data refused, connection commands served.
	mon.Write([]byte("GET k\r\nPING\r\n"))
	var own []string
	for len(own) < 3 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, l)
	}
	// The line for its own PING and the replies come in either order.
	sort.Strings(own)
	if !strings.HasSuffix(own[0], `"PING"`+"\r\n") || own[1] != "+PONG\r\n" || own[2] != "-ERR Replica can't interact with the keyspace\r\n" {
		t.Errorf("monitor's own GET and PING: %q", own)
	}
	mon.Write([]byte("RESET\r\n"))
	if l, _ := br.ReadString('\n'); l != "+RESET\r\n" {
		t.Errorf("RESET: %q", l)
	}
	send("GET k\r\n")
	mon.Write([]byte("PING\r\n"))
	if l, _ := br.ReadString('\n'); l != "+PONG\r\n" {
		t.Errorf("after RESET the monitor still streams: %q", l)
	}
}

// TestMonitorSlowDropped: a monitor that does not read is dropped once
// monitorMaxPending bytes wait for it, and the proxy's clients keep being
// served.
func TestMonitorSlowDropped(t *testing.T) {
	old := monitorMaxPending
	monitorMaxPending = 1 << 20
	defer func() { monitorMaxPending = old }()
	c := startCluster(t, clusterOpts{nodes: 1})
	mon, _ := monitorConn(t, c.addr)
	rdb := c.client(2)
	ctx := context.Background()
	big := strings.Repeat("x", 64<<10)
	// The monitor's socket buffers take a few MB; then its lines pile up.
	deadline := time.Now().Add(30 * time.Second)
	for c.monitorCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the monitor that does not read was never dropped")
		}
		if err := rdb.Set(ctx, "k", big, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	mon.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<20)
	for {
		if _, err := mon.Read(buf); err != nil {
			break // the proxy closed it
		}
	}
}

func (c *cluster) monitorCount() int {
	if p := c.srv.monitors.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// TestProxySlowlog: the proxy's slow log times the whole request, the
// node's round trip included, and logs the proxy's client.
func TestProxySlowlog(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	rdb := c.client(3)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Get(ctx, "somekey").Err(); err == nil {
		t.Fatal("GET of a missing key: no redis.Nil")
	}
	e, err := rdb.SlowLogGet(ctx, 1).Result()
	if err != nil || len(e) != 1 {
		t.Fatalf("SLOWLOG GET 1: %v %v", e, err)
	}
	if strings.Join(e[0].Args, " ") != "get somekey" || e[0].Duration <= 0 || e[0].ClientAddr == "" {
		t.Errorf("entry %+v", e[0])
	}
	info, _ := rdb.Info(ctx, "commandstats").Result()
	if !strings.Contains(info, "cmdstat_get:calls=1,") {
		t.Errorf("INFO commandstats:\n%s", info)
	}
}

func TestMonitorLineFormat(t *testing.T) {
	got := string(appendMonitorLine(nil, 1339518083107412, 0, "127.0.0.1:60866", [][]byte{[]byte("keys"), []byte("*\t\"\\\xff")}))
	want := "+1339518083.107412 [0 127.0.0.1:60866] \"keys\" \"*\\t\\\"\\\\\\xff\"\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := string(appendMonitorLine(nil, 1339518083000042, 0, "a", [][]byte{[]byte("ping")})); got != "+1339518083.000042 [0 a] \"ping\"\r\n" {
		t.Errorf("leading zeros of the microseconds: %q", got)
	}
}
