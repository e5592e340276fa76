package shardnode

import (
	"math"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP), as Redis 7.0's blocked.c has them.
//
// A blocking pop whose keys all hold nothing registers a waiter in the
// node's blockRegistry, under each of its keys, in the order clients
// blocked, and its connection stops: its later pipelined commands wait
// (the pipeline stays in c.batch, as a held one does, replymem.go) and its
// socket is watched only for the client leaving. Every write that modifies
// a key tells the registry (txStore.touch); a key with waiters becomes
// ready. The goroutine that runs the writing transaction then serves the
// ready keys inside that same transaction, right after the writing command
// (or after EXEC's queue), as Redis serves them after the command and
// before the next one: each waiter of the key in turn, its pop executed on
// a shadow client of its own (the waiter's reply is built there, never in
// the blocked connection's buffers, which belong to its event loop), until
// the key is empty. A pop that moves (BLMOVE) touches its destination,
// which may serve the destination's waiters in turn. The served waiters are
// handed back to their connections once the transaction is committed (and
// under appendfsync always durable), so no reply tells of a pop that could
// still be lost; the connection appends the reply and goes on with its
// pipeline.
//
// A waiter of a key that now holds another type stays blocked, as in Redis
// 7.0. A timeout (0 blocks for ever, fractional seconds are milliseconds)
// unblocks with a null array, and inside MULTI a blocking pop is its
// non-blocking form (a null reply when there is nothing), as Redis's
// CLIENT_DENY_BLOCKING.
//
// A client that leaves while blocked must lose nothing. Its event loop
// watches the blocked socket for EPOLLRDHUP and takes the waiter out of
// the registry when the client's FIN comes; and before serving a waiter,
// the serving goroutine polls the socket for a FIN or reset, and skips the
// waiter (leaving it to its loop) when the client is gone. What remains is
// a client that leaves after that poll and before the reply reaches it:
// the element is popped and its reply lost with the connection (a window
// of one transaction's commit).

// Waiter states. A waiter is waiting in the registry, being served by the
// goroutine of a transaction (serving), or out of the registry: served (a
// reply in its shadow client) or cancelled (timed out, or its client gone).
const (
	waitWaiting uint8 = iota
	waitServing
	waitServed
	waitCancelled
)

// Reasons a waiter's connection asked for it to be cancelled while it was
// being served (waiter.abort).
const (
	abortNone uint8 = iota
	abortTimeout
	abortGone
	// CLIENT UNBLOCK: the timeout's reply, or the UNBLOCKED error.
	abortUnblocked
	abortUnblockedErr
)

// Results of a waiter's serve function.
const (
	servePopped = iota // popped (or replied an error): the waiter is done
	serveEmpty         // the key is empty: later waiters of it cannot be served either
	serveSkip          // the key holds another type: this waiter stays blocked
)

// waiter is one blocked client.
type waiter struct {
	c  *client
	sh *client // the shadow client the pop runs on when served
	fd int     // the connection's descriptor when it blocked (-1: none), for the liveness poll
	db int
	// keys are the registry's names of the waited keys (watchKey).
	keys []string
	// deadline is the timeout in Unix milliseconds, 0 for none.
	deadline int64
	// serve pops from key for the waiter, replying into sh.out.
	serve func(sh *client, key []byte) int
	// timedOut replies the timeout's null on c.
	timedOut func(c *client)
	// state and abort are guarded by blockRegistry.mu.
	state uint8
	abort uint8
	// wake gets the waiter back on a connection with a goroutine of its
	// own (an event loop's connection is handed back through the loop).
	wake chan struct{}
	// failed: the transaction that served the waiter failed; its reply is
	// the storage error.
	failed error
	// listed: in its event loop's blockList (blocking_linux.go).
	listed bool
}

// blockRegistry is the node's index of blocked clients by key.
type blockRegistry struct {
	// n is the number of keys with waiters, readyN the number of ready
	// keys: a write reads n and nothing else while no one is blocked.
	n      atomic.Int64
	readyN atomic.Int64
	// clients is the number of clients blocked (INFO blocked_clients).
	clients atomic.Int64

	mu       sync.Mutex
	keys     map[string][]*waiter
	ready    []string
	readySet map[string]struct{}
	// served are the waiters served (or cancelled while being served) in
	// the transaction running now; its goroutine takes them (takeServed)
	// and hands them back once the transaction is committed.
	served []*waiter
}

// touch makes key of database db ready if clients wait on it. It runs
// inside the writing transaction.
func (r *blockRegistry) touch(db int, key []byte) {
	if r.n.Load() == 0 {
		return
	}
	var buf [64]byte
	name := watchKey(buf[:0], db, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[string(name)]; !ok {
		return
	}
	if _, ok := r.readySet[string(name)]; ok {
		return
	}
	if r.readySet == nil {
		r.readySet = make(map[string]struct{})
	}
	k := string(name)
	r.readySet[k] = struct{}{}
	r.ready = append(r.ready, k)
	r.readyN.Store(int64(len(r.ready)))
}

// add registers w under each of its keys, behind the waiters already there.
func (r *blockRegistry) add(w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string][]*waiter)
	}
	for _, k := range w.keys {
		if !slices.Contains(r.keys[k], w) { // a key named twice waits once
			r.keys[k] = append(r.keys[k], w)
		}
	}
	r.n.Store(int64(len(r.keys)))
	r.clients.Add(1)
}

// removeLocked takes w out of the index of each of its keys.
func (r *blockRegistry) removeLocked(w *waiter) {
	for _, k := range w.keys {
		ws := r.keys[k]
		if i := slices.Index(ws, w); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(r.keys, k)
		} else {
			r.keys[k] = ws
		}
	}
	r.n.Store(int64(len(r.keys)))
	r.clients.Add(-1)
}

// cancel takes w out of the registry for reason (abortTimeout, abortGone)
// and reports true, when it is waiting. A waiter being served is marked
// instead: its serving goroutine hands it back, served or cancelled, and
// cancel reports false. A waiter already out of the registry reports false.
func (r *blockRegistry) cancel(w *waiter, reason uint8) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch w.state {
	case waitWaiting:
		w.state = waitCancelled
		w.abort = reason
		r.removeLocked(w)
		return true
	case waitServing:
		w.abort = reason
	}
	return false
}

// unblockID takes the waiter of the client whose id is id out of the
// registry for CLIENT UNBLOCK (reason abortUnblocked or abortUnblockedErr)
// and hands it back to its connection; it reports whether the client was
// waiting. A waiter being served at that moment is left to its serving (0,
// as in Redis for a client already unblocked): Redis runs both on one
// thread, so only here can the two meet.
func (s *Server) unblockID(id int64, reason uint8) bool {
	r := &s.blocks
	if r.clients.Load() == 0 {
		return false
	}
	r.mu.Lock()
	var found *waiter
	for _, ws := range r.keys {
		for _, w := range ws {
			if w.c.sess.ID == id && w.state == waitWaiting {
				found = w
				break
			}
		}
		if found != nil {
			break
		}
	}
	if found != nil {
		found.state = waitCancelled
		found.abort = reason
		r.removeLocked(found)
	}
	r.mu.Unlock()
	if found == nil {
		return false
	}
	s.handBack([]*waiter{found}, nil)
	return true
}

// takeServed returns the waiters the running transaction served, for its
// goroutine to hand back once it is committed.
func (r *blockRegistry) takeServed() []*waiter {
	if r.n.Load() == 0 && len(r.served) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.served
	r.served = nil
	return out
}

// serveReady serves the waiters of the ready keys inside tx, a transaction
// of the node's database (any of its databases: each waiter's is selected).
// Only one transaction runs at a time, so the waiters are served by one
// goroutine at a time, in the order they blocked.
func (s *Server) serveReady(tx *bitcask.Tx) {
	r := &s.blocks
	for r.readyN.Load() > 0 {
		r.mu.Lock()
		if len(r.ready) == 0 {
			r.mu.Unlock()
			return
		}
		name := r.ready[0]
		r.ready = r.ready[:copy(r.ready, r.ready[1:])]
		delete(r.readySet, name)
		r.readyN.Store(int64(len(r.ready)))
		ws := slices.Clone(r.keys[name])
		r.mu.Unlock()
		key := []byte(name[1:])
		for _, w := range ws {
			r.mu.Lock()
			if w.state != waitWaiting {
				r.mu.Unlock()
				continue
			}
			w.state = waitServing
			r.mu.Unlock()
			res, gone := serveSkip, peerGone(w.fd)
			if !gone {
				sh := w.sh
				sh.txs.tx = tx.Select(w.db)
				sh.st = &sh.txs
				res = w.serve(sh, key)
				sh.txs.tx, sh.st = nil, nil
			}
			r.mu.Lock()
			switch {
			case res == servePopped:
				w.state = waitServed
				r.removeLocked(w)
				r.served = append(r.served, w)
			case w.abort != abortNone:
				w.state = waitCancelled
				r.removeLocked(w)
				r.served = append(r.served, w)
			default:
				// Left for the client's loop, which sees it leave
				// (gone), or still waiting (another type, or empty).
				w.state = waitWaiting
			}
			r.mu.Unlock()
			if res == serveEmpty {
				break
			}
		}
	}
}

// handBack gives the waiters served by a transaction back to their
// connections once it is committed; err is the transaction's failure, which
// becomes the served waiters' reply.
func (s *Server) handBack(ws []*waiter, err error) {
	for _, w := range ws {
		if err != nil && w.state == waitServed {
			w.failed = err
		}
		if l := w.c.loop; l != nil {
			l.unblocked(w)
		} else {
			w.wake <- struct{}{}
		}
	}
}

// peerGone reports whether the client of socket fd has closed its side or
// reset the connection (a poll that does not wait).
func peerGone(fd int) bool {
	if fd < 0 {
		return false
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(p, 0)
	if err != nil || n == 0 {
		return false
	}
	return p[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
}

// shadow returns the client a waiter of c is served on: the same server
// and protocol, buffers of its own.
func (c *client) shadow() *client {
	sh := &client{srv: c.srv, fd: -1}
	sh.sess.Proto = c.sess.Proto
	sh.sess.Authed = true
	sh.now = c.now
	sh.txs = txStore{rc: c.srv.cache, c: sh, watches: &c.srv.watches}
	sh.dbs = dbStore{db: c.srv.db, rc: c.srv.cache, c: sh}
	return sh
}

// block makes c wait on keys until deadline (Unix milliseconds, 0: for
// ever): serve pops for it when one of them is written, timedOut replies
// at the timeout. Called by the blocking pop's handler inside its
// transaction, which registers the waiter before any later write.
func (c *client) block(keys [][]byte, deadline int64, serve func(sh *client, key []byte) int, timedOut func(c *client)) {
	w := &waiter{c: c, sh: c.shadow(), fd: c.fd, db: c.sess.DB(), deadline: deadline, serve: serve, timedOut: timedOut}
	if c.loop == nil {
		w.wake = make(chan struct{}, 1)
	}
	for _, k := range keys {
		w.keys = append(w.keys, string(watchKey(nil, w.db, k)))
	}
	c.srv.blocks.add(w)
	c.blocked = w
	c.sess.SetBlocked(true)
	c.hold() // the time blocked is not the command's (slow log, latency)
}

// unblock ends c's wait on w: the reply of a served waiter, or the
// timeout's null, is appended to c.out. It reports false when the client
// left (the caller closes the connection).
func (c *client) unblock(w *waiter) bool {
	c.blocked = nil
	c.sess.SetBlocked(false)
	c.resume()
	switch {
	case w.state == waitCancelled && w.abort == abortGone:
		return false
	case w.state == waitCancelled && w.abort == abortUnblockedErr:
		c.errReply(conncmd.UnblockedErr)
	case w.state == waitCancelled:
		w.timedOut(c)
	case w.failed != nil:
		c.storeErr(w.failed)
	default:
		c.out = append(c.out, w.sh.out...)
	}
	w.sh = nil
	return true
}

// noteBlocked makes the blocking pop, the command before c.next, the
// connection's last command for CLIENT LIST while it waits (the pipeline's
// last is noted when it ends).
func (c *client) noteBlocked() {
	if i := c.next - 1; i >= 0 && i < len(c.batch) && c.specBuf[i] != nil {
		c.sess.SetLastCommand(c.specBuf[i].Command, c.batch[i].Args, cmdtable.SideNode)
	}
}

// dropBlocked takes a closing connection's waiter out of the registry.
func (c *client) dropBlocked() {
	if w := c.blocked; w != nil {
		c.srv.blocks.cancel(w, abortGone)
		c.blocked = nil
		c.sess.SetBlocked(false)
	}
}

// parseTimeout parses a blocking command's timeout in seconds as Redis
// 7.0's getTimeoutFromObjectOrReply does (a long double, times 1000,
// rounded up to milliseconds, so -0.0009 is 0 and blocks for ever while
// 0.0009 is a millisecond): it returns the deadline in Unix milliseconds,
// 0 for none, and replies the error when the timeout is refused.
func (c *client) parseTimeout(b []byte) (int64, bool) {
	f, ok := parseLongDouble(b)
	if !ok {
		c.errReply("ERR timeout is not a float or out of range")
		return 0, false
	}
	ms := new(big.Float).SetPrec(longDoublePrec).Mul(f, big.NewFloat(1000))
	tval := int64(math.MinInt64) // C's conversion of a value out of range, infinity included
	if !ms.IsInf() {
		i, acc := ms.Int64()
		switch {
		case acc == big.Below && i == math.MaxInt64, acc == big.Above && i == math.MinInt64:
		case acc == big.Below:
			tval = i + 1 // ceill
		default:
			tval = i
		}
	}
	if tval < 0 {
		c.errReply("ERR timeout is negative")
		return 0, false
	}
	if tval == 0 {
		return 0, true
	}
	if tval > math.MaxInt64-c.now {
		return 0, true // beyond any clock: for ever, as Redis's overflowed deadline
	}
	return c.now + tval, true
}

// denyBlocking reports whether c runs inside EXEC, where a blocking pop
// must not block.
func (c *client) denyBlocking() bool { return c.inExec }

// Blocking pop handlers. Each checks its arguments in Redis's order,
// pops at once from the first key with something (a key of another type
// before it is WRONGTYPE), and otherwise blocks (or, inside EXEC, replies
// the null of its timeout).

// listLen is the length of the list at key for a serve function: -1 when
// it holds another type.
func listLen(sh *client, key []byte) int {
	n, err := sh.st.llen(key)
	if err != nil {
		return -1
	}
	return n
}

func serveResult(n int) int {
	if n < 0 {
		return serveSkip
	}
	return serveEmpty
}

// BLPOP/BRPOP key [key ...] timeout: [key, element].
func cmdBLPop(c *client, args [][]byte) { c.blockingPop(args, true) }
func cmdBRPop(c *client, args [][]byte) { c.blockingPop(args, false) }

func (c *client) blockingPop(args [][]byte, left bool) {
	deadline, ok := c.parseTimeout(args[len(args)-1])
	if !ok {
		return
	}
	keys := args[1 : len(args)-1]
	serve := func(sh *client, key []byte) int {
		if n := listLen(sh, key); n <= 0 {
			return serveResult(n)
		}
		vals, failed := sh.popList(key, left, 1)
		if !failed {
			sh.array(2)
			sh.bulk(key)
			sh.bulk(vals[0])
		}
		return servePopped
	}
	c.popOrBlock(keys, deadline, serve, (*client).nullArray, func(key []byte) (int, error) { return c.st.llen(key) })
}

// popOrBlock pops with serve from the first of keys that length reports
// non-empty, or blocks on them all.
func (c *client) popOrBlock(keys [][]byte, deadline int64, serve func(sh *client, key []byte) int, timedOut func(c *client), length func(key []byte) (int, error)) {
	for _, k := range keys {
		n, err := length(k)
		if err != nil {
			c.storeErr(err)
			return
		}
		if n > 0 {
			serve(c, k)
			return
		}
	}
	if c.denyBlocking() {
		timedOut(c)
		return
	}
	c.block(keys, deadline, serve, timedOut)
}

// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout.
func cmdBLMove(c *client, args [][]byte) {
	from, ok1 := parseWhere(args[3])
	to, ok2 := parseWhere(args[4])
	if !ok1 || !ok2 {
		c.errReply(errSyntax)
		return
	}
	c.blockingMove(args[1], args[2], args[5], from, to)
}

// BRPOPLPUSH source destination timeout.
func cmdBRPopLPush(c *client, args [][]byte) { c.blockingMove(args[1], args[2], args[3], false, true) }

func (c *client) blockingMove(src, dst, timeout []byte, from, to bool) {
	deadline, ok := c.parseTimeout(timeout)
	if !ok {
		return
	}
	serve := func(sh *client, key []byte) int {
		if n := listLen(sh, key); n <= 0 {
			return serveResult(n)
		}
		// A destination of another type is WRONGTYPE for the woken
		// client, with nothing moved, as in Redis.
		sh.move(key, dst, from, to)
		return servePopped
	}
	if c.denyBlocking() {
		// Inside MULTI, BLMOVE is LMOVE (a null bulk when there is
		// nothing); its timeout replies a null array, as Redis 7.0's
		// for every list pop.
		c.move(src, dst, from, to)
		return
	}
	c.popOrBlock([][]byte{src}, deadline, serve, (*client).nullArray, func(key []byte) (int, error) { return c.st.llen(key) })
}

// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count].
func cmdBLMPop(c *client, args [][]byte) {
	keys, left, count, ok := c.parseMPop(args[2:])
	if !ok {
		return
	}
	deadline, ok := c.parseTimeout(args[1])
	if !ok {
		return
	}
	serve := func(sh *client, key []byte) int {
		n := listLen(sh, key)
		if n <= 0 {
			return serveResult(n)
		}
		vals, failed := sh.popList(key, left, min(count, n))
		if !failed {
			sh.mpopReply(key, vals)
		}
		return servePopped
	}
	c.popOrBlock(keys, deadline, serve, (*client).nullArray, func(key []byte) (int, error) { return c.st.llen(key) })
}

// zsetLen is listLen for sorted sets.
func zsetLen(sh *client, key []byte) int {
	n, err := sh.st.zcard(key)
	if err != nil {
		return -1
	}
	return n
}

// BZPOPMIN/BZPOPMAX key [key ...] timeout: [key, member, score].
func cmdBZPop(c *client, args [][]byte) {
	deadline, ok := c.parseTimeout(args[len(args)-1])
	if !ok {
		return
	}
	max := eqFold(args[0], "bzpopmax")
	serve := func(sh *client, key []byte) int {
		if n := zsetLen(sh, key); n <= 0 {
			return serveResult(n)
		}
		ms, ok := sh.zpop(key, 1, max)
		if ok && len(ms) > 0 {
			sh.array(3)
			sh.bulk(key)
			sh.bulk(ms[0].Member)
			sh.score(ms[0].Score)
		}
		return servePopped
	}
	c.popOrBlock(args[1:len(args)-1], deadline, serve, (*client).nullArray, func(key []byte) (int, error) { return c.st.zcard(key) })
}

// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
func cmdBZMPop(c *client, args [][]byte) {
	keys, max, count, ok := c.parseZMPop(args[2:])
	if !ok {
		return
	}
	deadline, ok := c.parseTimeout(args[1])
	if !ok {
		return
	}
	serve := func(sh *client, key []byte) int {
		if n := zsetLen(sh, key); n <= 0 {
			return serveResult(n)
		}
		if ms, ok := sh.zpop(key, count, max); ok {
			sh.zmpopReply(key, ms)
		}
		return servePopped
	}
	c.popOrBlock(keys, deadline, serve, (*client).nullArray, func(key []byte) (int, error) { return c.st.zcard(key) })
}

// awaitWaiter waits, on a connection with a goroutine of its own, until w
// is handed back (served, or cancelled for its timeout or the client
// leaving), and returns it for unblock. The client leaving is seen by
// polling the socket, which the goroutine cannot watch otherwise while it
// holds its read (serveRaw); a connection without a descriptor is seen
// leaving only once its waiter is served or times out.
func (c *client) awaitWaiter(w *waiter) *waiter {
	var timeout <-chan time.Time
	if w.deadline > 0 {
		t := time.NewTimer(time.Until(time.UnixMilli(w.deadline)))
		defer t.Stop()
		timeout = t.C
	}
	poll := time.NewTicker(goneInterval)
	defer poll.Stop()
	for {
		select {
		case <-w.wake:
			return w
		case <-timeout:
			timeout = nil
			if c.srv.blocks.cancel(w, abortTimeout) {
				return w
			}
		case <-poll.C:
			// Shutdown closes a blocked connection as one that left.
			if (peerGone(w.fd) || c.srv.draining.Load()) && c.srv.blocks.cancel(w, abortGone) {
				return w
			}
		}
	}
}

// goneInterval is how often a blocked connection with a goroutine of its
// own looks for its client leaving.
const goneInterval = 20 * time.Millisecond
