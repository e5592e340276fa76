package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/proxy/backend"
	"github.com/shardkv/shardkv/resp"
)

// The coordinator of cross-shard transactions (docs/TRANSACTIONS.md): the
// proxy prepares each shard's part on its node (TX.PREPARE), records the
// decision on the primary (the first part's node, TX.DECIDE), then commits
// or aborts the others (TX.COMMIT / TX.ABORT) and lets the primary forget
// the decision (TX.FORGET). It keeps nothing that outlives it: a crash at
// any step leaves the participants to resolve through the primary.

// xLockMs is the lock timeout the proxy asks of the participants.
const xLockMs = 2000

// xRetryBudget bounds how long a transaction is retried after conflicts.
const xRetryBudget = 2 * time.Second

const (
	errXTryAgain  = "TRYAGAIN cross-shard transaction not executed: conflicts with others"
	errXUncertain = "UNCERTAIN cross-shard transaction: the decision could not be recorded, the outcome is unknown"
)

var xtxPrefix = func() [8]byte {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		binary.BigEndian.PutUint64(b[:], n.Uint64())
	}
	return b
}()

var xtxCounter atomic.Uint64

// newTxID is 8 random bytes chosen at start and a counter: unique across
// proxies and restarts without coordination.
func newTxID() string {
	var b [16]byte
	copy(b[:], xtxPrefix[:])
	binary.BigEndian.PutUint64(b[8:], xtxCounter.Add(1))
	return string(b[:])
}

// Fail points for the crash tests (docs/TRANSACTIONS.md): the proxy kills
// itself with SIGKILL at a step named in SHARDKV_PROXY_FAILPOINTS. Only the
// integration tests set it.
var proxyFailPoints = func() map[string]bool {
	v := os.Getenv("SHARDKV_PROXY_FAILPOINTS")
	if v == "" {
		return nil
	}
	m := make(map[string]bool)
	for _, p := range strings.Split(v, ",") {
		m[strings.TrimSpace(p)] = true
	}
	return m
}()

func proxyFailPoint(name string) {
	if proxyFailPoints[name] {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

// xPart is one participant: a shard and the commands it runs.
type xPart struct {
	sh *shard
	// db is the database the part runs in when not the client's (COPY ...
	// DB: xcoll.go).
	db string
	// watch: the client id whose watched keys the prepare checks
	watch string
	cmds  [][][]byte
	// replies are the raw replies of cmds after a prepare.
	replies [][]byte
}

// xParts groups commands by shard in order of first appearance.
type xParts []*xPart

func (ps *xParts) add(sh *shard, cmd [][]byte) *xPart {
	for _, p := range *ps {
		if p.sh == sh {
			p.cmds = append(p.cmds, cmd)
			return p
		}
	}
	p := &xPart{sh: sh, cmds: [][][]byte{cmd}}
	*ps = append(*ps, p)
	return p
}

// xResult is how a cross-shard transaction ended.
type xResult struct {
	committed bool
	// watchFailed: a watched key changed (or, with WATCH, a conflict: the
	// watch is spent by the first prepare): EXEC's nil reply.
	watchFailed bool
	// err is the client's error when it did not commit ("" with
	// committed false: the vote function chose to abort).
	err string
}

// runXTx runs parts as one transaction. When next is set, further rounds
// of parts are built from the replies of the rounds before (round counts
// from 1; all holds every part so far, values read under the locks:
// xcoll.go) and prepared with the earlier locks still held, until next
// returns none; a next that returns an error aborts with it. After every
// prepare succeeded, vote says whether to commit (MSETNX aborts on a 0).
// The first part is the primary.
func (c *client) runXTx(parts xParts, next func(round int, all xParts) (xParts, string), vote func(xParts) bool) xResult {
	c.barrier() // the client's earlier commands first
	proxyFailPoint("start")
	ts := time.Now().UnixMicro()
	start := time.Now()
	db := strconv.Itoa(c.sess.DB())
	primary := parts[0].sh
	for attempt := 1; ; attempt++ {
		txid := newTxID()
		all := parts
		conflict, failed := c.xPrepare(txid, ts, db, primary, parts)
		for round := 1; !conflict && failed == "" && next != nil; round++ {
			var more xParts
			more, failed = next(round, all)
			if failed != "" || len(more) == 0 {
				break
			}
			all = append(append(xParts(nil), all...), more...)
			conflict, failed = c.xPrepare(txid, ts, db, primary, more)
		}
		parts := all
		if conflict || failed != "" {
			c.xAbort(txid, parts)
			if failed == "TXWATCH" || conflict && parts.watched() {
				return xResult{watchFailed: true}
			}
			if failed != "" {
				return xResult{err: failed}
			}
			if time.Since(start) > xRetryBudget {
				return xResult{err: errXTryAgain}
			}
			// Random backoff, growing exponentially to 20 ms, so that
			// rivals that keep colliding spread out.
			ceil := min(int64(100*time.Microsecond)<<min(attempt, 8), int64(20*time.Millisecond))
			time.Sleep(time.Duration(mrand.Int64N(ceil) + int64(50*time.Microsecond)))
			continue
		}
		if vote != nil && !vote(parts) {
			c.xAbort(txid, parts)
			return xResult{}
		}
		proxyFailPoint("prepared")
		d := c.xDecide(txid, primary, "COMMIT", start)
		switch d {
		case "COMMIT":
		case "ABORT":
			c.xAbort(txid, parts)
			return xResult{err: errXTryAgain}
		default:
			return xResult{err: errXUncertain}
		}
		proxyFailPoint("decided")
		acked := true
		rs := make([]*preq, 0, len(parts))
		for _, p := range parts[1:] {
			r := c.newReq()
			r.buf = resp.AppendCommandStrings(r.buf[:0], "TX.COMMIT", txid)
			r.Cmd = r.buf
			c.sendTx(p.sh, &r.Request)
			rs = append(rs, r)
		}
		c.txBarrier()
		for _, r := range rs {
			if r.Err != nil || len(r.Reply) == 0 || r.Reply[0] != '+' {
				// Committed all the same: that participant applies once it
				// asks the primary, and its keys stay locked until then.
				acked = false
			}
		}
		if acked {
			c.forgetTx(primary, txid)
		}
		return xResult{committed: true}
	}
}

// xDecide records the decision on the primary, retrying while it does not
// answer, within the retry budget.
func (c *client) xDecide(txid string, primary *shard, d string, start time.Time) string {
	for {
		r := c.newReq()
		r.buf = resp.AppendCommandStrings(r.buf[:0], "TX.DECIDE", txid, d)
		r.Cmd = r.buf
		c.sendTx(primary, &r.Request)
		c.txBarrier()
		if r.Err == nil {
			switch string(bytes.TrimRight(r.Reply, "\r\n")) {
			case "+COMMIT":
				return "COMMIT"
			case "+ABORT":
				return "ABORT"
			}
		}
		if time.Since(start) > 2*xRetryBudget {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// xAbort records ABORT on the primary (a participant whose abort is lost
// learns it there) and drops every prepare.
func (c *client) xAbort(txid string, parts xParts) {
	r := c.newReq()
	r.buf = resp.AppendCommandStrings(r.buf[:0], "TX.DECIDE", txid, "ABORT")
	r.Cmd = r.buf
	c.sendTx(parts[0].sh, &r.Request)
	c.txBarrier()
	for _, p := range parts[1:] {
		r := c.newReq()
		r.buf = resp.AppendCommandStrings(r.buf[:0], "TX.ABORT", txid)
		r.Cmd = r.buf
		c.sendTx(p.sh, &r.Request)
	}
	r = c.newReq()
	r.buf = resp.AppendCommandStrings(r.buf[:0], "TX.FORGET", txid)
	r.Cmd = r.buf
	c.send(parts[0].sh, &r.Request)
	c.txBarrier()
}

// splitArray returns the raw elements of an array reply, nil if b is not
// one.
func splitArray(b []byte) [][]byte {
	if len(b) == 0 || b[0] != '*' {
		return nil
	}
	end := bytes.IndexByte(b, '\n')
	if end < 2 || b[end-1] != '\r' {
		return nil
	}
	n, err := strconv.Atoi(string(b[1 : end-1]))
	if err != nil || n < 0 || n > len(b) {
		return nil
	}
	b = b[end+1:]
	out := make([][]byte, 0, n)
	for range n {
		l, err := resp.ReplyLen(b)
		if err != nil || l == 0 {
			return nil
		}
		out = append(out, b[:l])
		b = b[l:]
	}
	return out
}

// xWrite runs MSET, MSETNX, DEL or UNLINK whose keys span shards as one
// cross-shard transaction, and replies as Redis would on one server.
func (c *client) xWrite(name string, args [][]byte, step int) {
	// One command per shard with that shard's keys, in the client's order.
	var parts xParts
	for i := 1; i < len(args); i += step {
		sh := c.tbl.locate(args[i])
		var p *xPart
		for _, q := range parts {
			if q.sh == sh {
				p = q
			}
		}
		if p == nil {
			p = &xPart{sh: sh, cmds: [][][]byte{{args[0]}}}
			parts = append(parts, p)
		}
		p.cmds[0] = append(p.cmds[0], args[i:i+step]...)
	}
	var vote func(xParts) bool
	if name == "msetnx" {
		vote = func(ps xParts) bool {
			for _, p := range ps {
				if string(p.replies[0]) != ":1\r\n" {
					return false
				}
			}
			return true
		}
	}
	res := c.runXTx(parts, nil, vote)
	switch {
	case res.err != "":
		c.errorReply(res.err)
	case name == "msetnx":
		if res.committed {
			c.integer(1)
		} else {
			c.integer(0)
		}
	case name == "mset":
		c.ok()
	default: // del, unlink: the keys deleted, summed
		var n int64
		for _, p := range parts {
			if v, _, err := resp.Parse(p.replies[0]); err == nil {
				n += v.Int
			}
		}
		c.integer(n)
	}
}

// lockedReply is the node's refusal of a command over a key a cross-shard
// transaction holds locked (shardnode/xshard.go).
var lockedReply = []byte("-TRYAGAIN a key of this command is locked")

// retryLocked sends again the commands a node refused because a
// cross-shard transaction held their keys: the doc's "waits on the node",
// done by the proxy. It gives up after the lock timeout and a resolution
// round trip, and the client gets the TRYAGAIN.
func (c *client) retryLocked() {
	start := time.Now()
	for pause := 200 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		again := false
		resend := func(sh *shard, req *backend.Request) *backend.Request {
			if !again {
				time.Sleep(pause)
				c.w.Begin()
				again = true
			}
			r := c.newReq()
			r.Cmd, r.N = req.Cmd, req.N
			c.send(sh, &r.Request)
			return &r.Request
		}
		if time.Since(start) > 2*xLockMs*time.Millisecond {
			return
		}
		for i := range c.slots {
			sl := &c.slots[i]
			if sl.kind == slotMerge && sl.m != nil {
				// A part of a split command (MGET across shards).
				for j := range sl.m.parts {
					pt := &sl.m.parts[j]
					if pt.req != nil && pt.req.Err == nil && bytes.HasPrefix(pt.req.Reply, lockedReply) {
						pt.req = resend(pt.sh, pt.req)
					}
				}
				continue
			}
			if sl.kind != slotForward && sl.kind != slotExec || sl.req == nil || sl.req.Err != nil {
				continue
			}
			reply := sl.req.Reply
			if sl.kind == slotExec {
				reply = lastReply(reply, sl.req.N)
			}
			if !bytes.HasPrefix(reply, lockedReply) {
				continue
			}
			sl.req = resend(sl.sh, sl.req)
		}
		if !again {
			return
		}
		c.sendQueued()
		c.w.Wait()
	}
}

// xPrepare sends TX.PREPARE to every part and reads the replies. Wait-die:
// a part whose node says the transaction is older than the holders of its
// keys (TXCONFLICT WAIT) is prepared again after a pause, the locks of the
// others kept, for up to half the lock timeout; a younger one (TXCONFLICT
// DIE) is a conflict: the caller aborts and retries.
func (c *client) xPrepare(txid string, ts int64, db string, primary *shard, parts xParts) (conflict bool, failed string) {
	start := time.Now()
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		var waiting xParts
		conflict, failed, waiting = c.xPrepareOnce(txid, ts, db, primary, parts)
		if conflict || failed != "" || len(waiting) == 0 {
			return conflict, failed
		}
		if time.Since(start) > xLockMs*time.Millisecond/2 {
			return true, ""
		}
		time.Sleep(pause)
		parts = waiting
	}
}

// xPrepareOnce is one round of xPrepare; waiting are the parts to prepare
// again.
func (c *client) xPrepareOnce(txid string, ts int64, db string, primary *shard, parts xParts) (conflict bool, failed string, waiting xParts) {
	reqs := make([]*preq, len(parts))
	for i, p := range parts {
		r := c.newReq()
		n := 6
		if p.watch != "" {
			n += 2
		}
		for _, cmd := range p.cmds {
			n += 1 + len(cmd)
		}
		r.buf = resp.AppendArray(r.buf[:0], n)
		r.buf = resp.AppendBulkString(r.buf, "TX.PREPARE")
		r.buf = resp.AppendBulkString(r.buf, txid)
		r.buf = resp.AppendBulkString(r.buf, strconv.FormatInt(ts, 10))
		r.buf = resp.AppendBulkString(r.buf, primary.addr)
		r.buf = resp.AppendBulkString(r.buf, strconv.Itoa(xLockMs))
		if p.db != "" {
			r.buf = resp.AppendBulkString(r.buf, p.db)
		} else {
			r.buf = resp.AppendBulkString(r.buf, db)
		}
		if p.watch != "" {
			r.buf = resp.AppendBulkString(r.buf, "WATCH")
			r.buf = resp.AppendBulkString(r.buf, p.watch)
		}
		for _, cmd := range p.cmds {
			r.buf = resp.AppendBulkString(r.buf, strconv.Itoa(len(cmd)))
			for _, a := range cmd {
				r.buf = resp.AppendBulk(r.buf, a)
			}
		}
		r.Cmd = r.buf
		if p.db != "" {
			// COPY ... DB: rare, on the connection of that database.
			c.sendDB(p.sh, p.db, &r.Request)
		} else {
			c.sendTx(p.sh, &r.Request)
		}
		reqs[i] = r
	}
	c.txBarrier()
	for i, p := range parts {
		r := reqs[i]
		switch {
		case r.Err != nil:
			if failed == "" {
				failed = p.sh.unavailable(r.Err) + " (cross-shard transaction not executed)"
			}
		case len(r.Reply) > 0 && r.Reply[0] == '-':
			msg := string(bytes.TrimRight(r.Reply[1:], "\r\n"))
			if strings.HasPrefix(msg, "TXCONFLICT WAIT") && p.watch == "" {
				// (A watched part cannot wait: its watch is spent.)
				waiting = append(waiting, p)
			} else if strings.HasPrefix(msg, "TXCONFLICT") {
				conflict = true
			} else if strings.HasPrefix(msg, "TXWATCH") {
				failed = "TXWATCH"
			} else if failed == "" {
				if isWrongShard(r.Reply) {
					msg = c.s.wrongShardReply(p.sh, r.Reply) + " (cross-shard transaction not executed)"
				}
				failed = msg
			}
		default:
			p.replies = splitArray(r.Reply)
			if len(p.replies) != len(p.cmds) {
				failed = "ERR malformed prepare reply from the shard node"
			}
		}
	}
	return conflict, failed, waiting
}

func (ps xParts) watched() bool {
	for _, p := range ps {
		if p.watch != "" {
			return true
		}
	}
	return false
}

// xExec runs a MULTI whose commands touch keys of several shards as one
// cross-shard transaction: each command goes to its keys' shard (one a
// participant cannot prepare gets CROSSSHARD and nothing runs; one whose
// own keys span shards makes the whole transaction run on one shard:
// xExecOnOne), and EXEC's reply is their replies in the client's order.
// Each watched shard's keys are checked in its prepare.
func (c *client) xExec(queued []redcon.Command) {
	var parts xParts
	type at struct{ part, cmd int }
	order := make([]at, len(queued))
	for _, sh := range c.watchedShards() {
		parts = append(parts, &xPart{sh: sh, watch: itoa(c.sess.ID)})
	}
	for _, q := range queued {
		if ci := cmdtable.Lookup(q.Args[0]); !cmdtable.Participant(q.Args) || len(ci.KeyIndexes(q.Args)) == 0 && !cmdtable.Keyless(q.Args) {
			c.releaseWatch()
			c.errorReply("CROSSSHARD '" + ci.Name + "' cannot be part of a transaction whose keys live on several shards")
			return
		}
	}
	for qi, q := range queued {
		ci := cmdtable.Lookup(q.Args[0])
		var sh *shard
		if cmdtable.Keyless(q.Args) {
			// PING, ECHO: on the shard of the transaction's first key,
			// which takes part anyway.
			sh = c.firstKeyShard(queued)
		}
		for _, i := range ci.KeyIndexes(q.Args) {
			s := c.tbl.locate(q.Args[i])
			if sh != nil && s != sh {
				// The whole transaction runs on one shard (xcoll.go).
				c.xExecOnOne(queued)
				return
			}
			sh = s
		}
		pi := -1
		for j, p := range parts {
			if p.sh == sh {
				pi = j
			}
		}
		if pi < 0 {
			pi = len(parts)
			parts = append(parts, &xPart{sh: sh})
		}
		order[qi] = at{pi, len(parts[pi].cmds)}
		parts[pi].cmds = append(parts[pi].cmds, q.Args)
	}
	c.releasePins() // the prepares take the nodes' records of the keys
	res := c.runXTx(parts, nil, nil)
	c.execReply(res, len(queued), func(i int) []byte { return parts[order[i].part].replies[order[i].cmd] })
}

// firstKeyShard is the shard of the first key of the queued commands, or
// of the first watched shard.
func (c *client) firstKeyShard(queued []redcon.Command) *shard {
	if ws := c.watchedShards(); len(ws) > 0 {
		return ws[0]
	}
	for _, q := range queued {
		if idx := cmdtable.Lookup(q.Args[0]).KeyIndexes(q.Args); len(idx) > 0 {
			return c.tbl.locate(q.Args[idx[0]])
		}
	}
	return c.tbl.shards[0]
}

// execReply is EXEC's reply to a cross-shard transaction of n commands.
func (c *client) execReply(res xResult, n int, reply func(i int) []byte) {
	mark := len(c.out)
	switch {
	case res.watchFailed:
		c.out = resp.AppendNullArray(c.out, c.sess.Proto)
	case res.err != "":
		c.out = resp.AppendError(c.out, res.err)
	default:
		c.out = resp.AppendArray(c.out, n)
		for i := range n {
			c.out = append(c.out, reply(i)...)
		}
	}
	c.reply(mark)
}
