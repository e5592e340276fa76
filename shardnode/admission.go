package shardnode

import (
	"sync/atomic"
	"time"
)

// Admission: the node's clients are proxies, and a node that refuses its
// proxies' connections refuses every client of its shard. As Redis, the
// node admits MaxClients connections; unlike Redis, a proxy's connections
// do not count against that limit, and are admitted even when other
// connections fill it:
//
//   - A connection is ordinary when accepted and counts against MaxClients.
//   - One that completes a proxy's handshake (SHARD.ASSIGN accepted, after
//     AUTH and HELLO) is a proxy's and leaves the ordinary count: whoever
//     else fills MaxClients, proxies keep their connections and any number
//     of proxies connect (each keeps 2 x -conns-per-node connections to a
//     node; a WATCH takes none of its own, proxy/tx.go). Proxies' connections
//     have a limit of their own, MaxClients again, which bounds what a
//     client holding the node's password can open by posing as one.
//   - A connection that arrives while ordinary ones fill MaxClients is
//     admitted on probation, up to ProxyReserve at a time, for
//     probationTimeout: it may send AUTH, HELLO and SHARD.ASSIGN, and becomes
//     a proxy's when SHARD.ASSIGN is accepted. Any other command gets Redis's
//     "max number of clients reached" and the connection is closed, as
//     Redis closes it at accept; so does a probation that runs out. Past the
//     reserve a connection is refused at accept, as in Redis.

// probationTimeout is how long a connection admitted past MaxClients has to
// complete a proxy's handshake. The proxy's own handshake timeout is its
// -timeout (5 s by default).
var probationTimeout = 10 * time.Second

// connClass is how a connection counts against the limits.
type connClass int32

const (
	classOrdinary  connClass = iota // counts against MaxClients
	classProbation                  // admitted past MaxClients for a proxy's handshake
	classProxy                      // a proxy's: counts against the proxies' own limit
)

// admissions counts the connections of each class.
type admissions struct {
	ordinary, probation, proxy atomic.Int64
}

// admit picks the class of a new connection, or reports that it must be
// refused.
func (s *Server) admit() (connClass, bool) {
	a := &s.admitted
	if a.ordinary.Add(1) <= int64(s.cfg.MaxClients) {
		return classOrdinary, true
	}
	a.ordinary.Add(-1)
	if a.probation.Add(1) <= int64(s.cfg.ProxyReserve) {
		return classProbation, true
	}
	a.probation.Add(-1)
	return 0, false
}

// startProbation bounds the handshake time of a connection on probation:
// a goroutine's connection gets a read deadline, which ends its read loop;
// an event loop's is closed by its loop, which owns the descriptor.
func (c *client) startProbation() {
	if connClass(c.class.Load()) != classProbation {
		return
	}
	if c.loop == nil {
		if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(probationTimeout))
		}
		return
	}
	l := c.loop
	c.probation = time.AfterFunc(probationTimeout, func() { l.expire(c) })
}

// becomeProxy moves a connection whose SHARD.ASSIGN was accepted into the
// proxies' class, when that has room.
func (c *client) becomeProxy() {
	s := c.srv
	from := connClass(c.class.Load())
	if from == classProxy {
		return
	}
	if s.admitted.proxy.Add(1) > int64(s.cfg.MaxClients) {
		s.admitted.proxy.Add(-1)
		return
	}
	c.class.Store(int32(classProxy))
	switch from {
	case classOrdinary:
		s.admitted.ordinary.Add(-1)
	case classProbation:
		s.admitted.probation.Add(-1)
		if c.probation != nil {
			c.probation.Stop()
		} else if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
	}
}

// release takes a closed connection out of its class's count.
func (c *client) release() {
	if c.probation != nil {
		c.probation.Stop()
	}
	c.srv.releaseClass(connClass(c.class.Load()))
}

// releaseClass takes a connection of class k out of the count: it closed,
// or was never served.
func (s *Server) releaseClass(k connClass) {
	a := &s.admitted
	switch k {
	case classOrdinary:
		a.ordinary.Add(-1)
	case classProbation:
		a.probation.Add(-1)
	case classProxy:
		a.proxy.Add(-1)
	}
}

// onProbation reports whether the connection may only send a proxy's
// handshake.
func (c *client) onProbation() bool { return connClass(c.class.Load()) == classProbation }

// errMaxClients is Redis's reply to a connection past maxclients.
const errMaxClients = "ERR max number of clients reached"
