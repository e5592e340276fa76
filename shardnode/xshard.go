package shardnode

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/xstate"
	"github.com/shardkv/shardkv/resp"
)

// Cross-shard transactions, the participant's and the primary's side
// (docs/TRANSACTIONS.md). A proxy coordinating a transaction over several
// shards sends each participant TX.PREPARE with that shard's commands; the
// node locks their keys, runs the commands against the current data inside
// a storage transaction that it then rolls back (the dry run), keeps the
// final state of every key they wrote, and writes that state to its
// transaction log, durable under the node's appendfsync (txcommit.go),
// before it replies the commands' replies. The
// keys stay locked until TX.COMMIT writes the kept states (or TX.ABORT
// drops them), so the replies and states computed at prepare are still
// true when they are applied, and writing a final state twice (recovery
// after a crash between the apply and the removal of the prepare record)
// changes nothing.
//
// The transaction log is a bitcask store of its own (txlog/ in the data
// directory, at the node's appendfsync): its keys are txids, so they can
// never collide with user keys, and merge, hints and recovery are the
// engine's.

// txLogDir is the transaction log's directory inside the data directory.
const txLogDir = "txlog"

// Errors of the protocol's messages.
const (
	errTxConflict = "TXCONFLICT DIE a key is locked by an older cross-shard transaction"
	errTxWait     = "TXCONFLICT WAIT a key is locked by a younger cross-shard transaction"
	errTxLocked   = "TRYAGAIN a key of this command is locked by a cross-shard transaction in progress"
	errTxWatch    = "TXWATCH a watched key changed"
	errTxLost     = "TXCONFLICT DIE the transaction's earlier round is not prepared here"
	errTxCommand  = "CROSSSHARD this command cannot be part of a cross-shard transaction"
)

type txLockKey struct {
	db  uint8
	key string
}

// txKeyLock is one key's lock: an exclusive holder, or shared holders.
type txKeyLock struct {
	excl   string
	shared map[string]struct{}
}

// txFinal is the state a prepared transaction leaves a key in: a string
// (val, expireAt, tag), deleted, or a collection's whole state (coll).
type txFinal struct {
	key      []byte
	del      bool
	val      []byte
	expireAt int64
	tag      uint8
	coll     *xstate.State
}

// preparedTx is a transaction this node holds prepared.
type preparedTx struct {
	id      string
	ts      int64
	primary string
	lockMs  int64
	db      int
	keys    []txLockKey
	excl    []bool
	writes  []txFinal
	durable bool // a prepare record is in the log
	// deadline is when the resolver asks the primary for the decision.
	deadline time.Time
	busy     bool // being applied, dropped or resolved
}

// txTable is the node's lock table and prepared transactions.
type txTable struct {
	mu      sync.Mutex
	nlocked atomic.Int64 // keys locked: plain commands read only this while it is 0
	locks   map[txLockKey]*txKeyLock
	txs     map[string]*preparedTx
	// decideMu serializes the decisions of one transaction (TX.DECIDE,
	// TX.STATUS, TX.FORGET): decideLock picks a txid's (txcommit.go).
	decideMu [64]sync.Mutex
	log      *bitcask.DB
	stop     chan struct{}
	done     chan struct{}
}

// openTxLog opens the transaction log and re-establishes the locks of every
// prepare it holds; the resolver asks their primaries at once.
func (s *Server) openTxLog() error {
	opts := bitcask.DefaultOptions()
	opts.Sync = s.db.SyncPolicy() // the node's appendfsync (txcommit.go)
	opts.Logger = s.log.Named("txlog")
	db, err := bitcask.Open(filepath.Join(s.cfg.Dir, txLogDir), opts)
	if err != nil {
		return fmt.Errorf("shardnode: open transaction log: %w", err)
	}
	t := &s.xtx
	t.log = db
	t.locks = make(map[txLockKey]*txKeyLock)
	t.txs = make(map[string]*preparedTx)
	var bad error
	db.Range(func(key []byte, _ bitcask.Meta) bool {
		if len(key) == 0 || key[0] != 'p' {
			return true
		}
		v, _, err := db.Get(key)
		if err != nil {
			bad = err
			return false
		}
		p, err := decodePrepare(string(key[1:]), v)
		if err != nil {
			bad = fmt.Errorf("shardnode: transaction log: %w", err)
			return false
		}
		p.durable = true
		if !t.lock(p) {
			bad = fmt.Errorf("shardnode: transaction log: prepares %x overlap", p.id)
			return false
		}
		t.txs[p.id] = p
		return true
	})
	if bad != nil {
		db.Close()
		return bad
	}
	if n := len(t.txs); n > 0 {
		s.log.Info("cross-shard transactions in doubt recovered: their keys stay locked until they are resolved", "count", n)
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go s.resolveLoop()
	return nil
}

func (s *Server) closeTxLog() {
	t := &s.xtx
	if t.log == nil {
		return
	}
	close(t.stop)
	<-t.done
	t.log.Close()
}

// older reports whether p comes before the holder id in the order of
// (ts, txid): wait-die lets only the older wait.
func (t *txTable) older(p *preparedTx, id string) bool {
	h := t.txs[id]
	if h == nil {
		return true
	}
	return p.ts < h.ts || p.ts == h.ts && p.id < h.id
}

// lock takes p's locks, all or none. Caller holds t.mu.
func (t *txTable) lock(p *preparedTx) bool {
	ok, _ := t.tryLock(p)
	return ok
}

// tryLock is lock that also says, when it fails, whether p is older than
// every holder it conflicts with (it may wait) or not (it dies).
func (t *txTable) tryLock(p *preparedTx) (ok, older bool) {
	older = true
	conflict := false
	for i, k := range p.keys {
		l := t.locks[k]
		if l == nil {
			continue
		}
		if l.excl != "" && l.excl != p.id {
			conflict = true
			older = older && t.older(p, l.excl)
		}
		if p.excl[i] {
			for id := range l.shared {
				if id != p.id {
					conflict = true
					older = older && t.older(p, id)
				}
			}
		}
	}
	if conflict {
		return false, older
	}
	for i, k := range p.keys {
		l := t.locks[k]
		if l == nil {
			l = &txKeyLock{}
			t.locks[k] = l
			t.nlocked.Add(1)
		}
		if p.excl[i] {
			l.excl = p.id
			delete(l.shared, p.id)
		} else if l.excl != p.id {
			if l.shared == nil {
				l.shared = make(map[string]struct{})
			}
			l.shared[p.id] = struct{}{}
		}
	}
	return true, false
}

// unlock releases p's locks. Caller holds t.mu.
func (t *txTable) unlock(p *preparedTx) {
	for _, k := range p.keys {
		l := t.locks[k]
		if l == nil {
			continue
		}
		if l.excl == p.id {
			l.excl = ""
		}
		delete(l.shared, p.id)
		if l.excl == "" && len(l.shared) == 0 {
			delete(t.locks, k)
			t.nlocked.Add(-1)
		}
	}
}

// keyLocked reports whether a plain command on key (a write when write)
// must wait for a cross-shard transaction.
func (t *txTable) keyLocked(db int, key []byte, write bool) bool {
	if t.nlocked.Load() == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.locks[txLockKey{uint8(db), string(key)}]
	return l != nil && (l.excl != "" || write)
}

// txLockedKeys reports whether a plain command touches a key locked by a
// cross-shard transaction: it is refused with TRYAGAIN, which the proxy
// retries (the doc's "waits on the node"; see TRANSACTIONS.md).
func (c *client) txLockedKeys(spec *cmdSpec, args [][]byte) bool {
	t := &c.srv.xtx
	if t.nlocked.Load() == 0 || spec.FirstKey <= 0 {
		return false
	}
	db := c.sess.DB()
	for _, i := range spec.KeyIndexes(args) {
		if i < len(args) && t.keyLocked(db, args[i], spec.write) {
			return true
		}
	}
	return false
}

var errDryRun = errors.New("shardnode: dry run")

// TX.PREPARE txid ts primary lock-ms db [WATCH id] argc arg... [argc arg...]
func cmdTxPrepare(c *client, args [][]byte) {
	s := c.srv
	t := &s.xtx
	p := &preparedTx{id: string(args[1]), primary: string(args[3])}
	var err1, err2, err3 error
	p.ts, err1 = strconv.ParseInt(string(args[2]), 10, 64)
	p.lockMs, err2 = strconv.ParseInt(string(args[4]), 10, 64)
	db, err3 := strconv.Atoi(string(args[5]))
	if err1 != nil || err2 != nil || err3 != nil || p.lockMs <= 0 || db < 0 || db >= bitcask.NumDBs {
		c.errReply(errSyntax)
		return
	}
	p.db = db
	type txCmd struct {
		spec *cmdSpec
		args [][]byte
	}
	var cmds []txCmd
	seen := make(map[string]int)
	var scratch scratchKeys
	extendOnly := false
	first := 6
	// WATCH id: the keys the proxy's client id watches on this connection
	// (SHARD.WATCH) are checked here, as EXEC checks them, and locked
	// shared until the end of the transaction.
	var w *watcher
	if len(args) > 7 && strings.EqualFold(string(args[6]), "watch") {
		id := string(args[7])
		w = c.owners[id]
		delete(c.owners, id)
		if w == nil {
			w = &watcher{}
		}
		first = 8
		for _, k := range w.keys {
			if k.db() != db {
				continue
			}
			if _, ok := seen[string(k.name())]; !ok {
				seen[string(k.name())] = len(p.keys)
				p.keys = append(p.keys, txLockKey{uint8(db), string(k.name())})
				p.excl = append(p.excl, false)
			}
		}
	}
	for i := first; i < len(args); {
		n, err := strconv.Atoi(string(args[i]))
		if err != nil || n < 1 || i+1+n > len(args) {
			c.errReply(errSyntax)
			return
		}
		cargs := args[i+1 : i+1+n]
		i += 1 + n
		spec := lookupSpec(cargs[0])
		if spec == nil || !cmdtable.Participant(cargs) {
			c.errReply(errTxCommand)
			return
		}
		if _, msg := spec.Resolve(cargs, cmdtable.SideNode); msg != "" {
			c.errReply(msg)
			return
		}
		scratch.add(cargs)
		// TX.PUT writes a state read in an earlier round: only under that
		// round's locks (a node restarted since has lost them).
		extendOnly = extendOnly || spec.Name == "tx.put"
		if msg := c.checkTxKeys(spec, cargs, scratch); msg != "" {
			c.errReply(msg)
			return
		}
		for _, k := range spec.KeyIndexes(cargs) {
			key := string(cargs[k])
			if _, ok := scratch[key]; ok {
				continue
			}
			j, ok := seen[key]
			if !ok {
				j = len(p.keys)
				seen[key] = j
				p.keys = append(p.keys, txLockKey{uint8(db), key})
				p.excl = append(p.excl, false)
			}
			p.excl[j] = p.excl[j] || spec.write
		}
		cmds = append(cmds, txCmd{spec, cargs})
	}
	mark := len(c.out)
	locked := false
	var dry watchRegistry
	err := s.db.Update(func(tx *bitcask.Tx) error {
		// Under the storage writer lock: a plain write checks the locks
		// in its own Update, so none slips in between the lock and the
		// reads below.
		t.mu.Lock()
		if old := t.txs[p.id]; old != nil && !t.extend(old, p) {
			t.mu.Unlock()
			return errors.New("ERR transaction already prepared")
		} else if old == nil && extendOnly {
			t.mu.Unlock()
			return errors.New(errTxLost)
		}
		var older bool
		locked, older = t.tryLock(p)
		if locked {
			p.busy = true
			t.txs[p.id] = p
		}
		t.mu.Unlock()
		if !locked {
			if w != nil {
				s.watches.unwatch(w)
			}
			if older {
				return errors.New(errTxWait)
			}
			return errors.New(errTxConflict)
		}
		if w != nil {
			keys, dirty := s.watches.release(w)
			for i := 0; i < len(keys) && !dirty; i++ {
				m, ok := tx.Select(keys[i].db()).Meta(keys[i].name())
				dirty = ok != keys[i].exists || ok && m.Seq != keys[i].seq
			}
			clear(keys)
			w.keys = keys[:0]
			if dirty {
				return errors.New(errTxWatch)
			}
		}
		sel := tx.Select(db)
		// What each written key is before: a key the commands left
		// alone (a WRONGTYPE, an NX that did not set) is not written.
		before := make([]bitcask.Meta, len(p.keys))
		existed := make([]bool, len(p.keys))
		for i, k := range p.keys {
			before[i], existed[i] = sel.Meta([]byte(k.key))
		}
		prior, err := priorColls(sel, p, before, existed)
		if err != nil {
			return err
		}
		c.txs.tx, c.txs.watches = sel, &dry
		c.st = &c.txs
		c.array(len(cmds))
		c.inExec = true
		for _, q := range cmds {
			q.spec.fn(c, q.args)
		}
		c.inExec = false
		if err := captureFinals(sel, p, before, existed, prior); err != nil {
			return err
		}
		return errDryRun
	})
	c.txs.tx, c.txs.watches, c.st = nil, &s.watches, nil
	c.inExec = false
	if err != errDryRun {
		c.out = c.out[:mark]
		if locked {
			t.mu.Lock()
			t.unlock(p)
			delete(t.txs, p.id)
			t.mu.Unlock()
		}
		if strings.HasPrefix(err.Error(), "ERR ") || strings.HasPrefix(err.Error(), "TX") || strings.HasPrefix(err.Error(), "CROSSSHARD") {
			c.errReply(err.Error())
		} else {
			c.storeErr(err)
		}
		return
	}
	if failPoint("prepare-locked") {
		crashNow()
	}
	if len(p.writes) > 0 {
		// Durable before the vote under the node's appendfsync (on the
		// primary, with its decision: txcommit.go).
		if err := s.writePrepare(p); err != nil {
			c.out = c.out[:mark]
			t.mu.Lock()
			t.unlock(p)
			delete(t.txs, p.id)
			t.mu.Unlock()
			c.storeErr(err)
			return
		}
	}
	t.mu.Lock()
	p.deadline = time.Now().Add(time.Duration(p.lockMs) * time.Millisecond)
	p.busy = false
	t.mu.Unlock()
	if failPoint("prepare-written") {
		crashNow()
	}
}

// take marks p busy and returns it, or nil if it is unknown or busy.
func (t *txTable) take(id string) *preparedTx {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.txs[id]
	if p == nil || p.busy {
		return nil
	}
	p.busy = true
	return p
}

// apply writes p's final states (under appendfsync always, synced), removes
// the prepare record and releases the locks. The keys stay locked until
// the states are written: a crash before leaves the prepare, and writing
// the states again is the same.
func (s *Server) applyPrepared(p *preparedTx) error {
	t := &s.xtx
	if len(p.writes) > 0 {
		var served []*waiter
		err := s.db.Update(func(tx *bitcask.Tx) error {
			sel := tx.Select(p.db)
			for _, w := range p.writes {
				var err error
				switch {
				case w.coll != nil:
					err = writeState(sel, w.key, w.coll)
				case w.del:
					_, err = sel.Delete(w.key)
				default:
					err = sel.PutTagged(w.key, w.val, w.expireAt, w.tag)
				}
				if err != nil {
					return err
				}
				s.watches.touch(p.db, w.key)
				s.blocks.touch(p.db, w.key)
			}
			// Clients blocked on a key the transaction filled (BLPOP)
			// are served now, as after any write.
			s.serveReady(tx)
			served = s.blocks.takeServed()
			return nil
		})
		s.handBack(served, err)
		if err != nil {
			t.mu.Lock()
			p.busy = false
			t.mu.Unlock()
			return err
		}
		if failPoint("apply-written") {
			crashNow()
		}
	}
	return s.dropPrepared(p)
}

// dropPrepared removes p's record and releases its locks.
func (s *Server) dropPrepared(p *preparedTx) error {
	t := &s.xtx
	if p.durable {
		// Written before the locks are released, and under appendfsync
		// always synced first: a prepare that outlived its removal would
		// be applied again at recovery, over what later writes put in its
		// keys (docs/TRANSACTIONS.md, "Durability and fsync").
		err := t.log.Update(func(tx *bitcask.Tx) error {
			_, err := tx.Delete(append([]byte{'p'}, p.id...))
			return err
		})
		if err != nil {
			t.mu.Lock()
			p.busy = false
			t.mu.Unlock()
			return err
		}
	}
	t.mu.Lock()
	t.unlock(p)
	delete(t.txs, p.id)
	t.mu.Unlock()
	return nil
}

// decision returns the recorded decision for id: 'C', 'A' or 0.
func (t *txTable) decision(id string) (byte, error) {
	v, _, err := t.log.Get(append([]byte{'d'}, id...))
	if errors.Is(err, bitcask.ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 1 {
		return 0, err
	}
	return v[0], nil
}

// decide records d for id unless a decision is recorded, and returns the
// one that stands; the primary's own part follows it. A COMMIT without the
// primary's own prepare can only come after that prepare was dropped by
// its timeout, which records ABORT first: it gets ABORT.
func (s *Server) decide(id string, d byte, timeoutOnly bool) (byte, error) {
	t := &s.xtx
	mu := t.decideLock(id)
	mu.Lock()
	defer mu.Unlock()
	cur, err := t.decision(id)
	if err != nil {
		return 0, err
	}
	if cur == 0 {
		t.mu.Lock()
		p := t.txs[id]
		pending := p != nil && time.Now().Before(p.deadline)
		t.mu.Unlock()
		if timeoutOnly && pending {
			return 'P', nil
		}
		if d == 'C' && p == nil {
			d = 'A'
		}
		if err := s.writeDecision(id, d); err != nil {
			return 0, err
		}
		if failPoint("decided") {
			crashNow()
		}
		cur = d
	}
	if p := t.take(id); p != nil {
		if cur == 'C' {
			err = s.applyPrepared(p)
		} else {
			err = s.dropPrepared(p)
		}
	}
	return cur, err
}

func decisionReply(c *client, d byte) {
	switch d {
	case 'C':
		c.simple("COMMIT")
	case 'A':
		c.simple("ABORT")
	default:
		c.simple("PENDING")
	}
}

// TX.DECIDE txid COMMIT|ABORT
func cmdTxDecide(c *client, args [][]byte) {
	var d byte
	switch strings.ToUpper(string(args[2])) {
	case "COMMIT":
		d = 'C'
	case "ABORT":
		d = 'A'
	default:
		c.errReply(errSyntax)
		return
	}
	got, err := c.srv.decide(string(args[1]), d, false)
	if err != nil {
		c.storeErr(err)
		return
	}
	decisionReply(c, got)
}

// TX.STATUS txid: the decision; ABORT is recorded first when none is and
// this node's own prepare is past its lock timeout or absent.
func cmdTxStatus(c *client, args [][]byte) {
	got, err := c.srv.decide(string(args[1]), 'A', true)
	if err != nil {
		c.storeErr(err)
		return
	}
	decisionReply(c, got)
}

// TX.COMMIT txid / TX.ABORT txid: phase two on a participant. Idempotent.
func cmdTxCommit(c *client, args [][]byte) {
	s := c.srv
	p := s.xtx.take(string(args[1]))
	var err error
	if p != nil {
		if strings.EqualFold(string(args[0]), "tx.commit") {
			err = s.applyPrepared(p)
		} else {
			err = s.dropPrepared(p)
		}
	}
	if err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// TX.FORGET txid: drops the decision once every participant acknowledged.
func cmdTxForget(c *client, args [][]byte) {
	if err := c.srv.forgetDecision(args[1]); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// TX.LIST: "prepared <txid hex> <primary> <keys>" and "decided <txid hex>
// COMMIT|ABORT" entries.
func cmdTxList(c *client, args [][]byte) {
	t := &c.srv.xtx
	var out []string
	t.mu.Lock()
	for _, p := range t.txs {
		out = append(out, fmt.Sprintf("prepared %s %s %d", hex.EncodeToString([]byte(p.id)), p.primary, len(p.keys)))
	}
	t.mu.Unlock()
	t.log.Range(func(key []byte, _ bitcask.Meta) bool {
		if len(key) > 0 && key[0] == 'd' {
			d, _ := t.decision(string(key[1:]))
			word := "ABORT"
			if d == 'C' {
				word = "COMMIT"
			}
			out = append(out, "decided "+hex.EncodeToString(key[1:])+" "+word)
		}
		return true
	})
	c.array(len(out))
	for _, e := range out {
		c.bulkStr(e)
	}
}

// resolveLoop asks the primary of every prepare past its lock timeout for
// the decision, and acts on it.
func (s *Server) resolveLoop() {
	t := &s.xtx
	defer close(t.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		var due []*preparedTx
		t.mu.Lock()
		for _, p := range t.txs {
			if !p.busy && !now.Before(p.deadline) {
				p.busy = true
				due = append(due, p)
			}
		}
		t.mu.Unlock()
		for _, p := range due {
			s.resolve(p)
		}
	}
}

// resolve settles one abandoned prepare.
func (s *Server) resolve(p *preparedTx) {
	t := &s.xtx
	var d byte
	var err error
	if s.isSelf(p.primary) {
		t.mu.Lock()
		p.busy = false
		t.mu.Unlock()
		_, err = s.decide(p.id, 'A', true)
		if err != nil {
			s.log.Warn("resolving a cross-shard transaction failed", "error", err)
		}
		return
	}
	d, err = s.askPrimary(p.primary, p.id)
	switch {
	case err == nil && d == 'C':
		err = s.applyPrepared(p)
	case err == nil && d == 'A':
		err = s.dropPrepared(p)
	default:
		t.mu.Lock()
		p.busy = false
		p.deadline = time.Now().Add(time.Duration(p.lockMs) * time.Millisecond / 2)
		t.mu.Unlock()
	}
	if err != nil {
		s.log.Warn("resolving a cross-shard transaction failed; asking again later", "primary", p.primary, "error", err)
	}
}

// isSelf reports whether addr is this node's listening address.
func (s *Server) isSelf(addr string) bool {
	a := s.Addr()
	return a != nil && a.String() == addr || addr == s.cfg.Addr
}

// askPrimary sends TX.STATUS to the primary.
func (s *Server) askPrimary(addr, id string) (byte, error) {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(2 * time.Second))
	var req []byte
	if s.cfg.RequirePass != "" {
		req = resp.AppendCommandStrings(req, "AUTH", s.cfg.RequirePass)
	}
	req = resp.AppendCommandStrings(req, "TX.STATUS", id)
	if _, err := nc.Write(req); err != nil {
		return 0, err
	}
	rd := bufio.NewReader(nc)
	if s.cfg.RequirePass != "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if !strings.HasPrefix(line, "+") {
			return 0, fmt.Errorf("AUTH: %s", strings.TrimSpace(line))
		}
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return 0, err
	}
	switch strings.TrimSpace(line) {
	case "+COMMIT":
		return 'C', nil
	case "+ABORT":
		return 'A', nil
	case "+PENDING":
		return 'P', nil
	}
	return 0, fmt.Errorf("TX.STATUS: %s", strings.TrimSpace(line))
}

// The prepare record: uvarint ts, lock-ms, db; the primary; the keys (mode
// byte, key); the final states: a kind byte, then for 0 (a string) key,
// value, expire-at, tag; for 1 (deleted) key, an empty value, 0, 0; for 2
// (a collection) key and its state (xstate's encoding, with its expiry).
func encodePrepare(p *preparedTx) []byte {
	b := binary.AppendUvarint(nil, uint64(p.ts))
	b = binary.AppendUvarint(b, uint64(p.lockMs))
	b = binary.AppendUvarint(b, uint64(p.db))
	b = appendBytes(b, []byte(p.primary))
	b = binary.AppendUvarint(b, uint64(len(p.keys)))
	for i, k := range p.keys {
		b = append(b, boolByte(p.excl[i]))
		b = appendBytes(b, []byte(k.key))
	}
	b = binary.AppendUvarint(b, uint64(len(p.writes)))
	for _, w := range p.writes {
		if w.coll != nil {
			b = append(b, finalColl)
			b = appendBytes(b, w.key)
			b = appendBytes(b, xstate.Encode(w.coll))
			continue
		}
		b = append(b, boolByte(w.del))
		b = appendBytes(b, w.key)
		b = appendBytes(b, w.val)
		b = binary.AppendUvarint(b, uint64(w.expireAt))
		b = append(b, w.tag)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad prepare record")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.err = errors.New("bad prepare record")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if uint64(len(d.b)) < n {
		d.err = errors.New("bad prepare record")
		d.b = nil
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

// finalColl is the kind byte of a collection's final state in a prepare
// record (0 and 1 are a string's and a deletion's, the del byte they were
// before collections).
const finalColl = 2

func decodePrepare(id string, v []byte) (*preparedTx, error) {
	var err error
	d := &decoder{b: v}
	p := &preparedTx{id: id}
	p.ts = int64(d.uvarint())
	p.lockMs = int64(d.uvarint())
	p.db = int(d.uvarint())
	p.primary = string(d.bytes())
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		p.excl = append(p.excl, d.byte1() == 1)
		p.keys = append(p.keys, txLockKey{uint8(p.db), string(d.bytes())})
	}
	n = d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		kind := d.byte1()
		w := txFinal{del: kind == 1}
		w.key = d.bytes()
		if kind == finalColl {
			w.coll, err = xstate.Decode(d.bytes())
			if err != nil {
				return p, err
			}
			p.writes = append(p.writes, w)
			continue
		}
		if kind > 1 {
			return p, errors.New("bad prepare record")
		}
		w.val = d.bytes()
		w.expireAt = int64(d.uvarint())
		w.tag = d.byte1()
		p.writes = append(p.writes, w)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("bad prepare record")
	}
	if p.db >= bitcask.NumDBs || p.lockMs <= 0 {
		d.err = errors.New("bad prepare record")
	}
	return p, d.err
}
