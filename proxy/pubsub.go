package proxy

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/sockio"
	"github.com/shardkv/shardkv/resp"
)

// Pub/Sub through the proxy (docs/INTERNALS.md "Pub/Sub").
//
// A channel lives on the node that owns its name as a key; a pattern on
// every node, each matching what is published there. The proxy keeps one
// subscriber connection (a link) per node, on which it listens on behalf
// of all its clients: SHARD.PUBSUB SET kind weight name tells the node how
// many of the proxy's clients listen to name, so that the node's PUBLISH
// and PUBSUB NUMSUB count clients, not proxies. The link's reader fans each
// message the node pushes out to the local clients listening to it.
//
// A client that subscribes gets a stream, like a monitor's: everything the
// proxy sends it from then on (replies and messages) is appended to the
// stream's pending bytes and written by the stream's goroutine, so a
// message never splits a reply and never waits for the client's next
// command. The pending bytes are bounded by client-output-buffer-limit's
// pubsub class (Redis's 32mb 8mb 60 by default): over it the client is
// closed, as Redis closes it, and the proxy's memory is never the queue of
// a subscriber that does not read.
//
// A (un)subscribe is answered once the node acknowledged the new weight:
// a PUBLISH sent anywhere after the client read its confirmation counts and
// reaches it. The confirmation is pushed under the hub's lock, which the
// links' readers take to fan a message out, so no message of a channel
// comes before its subscribe confirmation.

const (
	psChannel = iota
	psPattern
	psShard
	psKinds
)

var psKindArg = [psKinds]string{"channel", "pattern", "shard"}

var psNames = [psKinds][3]string{
	psChannel: {"subscribe", "unsubscribe", "message"},
	psPattern: {"psubscribe", "punsubscribe", "pmessage"},
	psShard:   {"ssubscribe", "sunsubscribe", "smessage"},
}

// psHub is the proxy's subscriptions.
type psHub struct {
	s  *Server
	mu sync.Mutex
	// weight is what the node was told for each name (the clients that
	// subscribed, counted before the node acknowledged); subs are the
	// clients messages go to (added once acknowledged).
	weight [psKinds]map[string]int
	subs   [psKinds]map[string]map[*client]struct{}
	links  map[string]*psLink // by node address
	closed bool               // Shutdown
}

func newPsHub(s *Server) *psHub {
	h := &psHub{s: s, links: make(map[string]*psLink)}
	for k := range h.weight {
		h.weight[k] = make(map[string]int)
		h.subs[k] = make(map[string]map[*client]struct{})
	}
	return h
}

// counts is INFO's pubsub_channels, pubsub_patterns and
// pubsubshard_channels: the names this proxy's clients listen to.
func (h *psHub) counts() (channels, patterns, shard int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[psChannel]), len(h.subs[psPattern]), len(h.subs[psShard])
}

// psLink is the proxy's subscriber connection to one node.
type psLink struct {
	h    *psHub
	sh   *shard
	nc   net.Conn
	mu   sync.Mutex // writes and acks
	acks []chan error
	err  error // the link failed
}

var errLinkDown = errors.New("the node's subscriber connection failed")

// link returns the subscriber connection to sh's node, dialing it; h.mu is
// held.
func (h *psHub) link(sh *shard) (*psLink, error) {
	if h.closed {
		return nil, errLinkDown
	}
	if l := h.links[sh.addr]; l != nil {
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err == nil {
			return l, nil
		}
		delete(h.links, sh.addr)
	}
	timeout := h.s.cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	nc, err := net.DialTimeout("tcp", sh.addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	rr := resp.NewReplyReader(nc, 64<<10)
	do := func(args ...string) (resp.Value, error) {
		if _, err := nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
			return resp.Value{}, err
		}
		raw, err := rr.Next()
		if err != nil {
			return resp.Value{}, err
		}
		v, _, err := resp.Parse(raw)
		return v, err
	}
	if err := h.s.assignHandshake(sh, resp.RESP2)(do); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	l := &psLink{h: h, sh: sh, nc: nc}
	h.links[sh.addr] = l
	go l.read(rr)
	// A link dialed again after a failure: the node is told the weights
	// it lost with the old one (their acknowledgements are not waited for).
	tbl := h.s.table.Load()
	for k := range h.weight {
		for name, w := range h.weight[k] {
			if k == psPattern || tbl.locate([]byte(name)) == sh {
				l.set(k, name, w)
			}
		}
	}
	return l, nil
}

// redial dials sh's link again once a second after it failed, while the
// proxy has subscriptions and runs.
func (h *psHub) redial(sh *shard) {
	for !h.s.shutting.Load() {
		time.Sleep(time.Second)
		h.mu.Lock()
		if h.closed || h.links[sh.addr] != nil && h.links[sh.addr].alive() {
			h.mu.Unlock()
			return
		}
		_, err := h.link(sh)
		h.mu.Unlock()
		if err == nil {
			h.s.log.Info("Pub/Sub connection to the node restored", "node", sh.addr)
			return
		}
	}
}

func (l *psLink) alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil
}

// close closes the subscriber connections (Shutdown).
func (h *psHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for addr, l := range h.links {
		l.mu.Lock()
		l.failLocked(errLinkDown)
		l.mu.Unlock()
		delete(h.links, addr)
	}
}

// set sends SHARD.PUBSUB SET and returns where its acknowledgement comes.
func (l *psLink) set(k int, name string, w int) chan error {
	return l.send(resp.AppendCommandStrings(nil, "SHARD.PUBSUB", "SET", psKindArg[k], strconv.Itoa(w), name))
}

// send writes cmd on the link and returns where its reply's
// acknowledgement comes.
func (l *psLink) send(cmd []byte) chan error {
	ack := make(chan error, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		ack <- l.err
		return ack
	}
	if _, err := l.nc.Write(cmd); err != nil {
		l.failLocked(err)
		ack <- err
		return ack
	}
	l.acks = append(l.acks, ack)
	return ack
}

func (l *psLink) failLocked(err error) {
	if l.err == nil {
		l.err = err
		l.nc.Close()
		for _, a := range l.acks {
			a <- err
		}
		l.acks = nil
	}
}

// read reads the node's pushes and acknowledgements until the link fails;
// then the link is dialed again (redial), and the node told the weights.
// The clients listening through it are told nothing: their subscriptions
// go on once the link is back.
func (l *psLink) read(rr *resp.ReplyReader) {
	// touched are the streams messages were fanned out to and not yet
	// written to: written once nothing more is buffered (before the
	// reader waits for the node), or after a batch of fanOutBatch.
	touched := make(map[*psStream]struct{})
	fanned := 0
	const fanOutBatch = 64
	for {
		if len(touched) > 0 && (rr.Buffered() == 0 || fanned >= fanOutBatch) {
			for st := range touched {
				st.flushFanned()
			}
			clear(touched)
			fanned = 0
		}
		raw, err := rr.Next()
		if err != nil {
			for st := range touched {
				st.flushFanned()
			}
			l.h.s.log.Warn("Pub/Sub connection to the node failed", "node", l.sh.addr, "error", err)
			l.mu.Lock()
			l.failLocked(errLinkDown)
			l.mu.Unlock()
			go l.h.redial(l.sh)
			return
		}
		m, isMsg, ackErr := parseLinkFrame(raw)
		if isMsg {
			if m.kind >= 0 {
				fanned++
				l.h.fan(touched, m.kind, m.name, m.pattern, m.ch, m.msg)
			}
			continue
		}
		l.mu.Lock()
		if len(l.acks) > 0 {
			l.acks[0] <- ackErr
			l.acks = slices.Delete(l.acks, 0, 1)
		}
		l.mu.Unlock()
	}
}

// linkMessage is a message a node pushed on a link: kind is -1 for a
// malformed one, which is dropped.
type linkMessage struct {
	kind                   int
	name, pattern, ch, msg []byte
}

// parseLinkFrame reads one frame of a link (RESP2): a message push
// ("message", "pmessage", "smessage" arrays) or else the reply that
// acknowledges the oldest command sent, with the node's error if it is one.
// The message's fields alias raw.
func parseLinkFrame(raw []byte) (m linkMessage, isMsg bool, ackErr error) {
	v, _, err := resp.Parse(raw)
	if err != nil {
		return linkMessage{}, false, err
	}
	if v.Type == '*' && len(v.Elems) >= 1 {
		bulks := len(v.Elems) <= 4
		for _, e := range v.Elems {
			bulks = bulks && e.Type == '$' && !e.Null
		}
		m.kind = -1
		switch string(v.Elems[0].Str) {
		case "message", "smessage":
			if bulks && len(v.Elems) == 3 {
				m.kind = psChannel
				if v.Elems[0].Str[0] == 's' {
					m.kind = psShard
				}
				m.name, m.ch, m.msg = v.Elems[1].Str, v.Elems[1].Str, v.Elems[2].Str
			}
			return m, true, nil
		case "pmessage":
			if bulks && len(v.Elems) == 4 {
				m.kind = psPattern
				m.name, m.pattern, m.ch, m.msg = v.Elems[1].Str, v.Elems[1].Str, v.Elems[2].Str, v.Elems[3].Str
			}
			return m, true, nil
		}
	}
	if v.IsError() {
		return linkMessage{}, false, errors.New(string(v.Str))
	}
	return linkMessage{}, false, nil
}

// fan hands a message to the clients listening to name (a channel, or the
// pattern that matched).
func (h *psHub) fan(touched map[*psStream]struct{}, k int, name, pattern, ch, msg []byte) {
	var enc [2][]byte
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[k][string(name)] {
		p := 0
		if c.psProto.Load() == int32(resp.RESP3) {
			p = 1
		}
		if enc[p] == nil {
			n := 3
			if k == psPattern {
				n = 4
			}
			b := resp.AppendPush(nil, resp.Proto(c.psProto.Load()), n)
			b = resp.AppendBulkString(b, psNames[k][2])
			if k == psPattern {
				b = resp.AppendBulk(b, pattern)
			}
			b = resp.AppendBulk(b, ch)
			enc[p] = resp.AppendBulk(b, msg)
		}
		if c.stream.pushShared(enc[p], false) {
			touched[c.stream] = struct{}{}
		}
	}
}

// setWeight changes name's weight by d and tells the nodes of name (its
// owner; every node for a pattern); h.mu is held. It returns the
// acknowledgements to wait for.
func (h *psHub) setWeight(tbl *table, k int, name string, d int) []chan error {
	w := h.weight[k][name] + d
	if w > 0 {
		h.weight[k][name] = w
	} else {
		delete(h.weight[k], name)
	}
	var shards []*shard
	if k == psPattern {
		shards = tbl.nodes
	} else {
		shards = []*shard{tbl.locate([]byte(name))}
	}
	acks := make([]chan error, 0, len(shards))
	for _, sh := range shards {
		l, err := h.link(sh)
		if err != nil {
			ack := make(chan error, 1)
			ack <- err
			acks = append(acks, ack)
			continue
		}
		acks = append(acks, l.set(k, name, w))
	}
	return acks
}

// psSync waits until every message the nodes pushed to the proxy before
// now reached the clients' streams: a PING answered on each link comes
// after them (a node writes a connection's pushes before the replies to
// what it reads next). A subscribed client's PING waits for it, so that,
// as with Redis, a message published before the PING is read before its
// reply.
func (h *psHub) psSync() {
	ping := resp.AppendCommandStrings(nil, "PING")
	h.mu.Lock()
	acks := make([]chan error, 0, len(h.links))
	for _, l := range h.links {
		acks = append(acks, l.send(ping))
	}
	h.mu.Unlock()
	_ = h.waitAcks(acks)
}

// waitAcks waits for the nodes' acknowledgements, for the proxy's
// -timeout at most: a node that does not answer does not hold its
// clients' (un)subscribes and PINGs for ever.
func (h *psHub) waitAcks(acks []chan error) error {
	timer := time.NewTimer(h.s.cfg.Timeout)
	defer timer.Stop()
	var first error
	for _, a := range acks {
		select {
		case err := <-a:
			if err != nil && first == nil {
				first = err
			}
		case <-timer.C:
			return errAckTimeout
		}
	}
	return first
}

var errAckTimeout = errors.New("the node did not acknowledge within the proxy's timeout")

// psState is a client's own subscriptions, by kind, with their order.
type psState struct {
	own [psKinds]map[string]uint64
	seq uint64
}

func (p *psState) count(k int) int { return len(p.own[k]) }

// subCount is the count a confirmation of kind k carries (Redis 7.0:
// channels and patterns together, shard channels apart).
func (p *psState) subCount(k int) int {
	if k == psShard {
		return p.count(psShard)
	}
	return p.count(psChannel) + p.count(psPattern)
}

// psStream is a subscribed client's output (see the top of this file).
type psStream struct {
	c    *client
	wake chan struct{}
	quit chan struct{}
	done chan struct{} // closed when run returns

	mu sync.Mutex
	// pending is what waits to be written, in pieces: a message is shared
	// by every subscriber it is fanned out to, not copied into each
	// one's buffer. pendingN counts its bytes; writing is the bytes a
	// writer took and has not written yet, which count against the limit
	// too.
	pending  net.Buffers
	pendingN int
	writing  int
	// busy: a writer (the stream's goroutine, or a link's reader writing
	// what it fanned out, flushFanned) has taken the pending pieces.
	busy bool
	// tailOwned: the last piece is the stream's own buffer, which small
	// pushes are copied into (one piece per small message would make the
	// write's vector long for little data).
	tailOwned bool
	// owned are the stream's own buffers among pending; free is one
	// written buffer kept for the next tail; spareP and spareO are the
	// arrays of the last write, reused for the next pending.
	owned     [][]byte
	free      []byte
	spareP    net.Buffers
	spareO    [][]byte
	softSince int64
	over      bool
	closed    bool
}

// Pieces of a stream: a push smaller than smallPiece is copied into a
// buffer of tailSize bytes shared with the pushes around it.
const (
	smallPiece = 1 << 10
	tailSize   = 4 << 10
)

// push appends a copy of b to the stream and wakes its writer.
func (st *psStream) push(b []byte) {
	if len(b) < smallPiece {
		st.pushShared(b, true) // copied into the tail buffer
		return
	}
	st.pushShared(append([]byte(nil), b...), true)
}

// pushShared appends b, which nobody changes afterwards, to the stream
// and, with wake, wakes its writer (a link's reader writes what it fanned
// out itself); a client over its pubsub output limit is closed. It reports
// whether b was taken.
func (st *psStream) pushShared(b []byte, wake bool) bool {
	st.mu.Lock()
	if st.over || st.closed {
		st.mu.Unlock()
		return false
	}
	switch {
	case len(b) >= smallPiece:
		st.pending = append(st.pending, b)
		st.tailOwned = false
	case st.tailOwned && len(st.pending[len(st.pending)-1])+len(b) <= tailSize:
		last := &st.pending[len(st.pending)-1]
		*last = append(*last, b...)
	default:
		buf := st.free
		if buf == nil {
			buf = make([]byte, 0, tailSize)
		}
		st.free = nil
		buf = append(buf[:0], b...)
		st.pending = append(st.pending, buf)
		st.owned = append(st.owned, buf)
		st.tailOwned = true
	}
	st.pendingN += len(b)
	n := st.pendingN + st.writing
	l := st.c.s.obuf.Class(conncmd.ObufPubsub)
	var now int64
	if l.Soft > 0 && uint64(n) >= l.Soft {
		now = time.Now().Unix() // only the soft limit needs the clock
	}
	if l.On() && l.Over(uint64(n), &st.softSince, now) {
		st.over = true
		st.pending, st.pendingN = nil, 0
		st.mu.Unlock()
		st.c.s.log.Warn(conncmd.ObufClosed, "client", st.c.sess.Addr, "id", st.c.sess.ID, "pending", n)
		st.c.nc.Close() // the client's goroutine sees its read fail
		return false
	}
	st.mu.Unlock()
	if wake {
		st.wakeWriter()
	}
	return true
}

func (st *psStream) wakeWriter() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// take hands the pending pieces to a writer; st.mu is held, the stream is
// not busy and has pending bytes.
func (st *psStream) take() (out net.Buffers, owned [][]byte, n int) {
	out, owned, n = st.pending, st.owned, st.pendingN
	st.pending, st.owned, st.pendingN, st.tailOwned = st.spareP[:0], st.spareO[:0], 0, false
	st.spareP, st.spareO = nil, nil
	st.busy, st.writing = true, n
	return out, owned, n
}

// release ends a writer's turn after it wrote everything it took; st.mu
// is held.
func (st *psStream) release(out net.Buffers, owned [][]byte) {
	st.busy, st.writing = false, 0
	if st.pendingN == 0 {
		st.softSince = 0 // everything written: under the soft limit again
	}
	if st.free == nil && len(owned) > 0 {
		st.free = owned[len(owned)-1]
	}
	clear(owned)
	clear(out)
	st.spareP, st.spareO = out[:0], owned[:0]
}

// flushFanned writes what a link's reader fanned out to the stream, as
// far as the socket takes it without waiting; the rest is left to the
// stream's goroutine. Writing here spares a wake-up of one goroutine per
// subscriber and message batch.
func (st *psStream) flushFanned() {
	rc := st.c.rc
	st.mu.Lock()
	if rc == nil || st.busy || st.pendingN == 0 || st.closed || st.over {
		busy := st.busy
		st.mu.Unlock()
		if !busy {
			st.wakeWriter()
		}
		return
	}
	out, owned, n := st.take()
	st.mu.Unlock()
	i, off := 0, 0 // where the socket stopped taking
	var errno syscall.Errno
	_ = rc.Write(func(fd uintptr) bool {
		for ; i < len(out); i++ {
			done, e := sockio.WriteAll(fd, out[i])
			if e != 0 {
				off, errno = done, e
				return true
			}
		}
		return true
	})
	written := n
	if i < len(out) {
		written = off
		for _, b := range out[:i] {
			written += len(b)
		}
	}
	st.c.s.netOut.Add(int64(written))
	st.mu.Lock()
	switch {
	case i == len(out):
		st.release(out, owned)
		more := st.pendingN > 0 // pushed by another link meanwhile
		st.mu.Unlock()
		if more {
			st.wakeWriter()
		}
	case errno == syscall.EAGAIN:
		// The rest goes first, before what was pushed meanwhile.
		rest := make(net.Buffers, 0, len(out)-i+len(st.pending))
		rest = append(rest, out[i][off:])
		rest = append(rest, out[i+1:]...)
		if len(st.pending) == 0 {
			st.tailOwned = false // the last piece is one being written from
		}
		st.pending = append(rest, st.pending...)
		st.pendingN += n - written
		st.owned = append(owned, st.owned...)
		st.busy, st.writing = false, 0
		st.mu.Unlock()
		st.wakeWriter()
	default:
		st.busy, st.writing = false, 0
		st.closed = true
		st.pending, st.pendingN = nil, 0
		st.mu.Unlock()
		st.c.nc.Close() // the client is gone
	}
}

// run writes the stream until the client ends, waiting while the client
// does not read.
func (st *psStream) run() {
	defer close(st.done)
	for {
		select {
		case <-st.quit:
			return
		case <-st.wake:
		}
		for {
			st.mu.Lock()
			if st.busy || st.pendingN == 0 {
				st.mu.Unlock()
				break
			}
			out, owned, n := st.take()
			st.mu.Unlock()
			bufs := out // WriteTo consumes it
			_, err := bufs.WriteTo(st.c.nc)
			st.mu.Lock()
			st.release(out, owned)
			st.mu.Unlock()
			if err != nil {
				st.c.nc.Close()
				return
			}
			st.c.s.netOut.Add(int64(n))
		}
	}
}

// pushConfirm pushes a (un)subscribe confirmation.
func (st *psStream) pushConfirm(b []byte) { st.pushShared(b, true) }

// startStream gives c its stream: what was written so far went out
// already (the round before the command was answered).
func (c *client) startStream() *psStream {
	if c.stream != nil {
		return c.stream
	}
	st := &psStream{c: c, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	c.stream = st
	c.psProto.Store(int32(c.sess.Proto))
	go st.run()
	return st
}

// psCmd serves the Pub/Sub commands (RouteLocal rows of the "pubsub" group).
func (c *client) psCmd(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	switch ci.Name {
	case "subscribe":
		c.psSubscribe(psChannel, args[1:])
	case "psubscribe":
		c.psSubscribe(psPattern, args[1:])
	case "ssubscribe":
		c.psSubscribe(psShard, args[1:])
	case "unsubscribe":
		c.psUnsubscribe(psChannel, args[1:])
	case "punsubscribe":
		c.psUnsubscribe(psPattern, args[1:])
	case "sunsubscribe":
		c.psUnsubscribe(psShard, args[1:])
	case "publish", "spublish":
		c.forward(c.tbl.locate(args[1]), cmd.Raw)
		if c.ps != nil && c.sess.Subscribed() {
			// A subscriber publishing: as in Redis, a message it gets
			// from its own PUBLISH comes before the reply (which stays
			// in its slot until the round is written).
			c.barrier()
			c.s.ps.psSync()
		}
	case "pubsub":
		c.pubsubCmd(args)
	}
}

// psBegin answers what the batch holds before a (un)subscribe and starts
// the client's stream; false when the connection is over.
func (c *client) psBegin() (*psStream, bool) {
	if len(c.slots) > 0 && !c.endRound() {
		return nil, false
	}
	if c.ps == nil {
		c.ps = &psState{}
		for k := range c.ps.own {
			c.ps.own[k] = make(map[string]uint64)
		}
	}
	return c.startStream(), true
}

func (c *client) psConfirm(k int, unsub bool, name []byte, null bool) []byte {
	proto := c.sess.Proto
	b := resp.AppendPush(nil, proto, 3)
	i := 0
	if unsub {
		i = 1
	}
	b = resp.AppendBulkString(b, psNames[k][i])
	if null {
		b = resp.AppendNull(b, proto)
	} else {
		b = resp.AppendBulk(b, name)
	}
	return resp.AppendInt(b, int64(c.ps.subCount(k)))
}

func (c *client) noteSubs() {
	c.sess.SetSubs(c.ps.count(psChannel), c.ps.count(psPattern), c.ps.count(psShard))
}

func (c *client) psSubscribe(k int, names [][]byte) {
	st, ok := c.psBegin()
	if !ok {
		return
	}
	h := c.s.ps
	for _, n := range names {
		name := string(n)
		if _, ok := c.ps.own[k][name]; ok {
			c.noteSubs()
			st.pushConfirm(c.psConfirm(k, false, n, false))
			continue
		}
		h.mu.Lock()
		acks := h.setWeight(c.tbl, k, name, 1)
		h.mu.Unlock()
		if err := h.waitAcks(acks); err != nil {
			c.s.log.Warn("subscribe on the node failed", "name", name, "error", err)
		}
		c.ps.seq++
		c.ps.own[k][name] = c.ps.seq
		c.noteSubs()
		h.mu.Lock()
		m := h.subs[k][name]
		if m == nil {
			m = make(map[*client]struct{})
			h.subs[k][name] = m
		}
		m[c] = struct{}{}
		st.pushConfirm(c.psConfirm(k, false, n, false))
		h.mu.Unlock()
	}
}

func (c *client) psUnsubscribe(k int, names [][]byte) {
	st, ok := c.psBegin()
	if !ok {
		return
	}
	if len(names) == 0 {
		if c.ps.count(k) == 0 {
			st.pushConfirm(c.psConfirm(k, true, nil, true))
			return
		}
		all := make([]string, 0, c.ps.count(k))
		for name := range c.ps.own[k] {
			all = append(all, name)
		}
		slices.SortFunc(all, func(a, b string) int { return int(c.ps.own[k][a]) - int(c.ps.own[k][b]) })
		for _, name := range all {
			c.psUnsubscribeOne(k, name, true)
			st.pushConfirm(c.psConfirm(k, true, []byte(name), false))
		}
		return
	}
	for _, n := range names {
		c.psUnsubscribeOne(k, string(n), true)
		st.pushConfirm(c.psConfirm(k, true, n, false))
	}
}

// psUnsubscribeOne drops c's subscription of kind k to name, if it has
// it; wait: until the node acknowledged.
func (c *client) psUnsubscribeOne(k int, name string, wait bool) {
	if _, ok := c.ps.own[k][name]; !ok {
		return
	}
	delete(c.ps.own[k], name)
	c.noteSubs()
	h := c.s.ps
	h.mu.Lock()
	if m := h.subs[k][name]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.subs[k], name)
		}
	}
	acks := h.setWeight(c.tbl, k, name, -1)
	h.mu.Unlock()
	if wait {
		_ = h.waitAcks(acks)
	}
}

// psReset forgets every subscription of c (RESET, the connection's end:
// then without waiting for the nodes).
func (c *client) psReset(closing bool) {
	if c.ps != nil {
		if c.tbl == nil {
			c.tbl = c.s.table.Load()
		}
		for k := range psKinds {
			for name := range c.ps.own[k] {
				c.psUnsubscribeOne(k, name, !closing)
			}
		}
	}
}

// psFinish ends a client's stream as the connection ends: what it has not
// written yet (QUIT's +OK, the last replies) is written, for a second at
// most.
func (c *client) psFinish() {
	st := c.stream
	if st == nil {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	close(st.quit)
	<-st.done
	st.mu.Lock()
	out := st.pending
	st.pending, st.pendingN, st.closed = nil, 0, true
	over := st.over
	st.mu.Unlock()
	if len(out) > 0 && !over && c.rerr != errOutputLimit {
		_, _ = out.WriteTo(c.nc)
	}
}

// pubsubCmd is PUBSUB: the nodes' answers combined. CHANNELS and
// SHARDCHANNELS are the union of every node's, NUMSUB and SHARDNUMSUB the
// sums (the nodes count the proxies' clients by their weights), NUMPAT the
// number of distinct patterns over the nodes.
func (c *client) pubsubCmd(args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "help":
		mark := len(c.out)
		c.out = conncmd.AppendHelp(c.out, "PUBSUB", pubsubHelp)
		c.reply(mark)
		return
	case "channels", "shardchannels":
		if len(args) > 3 {
			c.errorReply("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try PUBSUB HELP.")
			return
		}
	case "numsub", "shardnumsub", "numpat":
	default:
		c.errorReply(cmdtable.ErrUnknownSubcommand("pubsub", string(args[1])))
		return
	}
	c.barrier()
	strs := make([]string, len(args))
	for i, a := range args {
		strs[i] = string(a)
	}
	if sub == "numpat" {
		strs = []string{"SHARD.PUBSUB", "PATTERNS"}
	}
	var replies []resp.Value
	for _, sh := range c.tbl.nodes {
		v, err := sh.backend(resp.RESP2).Do(strs...)
		if err != nil {
			c.errorReply(sh.unavailable(err))
			return
		}
		if v.IsError() {
			c.errorReply(string(v.Str))
			return
		}
		replies = append(replies, v)
	}
	mark := len(c.out)
	switch sub {
	case "channels", "shardchannels", "numpat":
		seen := make(map[string]bool)
		var names []string
		for _, v := range replies {
			for _, e := range v.Elems {
				if n := string(e.Str); !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		if sub == "numpat" {
			c.out = resp.AppendInt(c.out, int64(len(names)))
			break
		}
		c.out = resp.AppendArray(c.out, len(names))
		for _, n := range names {
			c.out = resp.AppendBulkString(c.out, n)
		}
	default: // numsub, shardnumsub
		c.out = resp.AppendArray(c.out, 2*(len(args)-2))
		for i, ch := range args[2:] {
			var n int64
			for _, v := range replies {
				if 2*i+1 < len(v.Elems) {
					n += v.Elems[2*i+1].Int
				}
			}
			c.out = resp.AppendBulk(c.out, ch)
			c.out = resp.AppendInt(c.out, n)
		}
	}
	c.reply(mark)
}

var pubsubHelp = []string{
	"CHANNELS [<pattern>]",
	"    Return the currently active channels matching a <pattern> (default: '*').",
	"NUMPAT",
	"    Return number of subscriptions to patterns.",
	"NUMSUB [<channel> ...]",
	"    Return the number of subscribers for the specified channels, excluding",
	"    pattern subscriptions(default: no channels).",
	"SHARDCHANNELS [<pattern>]",
	"    Return the currently active shard level channels matching a <pattern> (default: '*').",
	"SHARDNUMSUB [<shardchannel> ...]",
	"    Return the number of subscribers for the specified shard level channel(s)",
}

// psProtoNote keeps the protocol the links' readers encode c's messages in.
func (c *client) psProtoNote(p resp.Proto) {
	if c.stream != nil {
		c.psProto.Store(int32(p))
	}
}
