package shardnode

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/resp"
)

// Pub/Sub, as Redis 7.0 serves it: channels, patterns and shard channels
// (docs/INTERNALS.md "Pub/Sub").
//
// The hub maps each channel, pattern and shard channel to its subscribers.
// PUBLISH runs on the publisher's connection: it encodes the message once
// per protocol and appends it to each subscriber's push buffer (a
// subscriber is often another event loop's connection), then has the
// subscriber's loop wake (an eventfd write when it is another loop). The
// loop moves pushes into the connection's output before it reads from it
// and at the end of each pass, so a message is written before the reply of
// any command the subscriber sent after the PUBLISH was answered. A
// connection with a goroutine of its own has a pusher goroutine that writes
// its pushes between its batches (pushLock).
//
// A subscription's weight is what it adds to PUBLISH's count and to
// PUBSUB NUMSUB: 1 for a client's own subscription; for the proxy's
// subscriber connection (SHARD.PUBSUB) the number of the proxy's clients
// it listens for, so that PUBLISH replies how many clients received the
// message wherever they are connected. A weighted subscription does not
// put the connection in subscribed mode.
//
// Output: a subscribed connection is of the pubsub class of
// client-output-buffer-limit; its pending pushes and replies over the hard
// limit, or over the soft limit for longer than its seconds, close it.

type psKind uint8

const (
	psChannel psKind = iota
	psPattern
	psShard
	psKinds
)

// hub is the node's subscriptions.
type hub struct {
	mu   sync.RWMutex
	subs [psKinds]map[string]map[*client]int // name → subscriber → weight
}

func newHub() *hub {
	h := &hub{}
	for k := range h.subs {
		h.subs[k] = make(map[string]map[*client]int)
	}
	return h
}

// counts is INFO's pubsub_channels, pubsub_patterns and
// pubsubshard_channels.
func (h *hub) counts() (channels, patterns, shard int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[psChannel]), len(h.subs[psPattern]), len(h.subs[psShard])
}

// clientSubs is a connection's Pub/Sub state, created at its first
// subscription.
type clientSubs struct {
	// own are the client's subscriptions, each with its order (Redis
	// unsubscribes all in subscription order); weighted are the
	// SHARD.PUBSUB ones with their weights. Both belong to the
	// connection's goroutine.
	own      [psKinds]map[string]uint64
	seq      uint64
	weighted [psKinds]map[string]int
	// dropped: the connection is closing and its subscriptions are gone.
	dropped bool
	// proto is the connection's protocol, which publishers on other
	// connections encode for.
	proto atomic.Int32

	mu     sync.Mutex
	push   []byte // messages not yet in the connection's output
	queued bool   // on the loop's pushed list, or the pusher woken
	closed bool
	// softSince is when the pending pushes were first seen over the soft
	// limit (a connection with a goroutine of its own).
	softSince int64

	// A connection with a goroutine of its own: wmu orders its writes
	// (held by the connection for a batch, by the pusher for a write),
	// wake wakes the pusher, quit stops it.
	wmu  sync.Mutex
	wake chan struct{}
	quit chan struct{}
}

// count is the number of the client's own subscriptions of kind k.
func (p *clientSubs) count(k psKind) int { return len(p.own[k]) }

// total is every own subscription: the connection is in subscribed mode
// when it is not zero.
func (p *clientSubs) total() int {
	return len(p.own[psChannel]) + len(p.own[psPattern]) + len(p.own[psShard])
}

// subs returns c's Pub/Sub state, creating it.
func (c *client) subs() *clientSubs {
	if c.ps != nil {
		return c.ps
	}
	p := &clientSubs{}
	for k := range p.own {
		p.own[k] = make(map[string]uint64)
		p.weighted[k] = make(map[string]int)
	}
	p.proto.Store(int32(c.sess.Proto))
	c.ps = p
	if c.loop == nil {
		// A goroutine of its own: this batch's replies come before any
		// push (pushLock), then the pusher writes them.
		p.wake, p.quit = make(chan struct{}, 1), make(chan struct{})
		p.wmu.Lock()
		c.psLocked = true
		go c.pusher(p)
	}
	return p
}

// Message texts by kind: the subscribe, unsubscribe and message names.
var psNames = [psKinds][3]string{
	psChannel: {"subscribe", "unsubscribe", "message"},
	psPattern: {"psubscribe", "punsubscribe", "pmessage"},
	psShard:   {"ssubscribe", "sunsubscribe", "smessage"},
}

// subCount is the count a (un)subscribe confirmation of kind k carries:
// channels and patterns together, shard channels apart (Redis 7.0).
func (p *clientSubs) subCount(k psKind) int {
	if k == psShard {
		return p.count(psShard)
	}
	return p.count(psChannel) + p.count(psPattern)
}

// confirm appends a (un)subscribe confirmation: ["subscribe", name, count].
func (c *client) confirm(k psKind, unsub bool, name []byte, null bool) {
	c.out = resp.AppendPush(c.out, c.sess.Proto, 3)
	i := 0
	if unsub {
		i = 1
	}
	c.out = resp.AppendBulkString(c.out, psNames[k][i])
	if null {
		c.out = resp.AppendNull(c.out, c.sess.Proto)
	} else {
		c.out = resp.AppendBulk(c.out, name)
	}
	n := 0
	if c.ps != nil {
		n = c.ps.subCount(k)
	}
	c.out = resp.AppendInt(c.out, int64(n))
}

// noteSubs publishes c's counts to CLIENT LIST and the subscribed-mode
// checks.
func (c *client) noteSubs() {
	p := c.ps
	c.sess.SetSubs(p.count(psChannel), p.count(psPattern), p.count(psShard))
}

// setWeight sets c's subscription of kind k to name at weight w (0:
// none) in the hub.
func (s *Server) setWeight(c *client, k psKind, name string, w int) {
	h := s.hub
	h.mu.Lock()
	m := h.subs[k][name]
	if w > 0 {
		if m == nil {
			m = make(map[*client]int)
			h.subs[k][name] = m
		}
		m[c] = w
	} else if m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.subs[k], name)
		}
	}
	h.mu.Unlock()
}

// weightOf is c's total weight for kind k and name: its own subscription
// and the proxy's.
func (p *clientSubs) weightOf(k psKind, name string) int {
	w := p.weighted[k][name]
	if _, ok := p.own[k][name]; ok {
		w++
	}
	return w
}

func (c *client) subscribe(k psKind, names [][]byte) {
	p := c.subs()
	for _, n := range names {
		name := string(n)
		if _, ok := p.own[k][name]; !ok {
			p.seq++
			p.own[k][name] = p.seq
			c.srv.setWeight(c, k, name, p.weightOf(k, name))
		}
		c.noteSubs()
		c.confirm(k, false, n, false)
	}
}

func (c *client) unsubscribe(k psKind, names [][]byte) {
	p := c.ps
	if len(names) == 0 {
		if p == nil || p.count(k) == 0 {
			c.confirm(k, true, nil, true)
			return
		}
		all := make([]string, 0, p.count(k))
		for name := range p.own[k] {
			all = append(all, name)
		}
		slices.SortFunc(all, func(a, b string) int { return int(p.own[k][a]) - int(p.own[k][b]) })
		for _, name := range all {
			c.unsubscribeOne(k, name)
			c.confirm(k, true, []byte(name), false)
		}
		return
	}
	for _, n := range names {
		if p != nil {
			c.unsubscribeOne(k, string(n))
		}
		c.confirm(k, true, n, false)
	}
}

// unsubscribeOne drops c's own subscription of kind k to name, if any.
func (c *client) unsubscribeOne(k psKind, name string) {
	p := c.ps
	if _, ok := p.own[k][name]; !ok {
		return
	}
	delete(p.own[k], name)
	c.srv.setWeight(c, k, name, p.weightOf(k, name))
	c.noteSubs()
}

// dropSubs forgets every subscription of c, its own and the proxy's
// (RESET, the connection's end); the pusher stops once closing.
func (c *client) dropSubs(closing bool) {
	p := c.ps
	if p == nil || p.dropped {
		return
	}
	for k := range psKinds {
		for name := range p.own[k] {
			delete(p.own[k], name)
			c.srv.setWeight(c, k, name, p.weightOf(k, name))
		}
		if closing {
			for name := range p.weighted[k] {
				c.srv.setWeight(c, k, name, 0)
			}
			clear(p.weighted[k])
		}
	}
	c.noteSubs()
	if closing {
		p.dropped = true
		p.mu.Lock()
		p.closed = true
		p.push = nil
		p.mu.Unlock()
		if p.quit != nil {
			close(p.quit)
		}
	}
}

func cmdSubscribe(c *client, args [][]byte)    { c.subscribe(psChannel, args[1:]) }
func cmdPSubscribe(c *client, args [][]byte)   { c.subscribe(psPattern, args[1:]) }
func cmdSSubscribe(c *client, args [][]byte)   { c.subscribe(psShard, args[1:]) }
func cmdUnsubscribe(c *client, args [][]byte)  { c.unsubscribe(psChannel, args[1:]) }
func cmdPUnsubscribe(c *client, args [][]byte) { c.unsubscribe(psPattern, args[1:]) }
func cmdSUnsubscribe(c *client, args [][]byte) { c.unsubscribe(psShard, args[1:]) }

func cmdPublish(c *client, args [][]byte) {
	c.intReply(int64(c.srv.publish(c, psChannel, args[1], args[2])))
}

func cmdSPublish(c *client, args [][]byte) {
	c.intReply(int64(c.srv.publish(c, psShard, args[1], args[2])))
}

// message is one published message, encoded for each protocol when a
// subscriber needs it.
type message struct {
	kind      psKind
	pattern   []byte
	hasPat    bool
	ch, msg   []byte
	enc       [2][]byte
	publisher *client
}

func (m *message) bytes(proto resp.Proto) []byte {
	i := 0
	if proto == resp.RESP3 {
		i = 1
	}
	if m.enc[i] == nil {
		n := 3
		if m.hasPat {
			n = 4
		}
		b := resp.AppendPush(nil, proto, n)
		b = resp.AppendBulkString(b, psNames[m.kind][2])
		if m.hasPat {
			b = resp.AppendBulk(b, m.pattern)
		}
		b = resp.AppendBulk(b, m.ch)
		m.enc[i] = resp.AppendBulk(b, m.msg)
	}
	return m.enc[i]
}

// publish delivers msg on channel ch of kind k (psChannel or psShard) and
// returns the number of receivers, weighted.
func (s *Server) publish(from *client, k psKind, ch, msg []byte) int {
	h := s.hub
	m := message{kind: k, ch: ch, msg: msg, publisher: from}
	n := 0
	h.mu.RLock()
	for sc, w := range h.subs[k][string(ch)] {
		sc.deliver(m.bytes(resp.Proto(sc.ps.proto.Load())), from)
		n += w
	}
	if k == psChannel {
		for pat, subs := range h.subs[psPattern] {
			if !glob.Match([]byte(pat), ch, false) {
				continue
			}
			pm := message{kind: psPattern, pattern: []byte(pat), hasPat: true, ch: ch, msg: msg}
			for sc, w := range subs {
				sc.deliver(pm.bytes(resp.Proto(sc.ps.proto.Load())), from)
				n += w
			}
		}
	}
	h.mu.RUnlock()
	return n
}

// deliver hands b to c, a subscriber, from the connection of a publisher.
func (c *client) deliver(b []byte, from *client) {
	if c == from {
		c.out = append(c.out, b...) // before the publisher's own reply, as in Redis
		return
	}
	p := c.ps
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.push = append(p.push, b...)
	wake := !p.queued
	p.queued = true
	pending := len(p.push)
	p.mu.Unlock()
	if c.loop == nil {
		if c.overPushLimit(pending) {
			c.closeForPushes()
			return
		}
		if wake {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	if wake {
		c.loop.pushed(c, from == nil || from.loop != c.loop)
	}
}

// takePushes moves c's pending pushes to its output.
func (c *client) takePushes() {
	p := c.ps
	p.mu.Lock()
	c.out = append(c.out, p.push...)
	if cap(p.push) > outKeep {
		p.push = nil
	} else {
		p.push = p.push[:0]
	}
	p.queued = false
	p.mu.Unlock()
}

// obufClass is the output buffer limit class c is in: pubsub while it has
// subscriptions of its own, as in Redis.
func (c *client) obufClass() int {
	if c.ps != nil && c.ps.total() > 0 {
		return conncmd.ObufPubsub
	}
	return conncmd.ObufNormal
}

// overPushLimit checks the pending pushes of a connection with a goroutine
// of its own against the pubsub class.
func (c *client) overPushLimit(pending int) bool {
	l := c.srv.obuf.Class(conncmd.ObufPubsub)
	if !l.On() || connClass(c.class.Load()) == classProxy {
		return false
	}
	var now int64
	if l.Soft > 0 && uint64(pending) >= l.Soft {
		now = time.Now().Unix() // only the soft limit needs the clock
	}
	p := c.ps
	p.mu.Lock()
	over := l.Over(uint64(pending), &p.softSince, now)
	p.mu.Unlock()
	return over
}

// closeForPushes closes a connection with a goroutine of its own whose
// pushes went over its limit; its goroutine sees the read fail.
func (c *client) closeForPushes() {
	p := c.ps
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	n := len(p.push)
	p.push = nil
	p.mu.Unlock()
	c.srv.log.Warn(conncmd.ObufClosed, "client", c.sess.Addr, "id", c.sess.ID, "pending", n)
	c.nc.Close()
}

// pusher writes the pushes of a connection with a goroutine of its own
// between its batches.
func (c *client) pusher(p *clientSubs) {
	var out []byte
	for {
		select {
		case <-p.quit:
			return
		case <-p.wake:
		}
		p.wmu.Lock()
		p.mu.Lock()
		out, p.push = p.push, out[:0]
		p.queued = false
		p.softSince = 0
		p.mu.Unlock()
		if len(out) > 0 {
			n, err := c.nc.Write(out)
			c.netOut.Add(int64(n))
			if err != nil {
				p.wmu.Unlock()
				return
			}
		}
		p.wmu.Unlock()
		if cap(out) > outKeep {
			out = nil
		}
	}
}

// pushLock is taken by a connection with a goroutine of its own for a
// batch: the pusher writes between batches, and what was pushed before the
// batch goes out ahead of its replies.
func (c *client) pushLock() {
	if p := c.ps; p != nil && !c.psLocked {
		p.wmu.Lock()
		c.psLocked = true
		c.takePushes()
	}
}

func (c *client) pushUnlock() {
	if c.psLocked {
		c.psLocked = false
		c.ps.wmu.Unlock()
	}
}

// cmdPubsub is PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP.
func cmdPubsub(c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	h := c.srv.hub
	switch sub {
	case "channels", "shardchannels":
		k := psChannel
		if sub == "shardchannels" {
			k = psShard
		}
		if len(args) > 3 {
			c.errReply("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try PUBSUB HELP.")
			return
		}
		h.mu.RLock()
		var names []string
		for name := range h.subs[k] {
			if len(args) == 3 && !glob.Match(args[2], []byte(name), false) {
				continue
			}
			names = append(names, name)
		}
		h.mu.RUnlock()
		c.array(len(names))
		for _, n := range names {
			c.bulkStr(n)
		}
	case "numsub", "shardnumsub":
		k := psChannel
		if sub == "shardnumsub" {
			k = psShard
		}
		c.array(2 * (len(args) - 2))
		h.mu.RLock()
		for _, ch := range args[2:] {
			n := 0
			for _, w := range h.subs[k][string(ch)] {
				n += w
			}
			c.bulk(ch)
			c.intReply(int64(n))
		}
		h.mu.RUnlock()
	case "numpat":
		h.mu.RLock()
		n := len(h.subs[psPattern])
		h.mu.RUnlock()
		c.intReply(int64(n))
	case "help":
		c.out = conncmd.AppendHelp(c.out, "PUBSUB", pubsubHelp)
	default:
		c.errReply(cmdtable.ErrUnknownSubcommand("pubsub", string(args[1])))
	}
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

// cmdShardPubsub is the proxy's SHARD.PUBSUB:
//
//	SHARD.PUBSUB SET channel|pattern|shard <weight> <name>: the connection
//	  listens for <weight> of the proxy's clients (0: none); +OK.
//	SHARD.PUBSUB PATTERNS: the node's patterns, for the proxy's PUBSUB
//	  NUMPAT across nodes.
//
// Messages come as RESP2 or RESP3 pushes in the connection's protocol.
func cmdShardPubsub(c *client, args [][]byte) {
	switch strings.ToLower(string(args[1])) {
	case "set":
		if len(args) != 5 {
			c.arityErr("shard.pubsub")
			return
		}
		var k psKind
		switch strings.ToLower(string(args[2])) {
		case "channel":
			k = psChannel
		case "pattern":
			k = psPattern
		case "shard":
			k = psShard
		default:
			c.errReply(errSyntax)
			return
		}
		w, err := strconv.Atoi(string(args[3]))
		if err != nil || w < 0 {
			c.errReply(errNotInteger)
			return
		}
		p := c.subs()
		name := string(args[4])
		if w == 0 {
			delete(p.weighted[k], name)
		} else {
			p.weighted[k][name] = w
		}
		c.srv.setWeight(c, k, name, p.weightOf(k, name))
		c.ok()
	case "patterns":
		h := c.srv.hub
		h.mu.RLock()
		c.array(len(h.subs[psPattern]))
		for pat := range h.subs[psPattern] {
			c.bulkStr(pat)
		}
		h.mu.RUnlock()
	default:
		c.errReply(errSyntax)
	}
}
