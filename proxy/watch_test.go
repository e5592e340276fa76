package proxy

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clientsField reads a field of the Clients section of a node's INFO.
func clientsField(t *testing.T, node *redis.Client, field string) int {
	t.Helper()
	info, err := node.Info(context.Background(), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("INFO has no %s: %q", field, info)
	return 0
}

// TestWatchSharesConnections: watching clients take no connection to the
// node of their own (the node keeps their keys under their ids on the
// proxy's shared connections), each still sees changes to its own keys only,
// and the node forgets the keys of clients that leave.
func TestWatchSharesConnections(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	node := c.nodes[0].client(t)
	const watchers = 300
	before := clientsField(t, node, "connected_clients")
	var ws []*rawConn
	for i := 0; i < watchers; i++ {
		w := dialRaw(t, c.addr)
		if got := w.do("WATCH", "k"+strconv.Itoa(i)); got != "+OK\r\n" {
			t.Fatalf("watcher %d: WATCH: %q", i, got)
		}
		ws = append(ws, w)
	}
	if n := clientsField(t, node, "connected_clients"); n > before {
		t.Fatalf("the node has %d connections with %d watchers, %d before", n, watchers, before)
	}
	if n := clientsField(t, node, "total_watched_keys"); n != watchers {
		t.Fatalf("the node holds %d watched keys, want %d", n, watchers)
	}
	other := dialRaw(t, c.addr)
	other.do("SET", "k7", "1")
	other.do("DEL", "k7")
	for i, w := range ws[:20] {
		w.do("MULTI")
		w.do("SET", "k"+strconv.Itoa(i), "mine")
		got := w.do("EXEC")
		if want := "*1\r\n+OK\r\n"; i == 7 {
			want = "*-1\r\n"
			if got != want {
				t.Fatalf("watcher 7 after its key was set and deleted: %q", got)
			}
		} else if got != want {
			t.Fatalf("watcher %d: EXEC %q", i, got)
		}
	}
	for _, w := range ws {
		w.nc.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for clientsField(t, node, "total_watched_keys") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the node still holds %d watched keys after the watchers left", clientsField(t, node, "total_watched_keys"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchEnds: UNWATCH, DISCARD, RESET and an aborted EXEC make the node
// forget the client's keys; a protocol switch between WATCH and EXEC, and a
// node restart (the shared connection that held the keys is gone), make
// EXEC abort, and the client's commands keep working.
func TestWatchEnds(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 1})
	node := c.nodes[0].client(t)
	w, other := dialRaw(t, c.addr), dialRaw(t, c.addr)
	watched := func() int { return clientsField(t, node, "total_watched_keys") }
	for _, end := range [][]string{{"UNWATCH"}, {"MULTI", "DISCARD"}, {"RESET"}, {"MULTI", "GET", "EXEC"}} {
		w.do("WATCH", "a", "b")
		if n := watched(); n != 2 {
			t.Fatalf("watching a and b: the node holds %d keys", n)
		}
		for _, cmd := range end {
			w.do(cmd)
		}
		if n := watched(); n != 0 {
			t.Fatalf("after %v: the node holds %d keys", end, n)
		}
	}
	w.do("WATCH", "a")
	w.do("HELLO", "3")
	w.do("MULTI")
	w.do("SET", "a", "1")
	if got := w.do("EXEC"); got != "_\r\n" {
		t.Fatalf("EXEC after a protocol switch: %q", got)
	}
	if n := watched(); n != 0 {
		t.Fatalf("after the protocol switch: the node holds %d keys", n)
	}
	w.do("HELLO", "2")
	w.do("WATCH", "a")
	c.nodes[0].stop()
	c.nodes[0].start(t)
	c.waitReachable()
	deadline := time.Now().Add(10 * time.Second)
	for other.do("SET", "x", "1") != "+OK\r\n" {
		if time.Now().After(deadline) {
			t.Fatal("the proxy does not reach the restarted node")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := w.do("GET", "x"); got != "$1\r\n1\r\n" {
		t.Fatalf("GET while watching, after the node restarted: %q", got)
	}
	w.do("MULTI")
	w.do("SET", "a", "1")
	if got := w.do("EXEC"); got != "*-1\r\n" {
		t.Fatalf("EXEC after the node restarted: %q", got)
	}
	w.do("WATCH", "a")
	w.do("MULTI")
	w.do("SET", "a", "2")
	if got := w.do("EXEC"); got != "*1\r\n+OK\r\n" {
		t.Fatalf("the next transaction: %q", got)
	}
}
