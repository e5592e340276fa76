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

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// Online move of a sub-range (docs/RESHARDING.md, "A move, step by step",
// steps 3-5 and 7). The source streams the range's keys to the target as
// key states: first every key of the range (the snapshot pass), then every
// key of the range written since the move started (catch-up), in the order
// of their first write since they were last sent. A key is sent as it is
// when it is sent (its type, contents and absolute expiry time; a missing
// key as a delete; a flush as a delete of the range), so the target
// converges on the source's state however often a key changes: once the
// range is fenced and the queue is empty after a write barrier, the target
// holds exactly the source's keys of the range.
//
// Why key states, not the engine's records: a collection's records (root,
// generation, element records) only mean something against the keydir
// that wrote them; replaying them on another node needs a raw-apply path
// in the engine that does not exist yet. The key state is read through the
// engine's read API and written on the target with its own write commands,
// in chunks, on one pipelined connection.

// migChunk is how many elements of a collection one command carries, so
// that a big collection is sent as many bounded commands.
const migChunk = 1000

// migChunkBytes ends a chunk early when its elements are this big.
const migChunkBytes = 1 << 20

// migInflight bounds the sent and not yet acknowledged items.
const migInflight = 4096

// errFenced is the reply to a write of a fenced range that waited the
// fence timeout.
const errFenced = "TRYAGAIN the key's range is fenced for a move; retry"

// posRange is a range of positions [lo,hi).
type posRange struct{ lo, hi float64 }

func (r posRange) has(p float64) bool { return r.lo <= p && p < r.hi }

// migrations is the node's moves: the streams it sends (sources), the
// drops it runs, and its fence.
type migrations struct {
	mu      sync.Mutex
	sources map[string]*migSource
	drops   map[string]*migDrop
	// tracking is the sources whose keys are tracked; replaced, never
	// mutated, so that the write path reads it without a lock.
	tracking atomic.Pointer[[]*migSource]
	// fence is the fenced ranges (fence.go); changed under mu.
	fence atomic.Pointer[fenceSet]
	// closed is closed when the node closes: fence watches end.
	closed    chan struct{}
	closeOnce sync.Once
	// watching is the fences whose timeout a goroutine watches (under mu).
	watching map[fenceRange]bool
}

// touched tells the sources that key of database db was written, from the
// writing transaction (so before it commits: see barrier): the key is sent
// whole.
func (m *migrations) touched(s *Server, db int, key []byte) {
	m.touchedAs(s, db, key, migWhole, 0, nil)
}

// active reports whether some source tracks writes: the write path looks
// further only then.
func (m *migrations) active() bool {
	tp := m.tracking.Load()
	return tp != nil && len(*tp) > 0
}

// How a write changed a key, for its source's queue.
const (
	migWhole = iota // anything: the key is sent as it is
	migElem         // one field or member of a hash, set or sorted set
	migMeta         // its expiry only
)

// touchedAs is touched for a write of the given kind: for migElem, elem
// of a collection of type t.
func (m *migrations) touchedAs(s *Server, db int, key []byte, how int, t bitcask.Type, elem []byte) {
	tp := m.tracking.Load()
	if tp == nil || len(*tp) == 0 {
		return
	}
	p := s.positionOf(key)
	for _, j := range *tp {
		if j.rng.has(p) {
			j.enqueue(db, string(key), how, t, elem)
		}
	}
}

// flushed tells the sources that database db (every database for db < 0)
// was flushed.
func (m *migrations) flushed(db int) {
	tp := m.tracking.Load()
	if tp == nil {
		return
	}
	for _, j := range *tp {
		j.enqueueFlush(db)
	}
}

func (m *migrations) setTracking() {
	var l []*migSource
	for _, j := range m.sources {
		if !j.stopped.Load() {
			l = append(l, j)
		}
	}
	m.tracking.Store(&l)
}

// fenced returns the fence set and the fence of position p (nil when p
// is not fenced).
func (m *migrations) fenced(p float64) (*fenceSet, *fenceRange) {
	f := m.fence.Load()
	if f == nil {
		return nil, nil
	}
	return f, f.covers(p)
}

// keyFenced returns the fence a write of key must wait for, or nil.
func (c *client) keyFenced(key []byte) (*fenceSet, *fenceRange) {
	if c.srv.mig.fence.Load() == nil || c.migRecv {
		return nil, nil
	}
	return c.srv.mig.fenced(c.srv.positionOf(key))
}

// waitFenceRun holds a run of commands with a write to a fenced range until
// the fence is lifted or its timeout passes (the command then gets
// errFenced from checkKeys). It waits before the run is committed, so no
// write lock is held. A connection of an event loop does not wait: it
// would hold the loop's other connections, of other ranges, with it (and
// the SHARD.UNFENCE that would release it); its write gets TRYAGAIN at
// once (see docs/RESHARDING.md).
func (c *client) waitFenceRun(cmds []redcon.Command, sp []*cmdSpec) {
	if c.srv.mig.fence.Load() == nil || c.migRecv || c.loop != nil {
		return
	}
	var deadline time.Time
	for {
		var f *fenceSet
		var fr *fenceRange
		for i := range cmds {
			args := cmds[i].Args
			if sp[i] == nil || !sp[i].write {
				continue
			}
			for _, k := range sp[i].KeyIndexes(args) {
				if f, fr = c.keyFenced(args[k]); fr != nil {
					break
				}
			}
			if fr != nil {
				break
			}
		}
		if fr == nil {
			return
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(fr.timeout)
		}
		if !now.Before(deadline) {
			return
		}
		t := time.NewTimer(deadline.Sub(now))
		select {
		case <-f.done:
		case <-t.C:
		}
		t.Stop()
	}
}

// barrier returns once every transaction that was running when it was
// called has committed or failed: the touches of a transaction happen with
// the write lock held, so taking the lock once orders them before.
func (s *Server) barrier() error {
	return s.db.Update(func(*bitcask.Tx) error { return nil })
}

// migItem is one entry of a source's queue: a key of database db, or a
// flush of database db (every database for db < 0). A key is sent whole,
// or, when only elements of a collection and its expiry were written
// since it was last sent, as those elements and its expiry: a field
// written in a hash of a million is one HSET, not the hash again.
type migItem struct {
	db    int
	key   string
	flush bool
	whole bool
	// kind is the collection's type and elems its fields or members
	// written, when not whole; meta says its expiry changed.
	kind  bitcask.Type
	elems map[string]struct{}
	meta  bool
}

func itemName(db int, key string) string { return strconv.Itoa(db) + ":" + key }

// migSource is one stream of a range to a target.
type migSource struct {
	srv    *Server
	id     string
	rng    posRange
	target string
	rate   float64 // bytes per second, 0 = unlimited
	seq0   uint64

	mu      sync.Mutex
	queue   []*migItem
	queued  map[string]*migItem
	phase   string
	errMsg  string
	lastSeq uint64 // the stream seq of the last item sent once fenced and drained

	records, bytes    atomic.Int64
	sentSeq, ackedSeq atomic.Uint64
	inflight          atomic.Int64
	drained           atomic.Bool
	stopped           atomic.Bool
	kick              chan struct{}
	stop              chan struct{}
	conn              net.Conn
	done              chan struct{}
}

// enqueue queues key of database db, written as how says (migWhole,
// migElem of elem in a collection of type t, migMeta), once, in the order
// of its first write since it was last sent.
func (j *migSource) enqueue(db int, key string, how int, t bitcask.Type, elem []byte) {
	name := itemName(db, key)
	j.mu.Lock()
	it := j.queued[name]
	if it == nil {
		it = &migItem{db: db, key: key, kind: t}
		j.queued[name] = it
		j.queue = append(j.queue, it)
		if how == migWhole {
			it.whole = true
		}
	}
	switch {
	case it.whole:
	case how == migWhole || how == migElem && it.kind != t && it.elems != nil:
		it.whole, it.elems, it.meta = true, nil, false
	case how == migMeta:
		it.meta = true
	default:
		if it.elems == nil {
			it.elems = make(map[string]struct{})
		}
		it.kind = t
		it.elems[string(elem)] = struct{}{}
	}
	j.mu.Unlock()
	j.poke()
}

// enqueueFlush queues a flush: the keys of the flushed database queued
// before it are gone with it, so they leave the queue and only the writes
// after the flush are sent after it.
func (j *migSource) enqueueFlush(db int) {
	j.mu.Lock()
	q := j.queue[:0]
	for _, it := range j.queue {
		if db < 0 || it.db == db {
			if !it.flush {
				delete(j.queued, itemName(it.db, it.key))
			}
			continue
		}
		q = append(q, it)
	}
	clear(j.queue[len(q):])
	j.queue = append(q, &migItem{db: db, flush: true})
	j.mu.Unlock()
	j.poke()
}

func (j *migSource) poke() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

func (j *migSource) take() []*migItem {
	j.mu.Lock()
	q := j.queue
	j.queue = nil
	clear(j.queued)
	j.mu.Unlock()
	return q
}

// lag is the records waiting to be sent, counted as the stream sends
// them: a whole collection in chunks of migChunk elements, written
// elements in chunks too, so that a big collection queued whole keeps the
// lag above the fence's threshold until it is sent (the fence never waits
// for one), plus the sent records not yet acknowledged.
func (j *migSource) lag() int64 {
	type queued struct {
		db    int
		key   string
		elems int
	}
	j.mu.Lock()
	n := len(j.queue)
	var whole []queued
	var lag int64
	if n <= 4096 { // a longer queue is above any fence threshold anyway
		for _, it := range j.queue {
			switch {
			case it.whole:
				whole = append(whole, queued{db: it.db, key: it.key})
			case it.flush:
				lag++
			default:
				lag += 1 + int64(len(it.elems)/migChunk)
			}
		}
	} else {
		lag = int64(n)
	}
	j.mu.Unlock()
	// Outside the lock, which the write path takes.
	now := time.Now().UnixMilli()
	for _, q := range whole {
		lag += 1 + int64(j.srv.collLen(q.db, []byte(q.key), now)/migChunk)
	}
	return lag + j.inflight.Load()
}

// collLen is the number of elements of the collection at key (0 for a
// string or a missing key).
func (s *Server) collLen(db int, key []byte, now int64) int {
	d := s.db.Select(db)
	h := bitcask.Hash(key)
	m, ok := d.MetaOfHashed(h, key, now)
	if !ok {
		return 0
	}
	var n int
	switch m.Type {
	case bitcask.TypeHash:
		n, _ = d.HashLen(h, key, now)
	case bitcask.TypeSet:
		n, _ = d.SetCard(h, key, now)
	case bitcask.TypeZSet:
		n, _ = d.ZSetCard(h, key, now)
	case bitcask.TypeList:
		n, _ = d.ListLen(h, key, now)
	}
	return n
}

func (j *migSource) setPhase(p string) {
	j.mu.Lock()
	if j.phase != "failed" && j.phase != "aborted" {
		j.phase = p
	}
	j.mu.Unlock()
}

func (j *migSource) fail(err error) {
	j.mu.Lock()
	if j.phase != "aborted" {
		j.phase, j.errMsg = "failed", err.Error()
	}
	j.mu.Unlock()
	j.srv.log.Warn("migration failed", "id", j.id, "error", err)
}

// fencedWhole reports whether the node's fence covers the source's range.
func (j *migSource) fencedWhole() bool {
	f := j.srv.mig.fence.Load()
	if f == nil {
		return false
	}
	for _, r := range f.ranges {
		if r.lo <= j.rng.lo && j.rng.hi <= r.hi {
			return true
		}
	}
	return false
}

// migWire is the source's side of the connection to the target.
type migWire struct {
	j       *migSource
	w       *bufio.Writer
	db      int
	pending chan migPending
	limit   time.Time // the rate limit's clock
	sent    int64
	start   time.Time
	scratch []byte
}

type migPending struct {
	seq uint64
	n   int
}

func (j *migSource) run() {
	defer close(j.done)
	defer func() {
		if j.conn != nil {
			j.conn.Close()
		}
	}()
	nc, err := net.DialTimeout("tcp", j.target, 5*time.Second)
	if err != nil {
		j.fail(fmt.Errorf("connecting to the target: %w", err))
		return
	}
	j.mu.Lock()
	if j.stopped.Load() {
		j.mu.Unlock()
		nc.Close()
		return
	}
	j.conn = nc
	j.mu.Unlock()
	wr := &migWire{j: j, w: bufio.NewWriterSize(nc, 256<<10), pending: make(chan migPending, migInflight), db: -1, start: time.Now()}
	readErr := make(chan error, 1)
	go func() { readErr <- j.readAcks(bufio.NewReaderSize(nc, 64<<10), wr.pending) }()
	n := 1
	if pw := j.srv.cfg.RequirePass; pw != "" {
		wr.cmd("AUTH", pw)
		n++
	}
	wr.cmd("MIGRATE.RECV", j.id)
	wr.item(n)
	if err := j.stream(wr, readErr); err != nil && !j.stopped.Load() {
		j.fail(err)
	}
}

// stream runs the snapshot pass and then catch-up until stopped.
func (j *migSource) stream(wr *migWire, readErr chan error) error {
	check := j.checker(readErr, "target")
	if err := j.srv.barrier(); err != nil {
		return err
	}
	if err := wr.sendSnapshot(check); err != nil {
		return err
	}
	if err := wr.flush(); err != nil {
		return err
	}
	j.setPhase("catchup")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := check(); err != nil {
			return err
		}
		fenced := j.fencedWhole()
		if !fenced {
			j.drained.Store(false)
		}
		if err := j.srv.barrier(); err != nil {
			return err
		}
		items := j.take()
		j.inflight.Store(int64(len(items)))
		for _, it := range items {
			if err := check(); err != nil {
				return err
			}
			if err := wr.sendItem(it); err != nil {
				return err
			}
			j.inflight.Add(-1)
		}
		if err := wr.flush(); err != nil {
			return err
		}
		if len(items) == 0 && fenced && !j.drained.Load() {
			j.mu.Lock()
			j.lastSeq = j.sentSeq.Load()
			j.mu.Unlock()
			j.drained.Store(true)
			j.setPhase("drained")
		} else if !fenced {
			j.setPhase("catchup")
		}
		if len(items) == 0 {
			select {
			case <-j.kick:
			case <-tick.C:
			case <-j.stop:
			}
		}
	}
}

var errStopped = errors.New("stopped")

// checker returns the stream's check between items: stopped, or the
// reader of the peer's replies failed.
func (j *migSource) checker(readErr chan error, peer string) func() error {
	return func() error {
		if j.stopped.Load() {
			return errStopped
		}
		select {
		case err := <-readErr:
			if err == nil {
				err = errors.New(peer + " closed the connection")
			}
			return err
		default:
		}
		return nil
	}
}

// readAcks reads the target's replies; an item is acknowledged once all
// its replies arrived, each after the target committed its write under its
// appendfsync policy.
func (j *migSource) readAcks(r *bufio.Reader, pending chan migPending) error {
	return readItemReplies(r, pending, "target", func(seq uint64) {
		if seq > 0 {
			j.ackedSeq.Store(seq)
		}
	})
}

// readItemReplies reads the replies to the stream's items in order, and
// calls acked with an item's seq once all its replies arrived; an error
// reply from the peer ends the stream.
func readItemReplies(r *bufio.Reader, pending chan migPending, peer string, acked func(seq uint64)) error {
	for p := range pending {
		for i := 0; i < p.n; i++ {
			line, err := readReply(r)
			if err != nil {
				return err
			}
			if line != "" {
				return errors.New(peer + " replied: " + line)
			}
		}
		acked(p.seq)
	}
	return nil
}

// readReply reads one reply and returns its error text ("" for a reply
// that is not an error).
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 {
		return "", errors.New("short reply from the target")
	}
	switch line[0] {
	case '-':
		return string(line[1 : len(line)-2]), nil
	case '+', ':':
		return "", nil
	case '$':
		n, _ := strconv.Atoi(string(line[1 : len(line)-2]))
		if n >= 0 {
			if _, err := r.Discard(n + 2); err != nil {
				return "", err
			}
		}
		return "", nil
	case '*':
		n, _ := strconv.Atoi(string(line[1 : len(line)-2]))
		for i := 0; i < n; i++ {
			if msg, err := readReply(r); err != nil || msg != "" {
				return msg, err
			}
		}
		return "", nil
	}
	return "", errors.New("unexpected reply from the target: " + string(line))
}

func (w *migWire) cmd(args ...string) {
	b := resp.AppendArray(w.scratch[:0], len(args))
	for _, a := range args {
		b = resp.AppendBulkString(b, a)
	}
	w.w.Write(b)
	w.sent += int64(len(b))
	w.keep(b)
}

// keep keeps b's array as the scratch buffer unless it grew big.
func (w *migWire) keep(b []byte) {
	if cap(b) <= 1<<20 {
		w.scratch = b[:0]
	}
}

// cmdb is cmd for byte-slice arguments after a name.
func (w *migWire) cmdb(name string, args [][]byte) {
	b := resp.AppendArray(w.scratch[:0], len(args)+1)
	b = resp.AppendBulkString(b, name)
	for _, a := range args {
		if len(a) >= 64<<10 { // a big value goes to the socket as it is
			b = resp.AppendBulkHeader(b, len(a))
			w.w.Write(b)
			w.w.Write(a)
			w.sent += int64(len(b) + len(a))
			b = append(b[:0], '\r', '\n')
			continue
		}
		b = resp.AppendBulk(b, a)
	}
	w.w.Write(b)
	w.sent += int64(len(b))
	w.keep(b)
}

// item ends an item of n commands: it is queued for its acknowledgement,
// and the rate limit waits when the stream is ahead of it.
func (w *migWire) item(n int) error {
	seq := w.j.sentSeq.Add(1)
	p := migPending{seq: seq, n: n}
	select {
	case w.pending <- p:
	default:
		if err := w.w.Flush(); err != nil { // the reader waits for these replies
			return err
		}
		select {
		case w.pending <- p:
		case <-w.j.stop:
			return errStopped
		}
	}
	w.j.records.Add(1)
	w.j.bytes.Store(w.sent)
	if w.j.rate > 0 {
		ahead := time.Duration(float64(w.sent)/w.j.rate*float64(time.Second)) - time.Since(w.start)
		if ahead > 5*time.Millisecond {
			if err := w.w.Flush(); err != nil {
				return err
			}
			select {
			case <-time.After(ahead):
			case <-w.j.stop:
				return errStopped
			}
		}
	}
	return nil
}

func (w *migWire) flush() error { return w.w.Flush() }

func (w *migWire) selectDB(db int) int {
	if w.db == db {
		return 0
	}
	w.db = db
	w.cmd("SELECT", strconv.Itoa(db))
	return 1
}

// sendSnapshot sends every key of the range of every database as it is
// now (the snapshot pass), checking check between keys.
func (w *migWire) sendSnapshot(check func() error) error {
	s, rng := w.j.srv, w.j.rng
	for db := 0; db < bitcask.NumDBs; db++ {
		var keys []string
		s.db.Select(db).Range(func(key []byte, _ bitcask.Meta) bool {
			if rng.has(s.positionOf(key)) {
				keys = append(keys, string(key))
			}
			return true
		})
		for _, k := range keys {
			if err := check(); err != nil {
				return err
			}
			if err := w.sendKey(db, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendItem sends a queued item: a flush, a key whole as it is now, or
// the elements and expiry written of it.
func (w *migWire) sendItem(it *migItem) error {
	switch {
	case it.flush:
		return w.sendFlush(it.db)
	case it.whole:
		return w.sendKey(it.db, it.key)
	default:
		return w.sendElems(it)
	}
}

// sendFlush deletes the range's keys of database db (every database for
// db < 0) on the target.
func (w *migWire) sendFlush(db int) error {
	r := w.j.rng
	lo, hi := rangemap.FormatPosition(r.lo), rangemap.FormatPosition(r.hi)
	if db < 0 {
		w.cmd("MIGRATE.FLUSHRANGE", lo, hi)
	} else {
		w.cmd("MIGRATE.FLUSHRANGE", lo, hi, strconv.Itoa(db))
	}
	return w.item(1)
}

// sendKey sends key of database db as it is now.
func (w *migWire) sendKey(db int, key string) error {
	d := w.j.srv.db.Select(db)
	k := []byte(key)
	h := bitcask.Hash(k)
	now := time.Now().UnixMilli()
	n := w.selectDB(db)
	m, ok := d.MetaOfHashed(h, k, now)
	var err error
	if ok {
		n, err = w.sendValue(d, h, k, m, now, n)
	}
	if !ok || errors.Is(err, bitcask.ErrNotFound) {
		w.cmd("DEL", key)
		n++
		err = nil
	} else if errors.Is(err, bitcask.ErrWrongType) {
		// Rewritten with another type meanwhile: that write queued
		// the key again.
		err = nil
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return w.item(n)
}

// sendElems sends what it says was written of a key since it was last
// sent: each element as it is now (HSET or HDEL, SADD or SREM, ZADD or
// ZREM, in chunks), then its expiry. A key gone is a DEL; a key of
// another type than the elements' is sent whole.
func (w *migWire) sendElems(it *migItem) error {
	d := w.j.srv.db.Select(it.db)
	k := []byte(it.key)
	h := bitcask.Hash(k)
	now := time.Now().UnixMilli()
	n := w.selectDB(it.db)
	m, ok := d.MetaOfHashed(h, k, now)
	if !ok {
		w.cmd("DEL", it.key)
		return w.item(n + 1)
	}
	if len(it.elems) > 0 && m.Type != it.kind {
		return w.sendKey(it.db, it.key)
	}
	var set, del [][]byte
	for e := range it.elems {
		el := []byte(e)
		var err error
		present := false
		switch it.kind {
		case bitcask.TypeHash:
			var v []byte
			v, err = d.HashGet(nil, h, k, el, now)
			if err == nil {
				present = true
				set = append(set, el, v)
			}
		case bitcask.TypeSet:
			present, err = d.SetIsMember(h, k, el, now)
			if present {
				set = append(set, el)
			}
		case bitcask.TypeZSet:
			var score float64
			score, present, err = d.ZSetScore(h, k, el, now)
			if present {
				set = append(set, []byte(strconv.FormatFloat(score, 'g', -1, 64)), el)
			}
		}
		switch {
		case errors.Is(err, bitcask.ErrWrongType):
			return w.sendKey(it.db, it.key) // rewritten meanwhile
		case err != nil && !errors.Is(err, bitcask.ErrNotFound):
			return err
		case !present:
			del = append(del, el)
		}
	}
	setCmd, delCmd, per := "HSET", "HDEL", 2
	switch it.kind {
	case bitcask.TypeSet:
		setCmd, delCmd, per = "SADD", "SREM", 1
	case bitcask.TypeZSet:
		setCmd, delCmd = "ZADD", "ZREM"
	}
	var err error
	if n, err = w.chunks(setCmd, k, set, per, n); err != nil {
		return err
	}
	if n, err = w.chunks(delCmd, k, del, 1, n); err != nil {
		return err
	}
	if it.meta {
		if m.ExpireAt > 0 {
			w.cmd("PEXPIREAT", it.key, strconv.FormatInt(m.ExpireAt, 10))
		} else {
			w.cmd("PERSIST", it.key)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return w.item(n)
}

// chunks writes name key args... in commands of at most migChunk
// elements of per arguments each (or migChunkBytes), each command an item
// with the n commands written before it; it returns the commands not yet
// in an item.
func (w *migWire) chunks(name string, k []byte, args [][]byte, per, n int) (int, error) {
	for len(args) > 0 {
		end, size := 0, 0
		for end < len(args) && end < migChunk*per && size <= migChunkBytes {
			for i := 0; i < per; i++ {
				size += len(args[end+i])
			}
			end += per
		}
		w.cmdb(name, append([][]byte{k}, args[:end]...))
		if err := w.item(n + 1); err != nil {
			return 0, err
		}
		n = 0
		args = args[end:]
	}
	return n, nil
}

// sendValue writes the commands that make key on the target what m and
// the stored value say, and returns how many are not yet in an item; the
// chunks of a collection are items of their own. n is the commands
// already written for the key (a SELECT).
func (w *migWire) sendValue(d *bitcask.DB, h uint64, k []byte, m bitcask.Meta, now int64, n int) (int, error) {
	key := string(k)
	expire := func() {
		if m.ExpireAt > 0 {
			w.cmd("PEXPIREAT", key, strconv.FormatInt(m.ExpireAt, 10))
			n++
		}
	}
	var args [][]byte
	size := 0
	var itemErr error
	chunk := func(name string, force bool, elems ...[]byte) {
		if len(args) == 0 {
			args = append(args, k)
		}
		for _, e := range elems {
			args = append(args, e)
			size += len(e)
		}
		if force || len(args) > migChunk || size > migChunkBytes {
			if len(args) > 1 {
				w.cmdb(name, args)
				n++
				// Each chunk is acknowledged on its own, so that the
				// lag of a big collection is counted in chunks.
				if err := w.item(n); err != nil && itemErr == nil {
					itemErr = err
				}
				n = 0
			}
			args, size = args[:0], 0
		}
	}
	switch m.Type {
	case bitcask.TypeString:
		v, _, err := d.GetAppendHashed(nil, h, k, now)
		if err != nil {
			return n, err
		}
		if m.ExpireAt > 0 {
			w.cmdb("SET", [][]byte{k, v, []byte("PXAT"), []byte(strconv.FormatInt(m.ExpireAt, 10))})
		} else {
			w.cmdb("SET", [][]byte{k, v})
		}
		return n + 1, nil
	case bitcask.TypeHash:
		// The fields first (in memory), then each value alone: reading a
		// million values at once would hold the key's part of the key
		// directory, and every write to it, for the whole read. A field
		// written meanwhile is queued and sent again.
		fs, err := d.HashGetAll(h, k, false, now)
		if err != nil {
			return n, err
		}
		w.cmd("DEL", key)
		n++
		for _, f := range fs {
			v, err := d.HashGet(nil, h, k, f.Field, now)
			if errors.Is(err, bitcask.ErrNotFound) {
				continue // deleted since: the HDEL is queued
			}
			if err != nil {
				break // rewritten as another type: queued whole
			}
			chunk("HSET", false, f.Field, v)
		}
		chunk("HSET", true)
	case bitcask.TypeSet:
		ms, err := d.SetMembers(h, k, now)
		if err != nil {
			return n, err
		}
		w.cmd("DEL", key)
		n++
		for _, e := range ms {
			chunk("SADD", false, e)
		}
		chunk("SADD", true)
	case bitcask.TypeZSet:
		zs, err := d.ZSetRange(h, k, &bitcask.ZRange{By: bitcask.ZByRank, Start: 0, Stop: -1, Count: -1}, now)
		if err != nil {
			return n, err
		}
		w.cmd("DEL", key)
		n++
		for _, z := range zs {
			chunk("ZADD", false, []byte(strconv.FormatFloat(z.Score, 'g', -1, 64)), z.Member)
		}
		chunk("ZADD", true)
	case bitcask.TypeList:
		var vals [][]byte
		err := d.ListWalk(h, k, 0, false, now, func(_ int, v []byte) bool {
			vals = append(vals, append([]byte(nil), v...))
			return true
		})
		if err != nil {
			return n, err
		}
		w.cmd("DEL", key)
		n++
		for _, v := range vals {
			chunk("RPUSH", false, v)
		}
		chunk("RPUSH", true)
	default:
		return n, fmt.Errorf("key %q has a type the move does not know (%d)", key, m.Type)
	}
	if itemErr != nil {
		return n, itemErr
	}
	expire()
	return n, nil
}

// positionOf is key's position under the node's placement mode.
func (s *Server) positionOf(key []byte) float64 {
	a := s.assign.Load()
	hashTags := a != nil && a.HashTags
	return rangemap.PositionOfHash(rangemap.PlacementOfHashed(key, bitcask.Hash(key), hashTags))
}

// migDrop deletes the keys of a range in the background, a batch per
// transaction, at most rate keys a second.
type migDrop struct {
	id      string
	rng     posRange
	rate    float64
	deleted atomic.Int64
	phase   atomic.Value // string
	errMsg  atomic.Value // string
	stop    chan struct{}
	done    chan struct{}
}

const migDropBatch = 512

func (s *Server) runDrop(d *migDrop) {
	defer close(d.done)
	start := time.Now()
	for db := 0; db < bitcask.NumDBs; db++ {
		v := s.db.Select(db)
		var keys [][]byte
		v.Range(func(key []byte, _ bitcask.Meta) bool {
			if d.rng.has(s.positionOf(key)) {
				keys = append(keys, append([]byte(nil), key...))
			}
			return true
		})
		for len(keys) > 0 {
			select {
			case <-d.stop:
				d.phase.Store("aborted")
				return
			default:
			}
			b := keys[:min(migDropBatch, len(keys))]
			keys = keys[len(b):]
			err := v.Update(func(tx *bitcask.Tx) error {
				for _, k := range b {
					if _, err := tx.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				d.errMsg.Store(err.Error())
				d.phase.Store("failed")
				return
			}
			n := d.deleted.Add(int64(len(b)))
			if d.rate > 0 {
				if ahead := time.Duration(float64(n)/d.rate*float64(time.Second)) - time.Since(start); ahead > 0 {
					select {
					case <-time.After(ahead):
					case <-d.stop:
						d.phase.Store("aborted")
						return
					}
				}
			}
		}
	}
	d.phase.Store("done")
}
