package shardnode

import (
	"testing"
	"time"
)

// TestProxiesAdmittedPastMaxClients: ordinary connections fill maxclients;
// a proxy's handshake on a connection past it is admitted on probation and
// its connection then counts against nothing, while any other client past
// maxclients gets Redis's error, and the reserve and the probation time
// are bounded. In each serve mode.
func TestProxiesAdmittedPastMaxClients(t *testing.T) {
	defer func(d time.Duration) { probationTimeout = d }(probationTimeout)
	probationTimeout = 300 * time.Millisecond
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			n := startNodeOn(t, "", func(c *Config) { c.MaxClients, c.ProxyReserve, c.EventLoops = 2, 2, m.loops }, m.wrap)
			n.assignAll()
			a, b := n.raw(), n.raw()
			a.do("PING")
			b.do("PING")
			// A client past maxclients: refused at its first command.
			c := n.raw()
			if got := c.do("PING"); got != er(errMaxClients) {
				t.Fatalf("third client's PING: %q", got)
			}
			if got := c.readAll(2 * time.Second); got != "" {
				t.Fatalf("after the refusal: %q, want the connection closed", got)
			}
			// A proxy's handshake is admitted, and the connection serves.
			p := n.raw()
			if got := p.do("HELLO", "3"); got[0] != '%' {
				t.Fatalf("proxy's HELLO 3: %q", got)
			}
			if got := p.do("SHARD.ASSIGN", "all", "0", "1", "0"); got != ok {
				t.Fatalf("proxy's SHARD.ASSIGN: %q", got)
			}
			if got := p.do("SET", "k", "v"); got != ok {
				t.Fatalf("proxy's SET: %q", got)
			}
			// The proxy's connection does not count: an ordinary one that
			// leaves makes room for another ordinary one.
			a.close()
			waitFor(t, func() bool { return n.srv.admitted.ordinary.Load() == 1 }, "a's slot freed")
			d := n.raw()
			if got := d.do("PING"); got != "+PONG\r\n" {
				t.Fatalf("ordinary client after one left: %q", got)
			}
			// Probation ends: a silent connection past maxclients is closed.
			idle := n.raw()
			start := time.Now()
			if got := idle.readAll(5 * time.Second); got != "" || time.Since(start) > 4*time.Second {
				t.Fatalf("idle connection on probation: %q after %v", got, time.Since(start))
			}
			// The reserve is bounded: past it, refused at accept.
			waitFor(t, func() bool { return n.srv.admitted.probation.Load() == 0 }, "probation slots freed")
			r1, r2 := n.raw(), n.raw()
			r1.send("AUTH", "x")
			r2.send("AUTH", "x")
			r1.next()
			r2.next()
			third := n.raw()
			if got := third.readAll(2 * time.Second); got != er(errMaxClients) {
				t.Fatalf("past the reserve: %q", got)
			}
			if got := p.do("GET", "k"); got != bs("v") {
				t.Fatalf("proxy's GET: %q", got)
			}
		})
	}
}
