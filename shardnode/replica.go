package shardnode

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// Replication (docs/REPLICATION.md). A primary streams its keys to each
// replica as key states, the way a move streams a range (migrate.go, whose
// queue and wire this reuses over the whole range [0,1)): a full sync
// (flush, assignment, every key), then the keys written since, each round
// ended by REPL.OFFSET o, the primary's write counter read before the
// round's write barrier. The replica's reply to REPL.OFFSET o comes after it
// committed every command before it, so it acknowledges every write up to
// o; min-acks and WAIT wait on those acknowledgements.

// Roles of a node.
const (
	rolePrimary int32 = iota
	roleReplica
)

// Link states of a replica (ROLE's fourth field).
const (
	linkConnect int32 = iota
	linkConnecting
	linkSync
	linkUp
)

var linkNames = [...]string{"connect", "connecting", "sync", "connected"}

const (
	errReadOnlyReplica = "READONLY You can't write against a read only replica."
	errNoReplicas      = "NOREPLICAS Not enough good replicas to write."
	errUnacked         = "NOREPLICAS the write was applied on the primary but not acknowledged by enough replicas in time; it may be lost at a failover"
	errUnconfirmed     = "TRYAGAIN this node's primary role is not confirmed (waiting for the controller or for its etcd lease)"
	errWaitReplica     = "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."
)

// replHeartbeat is how often an idle stream repeats REPL.OFFSET, so that
// the replica sees its link alive and the primary sees it acknowledge.
const replHeartbeat = 500 * time.Millisecond

// replLinkTimeout is how long a replica waits without a word from its
// primary's stream before it attaches again.
const replLinkTimeout = 3 * time.Second

// replState is the node's role and its replication streams.
type replState struct {
	// active is set once anything replication checks on the write path
	// is on (a replica role, min-acks, the role gate): a node without
	// replication pays one atomic load per command.
	active atomic.Bool
	role   atomic.Int32
	// offset is master_repl_offset on a primary (one per key written,
	// counted in the writing transaction), and on a replica the offset of
	// the last REPL.OFFSET it took.
	offset  atomic.Int64
	minAcks atomic.Int64
	// gated: writes need a confirmed role and a valid lease (Config.RoleGate).
	gated     bool
	confirmed atomic.Bool
	leaseTill atomic.Int64 // monotonic nanoseconds since Server.started; 0 = none

	// Replica side.
	link   atomic.Int32
	synced atomic.Bool
	lastIO atomic.Int64 // Unix milliseconds of the last stream command
	// gen numbers the role changes: a stream connection of an older
	// generation (from a former primary) is refused.
	gen atomic.Uint64

	mu       sync.Mutex
	primary  string // host:port followed, on a replica
	epoch    uint64 // the epoch of the last REPL.ROLE taken
	sources  map[string]*replSource
	tracking atomic.Pointer[[]*replSource]
	follow   *replFollower
	waiters  []*ackWaiter
}

// clientRepl is a connection's part of replication.
type clientRepl struct {
	// woff is the primary's offset after the connection's last write
	// (WAIT's target).
	woff int64
	// mark, start and w0: len(c.out), the command index and woff before
	// the command or run being served, so that min-acks can hold exactly
	// its replies (serveFrom).
	mark, start int
	w0          int64
	// recv is set on a stream connection from the primary, with the
	// generation it was accepted in.
	recv bool
	gen  uint64
}

// initRepl applies the configuration at start.
func (s *Server) initRepl() {
	r := &s.repl
	r.minAcks.Store(int64(s.cfg.MinAcks))
	r.gated = s.cfg.RoleGate
	if s.cfg.ReplicaOf != "" {
		s.becomeReplica(s.cfg.ReplicaOf, 0)
	}
	s.replActive()
}

func (s *Server) replActive() {
	r := &s.repl
	r.active.Store(r.gated || r.role.Load() == roleReplica || r.minAcks.Load() > 0)
}

// SetLeaseDeadline tells a node with Config.RoleGate until when its etcd
// lease is certainly valid (the time it sent the last refresh etcd
// answered, plus the lease's TTL); the zero time says the lease is lost,
// which also drops the role's confirmation (the controller must confirm it
// again under the new lease).
func (s *Server) SetLeaseDeadline(t time.Time) {
	r := &s.repl
	if t.IsZero() {
		r.leaseTill.Store(0)
		if r.confirmed.Swap(false) {
			s.log.Warn("etcd lease lost: writes stop until the controller confirms this node's role again")
		}
		return
	}
	r.leaseTill.Store(int64(t.Sub(s.started)))
}

// writable reports whether a gated primary may take a write now.
func (r *replState) writable(s *Server) bool {
	if !r.gated {
		return true
	}
	till := r.leaseTill.Load()
	return r.confirmed.Load() && till > 0 && int64(time.Since(s.started)) < till
}

// refuse is the replication check of admit: a replica's refusals, the
// role gate, and min-acks' refusal when too few replicas are good.
func (c *client) replRefuse(spec *cmdSpec) string {
	r := &c.srv.repl
	if !r.active.Load() {
		return ""
	}
	if c.repl.recv {
		if c.repl.gen != r.gen.Load() {
			c.sess.Quit = true
			return "ERR this stream comes from a former primary"
		}
		// A full sync longer than the link timeout is not silent.
		r.lastIO.Store(c.now)
		return ""
	}
	if c.migRecv {
		return ""
	}
	if r.role.Load() == roleReplica {
		if spec.write {
			return errReadOnlyReplica
		}
		if (spec.kind == kindKeyed || spec.kind == kindKeyless) && !c.sess.ReadOnly() {
			r.mu.Lock()
			p := r.primary
			r.mu.Unlock()
			return "REPLICA this node is a replica of " + p + "; send READONLY to read from it"
		}
		return ""
	}
	if !spec.write {
		return ""
	}
	if !r.writable(c.srv) {
		return errUnconfirmed
	}
	if n := r.minAcks.Load(); n > 0 && int64(c.srv.goodReplicas()) < n {
		return errNoReplicas
	}
	return ""
}

// touched counts a write of key and queues it for each replica, from the
// writing transaction.
func (r *replState) touched(c *client, db int, key []byte) {
	if r.role.Load() == roleReplica {
		return
	}
	c.repl.woff = r.offset.Add(1)
	if tp := r.tracking.Load(); tp != nil {
		for _, j := range *tp {
			j.ms.enqueue(db, string(key), migWhole, 0, nil)
		}
	}
}

// flushed is touched for a flush of database db (every one for db < 0).
func (r *replState) flushed(c *client, db int) {
	if r.role.Load() == roleReplica {
		return
	}
	c.repl.woff = r.offset.Add(1)
	if tp := r.tracking.Load(); tp != nil {
		for _, j := range *tp {
			j.ms.enqueueFlush(db)
		}
	}
}

func (r *replState) setTracking() {
	l := make([]*replSource, 0, len(r.sources))
	for _, j := range r.sources {
		l = append(l, j)
	}
	r.tracking.Store(&l)
}

// goodReplicas is how many replicas are synced and acknowledged within
// the max lag.
func (s *Server) goodReplicas() int {
	tp := s.repl.tracking.Load()
	if tp == nil {
		return 0
	}
	n := 0
	now := time.Now().UnixMilli()
	for _, j := range *tp {
		if j.synced.Load() && now-j.ackAt.Load() <= s.cfg.replMaxLag().Milliseconds() {
			n++
		}
	}
	return n
}

// ackedCount is how many replicas acknowledged offset off.
func (s *Server) ackedCount(off int64) int {
	tp := s.repl.tracking.Load()
	if tp == nil {
		return 0
	}
	n := 0
	for _, j := range *tp {
		if j.synced.Load() && j.acked.Load() >= off {
			n++
		}
	}
	return n
}

// replSource is the primary's stream to one replica.
type replSource struct {
	srv  *Server
	addr string
	// ms carries the queue of written keys and the wire's counters.
	ms     *migSource
	acked  atomic.Int64 // the last offset the replica acknowledged
	ackAt  atomic.Int64 // Unix milliseconds of that acknowledgement
	synced atomic.Bool  // the full sync was acknowledged
	since  time.Time

	mu    sync.Mutex
	marks []replMark // REPL.OFFSETs sent and not yet acknowledged
}

type replMark struct {
	seq uint64 // the stream item of the REPL.OFFSET
	off int64
}

// attachReplica starts a full sync to the replica at addr, replacing the
// stream it had (a replica attaching again lost its copy or its link).
func (s *Server) attachReplica(addr string) {
	r := &s.repl
	ms := &migSource{
		srv: s, id: "repl:" + addr, rng: posRange{0, 1}, target: addr,
		queued: make(map[string]*migItem), phase: "snapshot",
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	j := &replSource{srv: s, addr: addr, ms: ms, since: time.Now()}
	r.mu.Lock()
	old := r.sources[addr]
	if r.sources == nil {
		r.sources = make(map[string]*replSource)
	}
	r.sources[addr] = j
	r.setTracking()
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
	s.log.Info("replica attached: full sync", "replica", addr)
	go j.run()
}

// stop ends the stream.
func (j *replSource) stop() {
	ms := j.ms
	ms.mu.Lock()
	if !ms.stopped.Swap(true) {
		close(ms.stop)
	}
	if ms.conn != nil {
		ms.conn.Close()
	}
	ms.mu.Unlock()
	<-ms.done
}

// dropSource forgets j if it is still the stream to its replica.
func (s *Server) dropSource(j *replSource, err error) {
	r := &s.repl
	r.mu.Lock()
	if r.sources[j.addr] == j {
		delete(r.sources, j.addr)
		r.setTracking()
	}
	r.mu.Unlock()
	if err != nil && !errors.Is(err, errStopped) {
		s.log.Warn("replica stream ended", "replica", j.addr, "error", err)
	}
	s.wakeAckWaiters()
}

// stopSources ends every stream (the node became a replica).
func (s *Server) stopSources() {
	r := &s.repl
	r.mu.Lock()
	var l []*replSource
	for _, j := range r.sources {
		l = append(l, j)
	}
	r.sources = nil
	r.setTracking()
	r.mu.Unlock()
	for _, j := range l {
		j.stop()
	}
}

func (j *replSource) run() {
	ms := j.ms
	s := j.srv
	var err error
	defer func() {
		close(ms.done)
		s.dropSource(j, err)
	}()
	nc, err := net.DialTimeout("tcp", j.addr, 5*time.Second)
	if err != nil {
		err = fmt.Errorf("connecting to the replica: %w", err)
		return
	}
	ms.mu.Lock()
	if ms.stopped.Load() {
		ms.mu.Unlock()
		nc.Close()
		err = errStopped
		return
	}
	ms.conn = nc
	ms.mu.Unlock()
	defer nc.Close()
	wr := &migWire{j: ms, w: bufio.NewWriterSize(nc, 256<<10), pending: make(chan migPending, migInflight), db: -1, start: time.Now()}
	readErr := make(chan error, 1)
	go func() { readErr <- j.readAcks(bufio.NewReaderSize(nc, 64<<10), wr.pending) }()
	n := 1
	if pw := s.cfg.RequirePass; pw != "" {
		wr.cmd("AUTH", pw)
		n++
	}
	s.repl.mu.Lock()
	epoch := s.repl.epoch
	s.repl.mu.Unlock()
	wr.cmd("REPL.RECV", s.advertised(), strconv.FormatUint(epoch, 10))
	if err = wr.item(n); err != nil {
		return
	}
	err = j.stream(wr, readErr)
}

// stream sends the full sync and then the written keys until stopped.
func (j *replSource) stream(wr *migWire, readErr chan error) error {
	ms := j.ms
	s := j.srv
	check := ms.checker(readErr, "the replica")
	off := s.repl.offset.Load()
	if err := s.barrier(); err != nil {
		return err
	}
	if err := wr.sendFlush(-1); err != nil {
		return err
	}
	if a := s.assign.Load(); a != nil {
		args := []string{"SHARD.ASSIGN", a.Name, strconv.FormatFloat(a.Start, 'g', -1, 64), strconv.FormatFloat(a.End, 'g', -1, 64),
			strconv.FormatInt(a.Size, 10), "FORCE"}
		if a.HashTags {
			args = append(args, "HASHTAGS", "1")
		}
		if a.Epoch > 0 {
			args = append(args, "EPOCH", strconv.FormatUint(a.Epoch, 10))
		}
		wr.cmd(args...)
		if err := wr.item(1); err != nil {
			return err
		}
	}
	if err := wr.sendSnapshot(check); err != nil {
		return err
	}
	if err := j.mark(wr, off); err != nil {
		return err
	}
	ms.setPhase("streaming")
	tick := time.NewTicker(replHeartbeat)
	defer tick.Stop()
	last := off
	for {
		if err := check(); err != nil {
			return err
		}
		off := s.repl.offset.Load()
		if err := s.barrier(); err != nil {
			return err
		}
		items := ms.take()
		for _, it := range items {
			if err := check(); err != nil {
				return err
			}
			if err := wr.sendItem(it); err != nil {
				return err
			}
		}
		if off != last || len(items) > 0 {
			if err := j.mark(wr, off); err != nil {
				return err
			}
			last = off
		}
		if len(items) == 0 {
			select {
			case <-ms.kick:
			case <-tick.C:
				if err := j.mark(wr, off); err != nil {
					return err
				}
			case <-ms.stop:
			}
		}
	}
}

// mark sends REPL.OFFSET off and flushes the stream.
func (j *replSource) mark(wr *migWire, off int64) error {
	j.mu.Lock()
	j.marks = append(j.marks, replMark{seq: j.ms.sentSeq.Load() + 1, off: off})
	j.mu.Unlock()
	wr.cmd("REPL.OFFSET", strconv.FormatInt(off, 10))
	if err := wr.item(1); err != nil {
		return err
	}
	return wr.flush()
}

// readAcks reads the replica's replies; the reply to a REPL.OFFSET
// acknowledges its offset.
func (j *replSource) readAcks(r *bufio.Reader, pending chan migPending) error {
	return readItemReplies(r, pending, "the replica", func(seq uint64) {
		j.mu.Lock()
		var off int64 = -1
		for len(j.marks) > 0 && j.marks[0].seq <= seq {
			off = j.marks[0].off
			j.marks = j.marks[1:]
		}
		j.mu.Unlock()
		if off >= 0 {
			j.acked.Store(off)
			j.ackAt.Store(time.Now().UnixMilli())
			if !j.synced.Swap(true) {
				j.srv.log.Info("replica synced", "replica", j.addr, "offset", off, "took", time.Since(j.since).Round(time.Millisecond))
			}
			j.srv.wakeAckWaiters()
		}
	})
}

// advertised is the host:port other nodes reach this one at.
func (s *Server) advertised() string {
	if a := s.Addr(); a != nil {
		host, port, err := net.SplitHostPort(s.cfg.Addr)
		if err == nil && host != "" && host != "0.0.0.0" && host != "::" {
			_, lport, _ := net.SplitHostPort(a.String())
			if port == "0" {
				port = lport
			}
			return net.JoinHostPort(host, port)
		}
		return a.String()
	}
	return s.cfg.Addr
}

// ackWaiter is a blocked client waiting for acknowledgements: a write's
// reply under min-acks, or WAIT.
type ackWaiter struct {
	w    *waiter
	off  int64
	need int
	wait bool // WAIT: the reply is the count
}

// blockForAcks holds the replies of the commands from start (at out[mark:])
// until need replicas acknowledged off, or the timeout passes.
func (c *client) blockForAcks(off int64, need int, mark, ncmds int, deadline int64, wait bool) {
	var replies []byte
	if !wait {
		replies = append(replies, c.out[mark:]...)
		c.out = c.out[:mark]
	}
	timedOut := func(c *client) {
		if wait {
			c.intReply(int64(c.srv.ackedCount(off)))
			return
		}
		for i := 0; i < ncmds; i++ {
			c.errReply(errUnacked)
		}
	}
	c.block(nil, deadline, nil, timedOut)
	w := c.blocked
	w.sh.out = append(w.sh.out, replies...)
	aw := &ackWaiter{w: w, off: off, need: need, wait: wait}
	r := &c.srv.repl
	r.mu.Lock()
	r.waiters = append(r.waiters, aw)
	r.mu.Unlock()
	c.srv.wakeAckWaiters() // the acknowledgement may have come meanwhile
}

// wakeAckWaiters releases the waiters whose acknowledgements came, and
// forgets those that timed out or left.
func (s *Server) wakeAckWaiters() {
	r := &s.repl
	r.mu.Lock()
	if len(r.waiters) == 0 {
		r.mu.Unlock()
		return
	}
	var ready []*ackWaiter
	keep := r.waiters[:0]
	for _, aw := range r.waiters {
		n := s.ackedCount(aw.off)
		b := &s.blocks
		b.mu.Lock()
		switch {
		case aw.w.state != waitWaiting:
		case n >= aw.need:
			aw.w.state = waitServed
			b.removeLocked(aw.w)
			if aw.wait {
				aw.w.sh.intReply(int64(n))
			}
			ready = append(ready, aw)
		default:
			keep = append(keep, aw)
		}
		b.mu.Unlock()
	}
	clear(r.waiters[len(keep):])
	r.waiters = keep
	r.mu.Unlock()
	for _, aw := range ready {
		s.handBack([]*waiter{aw.w}, nil)
	}
}

// awaitAcks is serveFrom's min-acks check after a command or run: when it
// wrote and min-acks is on, its replies wait for the acknowledgements
// (true: the connection blocked).
func (c *client) awaitAcks(i int) bool {
	r := &c.srv.repl
	cr := &c.repl
	wrote := cr.woff > cr.w0
	cr.w0 = cr.woff
	if !wrote || !r.active.Load() || c.migRecv || c.inMulti {
		return false
	}
	need := int(r.minAcks.Load())
	if need <= 0 || r.role.Load() == roleReplica || c.srv.ackedCount(cr.woff) >= need {
		return false
	}
	mark := min(cr.mark, len(c.out))
	c.blockForAcks(cr.woff, need, mark, i-cr.start, time.Now().Add(c.srv.cfg.minAcksTimeout()).UnixMilli(), false)
	return true
}

// markUnit notes where the command or run about to be served starts.
func (c *client) markUnit(i int) {
	c.repl.mark, c.repl.start, c.repl.w0 = len(c.out), i, c.repl.woff
}

// becomeReplica makes the node a replica of primary: writes stop, its
// streams end, and a follower attaches to the primary.
func (s *Server) becomeReplica(primary string, epoch uint64) {
	r := &s.repl
	r.mu.Lock()
	f := r.follow
	r.primary, r.epoch = primary, max(r.epoch, epoch)
	r.gen.Add(1)
	r.role.Store(roleReplica)
	r.synced.Store(false)
	r.link.Store(linkConnect)
	nf := &replFollower{srv: s, primary: primary, stop: make(chan struct{}), done: make(chan struct{})}
	r.follow = nf
	r.mu.Unlock()
	s.replActive()
	if f != nil {
		f.end()
	}
	s.stopSources()
	s.wakeAckWaiters()
	s.log.Info("replica of "+primary, "epoch", epoch)
	go nf.run()
}

// becomePrimary makes the node a primary: the stream from its former
// primary is refused from now on, and its data and offset are kept.
func (s *Server) becomePrimary(epoch uint64) {
	r := &s.repl
	r.mu.Lock()
	f := r.follow
	r.follow = nil
	was := r.role.Load()
	r.primary, r.epoch = "", max(r.epoch, epoch)
	r.gen.Add(1)
	r.role.Store(rolePrimary)
	r.mu.Unlock()
	if f != nil {
		f.end()
	}
	s.replActive()
	if was == roleReplica {
		s.log.Info("promoted to primary", "epoch", epoch, "offset", r.offset.Load(), "synced", r.synced.Load())
	}
}

// replFollower is a replica's link to its primary: it asks the primary for
// a stream (REPL.ATTACH) and asks again when the stream falls silent.
type replFollower struct {
	srv     *Server
	primary string
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (f *replFollower) end() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}

func (f *replFollower) run() {
	defer close(f.done)
	s := f.srv
	r := &s.repl
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		r.link.Store(linkConnecting)
		err := f.attach()
		if err != nil {
			s.log.Warn("replication link to the primary failed", "primary", f.primary, "error", err)
		}
		r.link.Store(linkConnect)
		select {
		case <-f.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// attach asks the primary for a stream and watches it until it falls
// silent or the follower stops.
func (f *replFollower) attach() error {
	s := f.srv
	r := &s.repl
	nc, err := net.DialTimeout("tcp", f.primary, 2*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-f.stop:
			nc.Close()
		case <-done:
		}
	}()
	br := bufio.NewReader(nc)
	call := func(args ...string) error {
		var b []byte
		b = resp.AppendArray(b, len(args))
		for _, a := range args {
			b = resp.AppendBulkString(b, a)
		}
		_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Write(b); err != nil {
			return err
		}
		msg, err := readReply(br)
		if err == nil && msg != "" {
			err = errors.New(msg)
		}
		return err
	}
	if pw := s.cfg.RequirePass; pw != "" {
		if err := call("AUTH", pw); err != nil {
			return err
		}
	}
	_, port, _ := net.SplitHostPort(s.advertised())
	start := time.Now().UnixMilli()
	r.lastIO.Store(start)
	if err := call("REPL.ATTACH", port); err != nil {
		return err
	}
	r.link.Store(linkSync)
	tick := time.NewTicker(replHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return nil
		case <-tick.C:
		}
		if err := call("PING"); err != nil {
			return err
		}
		if time.Now().UnixMilli()-r.lastIO.Load() > replLinkTimeout.Milliseconds() {
			return errors.New("the primary's stream fell silent")
		}
	}
}

func (c Config) minAcksTimeout() time.Duration {
	if c.MinAcksTimeout > 0 {
		return c.MinAcksTimeout
	}
	return time.Second
}

func (c Config) replMaxLag() time.Duration {
	if c.ReplMaxLag > 0 {
		return c.ReplMaxLag
	}
	return 10 * time.Second
}

// stopRepl ends the follower and the streams (the node is closing).
func (s *Server) stopRepl() {
	r := &s.repl
	r.mu.Lock()
	f := r.follow
	r.follow = nil
	r.mu.Unlock()
	if f != nil {
		f.end()
	}
	s.stopSources()
}
