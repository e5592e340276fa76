package proxy

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// Scripts through the proxy. EVAL and EVALSHA go to the node that owns
// their declared keys (numkeys), CROSSSHARD when those live on several
// shards (a script is atomic on one node only), the first shard when they
// declare none. SCRIPT LOAD, EXISTS, FLUSH and KILL go to every node:
// LOAD's reply is the digest every node gave, EXISTS is 1 where every node
// has the script, KILL succeeds where one node had a script to kill.
//
// A node may lack a script the client loaded: it restarted (scripts live
// in memory, as Redis's), joined the cluster later, or the script reached
// another node by EVAL. The proxy keeps the body of every script loaded or
// evaluated through it, so an EVALSHA that a node answers with NOSCRIPT is
// sent again to that node behind a SCRIPT LOAD, and the client sees only
// the script's reply. SCRIPT FLUSH empties that cache too.

// scriptCache is the bodies of the scripts seen, by lower-case digest.
type scriptCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func scriptSha(body []byte) string {
	sum := sha1.Sum(body)
	return hex.EncodeToString(sum[:])
}

func (sc *scriptCache) remember(body []byte) {
	sha := scriptSha(body)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.m == nil {
		sc.m = make(map[string][]byte)
	}
	if _, ok := sc.m[sha]; !ok {
		sc.m[sha] = bytes.Clone(body)
	}
}

func (sc *scriptCache) get(sha string) []byte {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.m[strings.ToLower(sha)]
}

func (sc *scriptCache) flush() {
	sc.mu.Lock()
	sc.m = nil
	sc.mu.Unlock()
}

// eval routes EVAL, EVALSHA, EVAL_RO and EVALSHA_RO.
func (c *client) eval(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	bySha := ci.Name == "evalsha" || ci.Name == "evalsha_ro"
	if !bySha {
		c.s.scripts.remember(args[1])
	}
	c.sameNode(ci, cmd)
	if sl := &c.slots[len(c.slots)-1]; bySha && sl.kind == slotForward && len(args[1]) == 40 {
		sl.sha = string(args[1])
		c.retries = true
	}
}

// retryNoScript sends again, behind a SCRIPT LOAD, each EVALSHA of the
// batch that a node answered with NOSCRIPT when the proxy has its body;
// the slot then takes the EVALSHA's reply.
func (c *client) retryNoScript() {
	if !c.retries {
		return
	}
	c.retries = false
	again := false
	for i := range c.slots {
		sl := &c.slots[i]
		sha := sl.sha
		sl.sha = ""
		if sha == "" || sl.kind != slotForward || sl.req.Err != nil || !bytes.HasPrefix(sl.req.Reply, []byte("-NOSCRIPT")) {
			continue
		}
		body := c.s.scripts.get(sha)
		if body == nil {
			continue
		}
		if !again {
			c.w.Begin()
			again = true
		}
		r := c.newReq()
		r.buf = resp.AppendCommand(r.buf[:0], []byte("SCRIPT"), []byte("LOAD"), body)
		r.buf = append(r.buf, sl.req.Cmd...)
		r.Cmd, r.N = r.buf, 2
		c.send(sl.sh, &r.Request)
		sl.req, sl.kind = &r.Request, slotExec
	}
	if again {
		c.sendQueued()
		c.w.Wait()
	}
}

// scriptLoads returns SCRIPT LOAD commands for the scripts of the queued
// EVALSHAs the proxy knows, sent before a transaction so that its node has
// them.
func (c *client) scriptLoads(b []byte, queued []redcon.Command) []byte {
	for _, q := range queued {
		if len(q.Args) < 2 || !(strings.EqualFold(string(q.Args[0]), "evalsha") || strings.EqualFold(string(q.Args[0]), "evalsha_ro")) {
			continue
		}
		if body := c.s.scripts.get(string(q.Args[1])); body != nil {
			b = resp.AppendCommand(b, []byte("SCRIPT"), []byte("LOAD"), body)
		}
	}
	return b
}

// script is SCRIPT: HELP from one node, the rest from every node.
func (c *client) script(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "help":
		c.forward(c.tbl.shards[0], cmd.Raw)
		return
	case "load":
		c.s.scripts.remember(args[2])
	case "flush":
		c.s.scripts.flush()
	case "kill":
		// On a connection of its own to each node: the busy script's
		// node does not read the shared connection the script came on
		// until the script ends, and a KILL behind it would never arrive.
		m := c.newMerge(ci, "script|kill")
		for _, sh := range c.tbl.nodes {
			r := c.newReq()
			r.Cmd, r.N = cmd.Raw, 1
			if !c.sendSolo(sh, &r.Request) {
				c.send(sh, &r.Request)
			}
			m.parts = append(m.parts, part{sh: sh, req: &r.Request})
		}
		return
	}
	m := c.newMerge(ci, "script|"+sub)
	for _, sh := range c.tbl.nodes {
		c.addPart(m, sh, cmd.Raw, 1)
	}
}

// writeScript merges SCRIPT's replies.
func (m *merge) writeScript(c *client, b []byte) []byte {
	if m.name == "script|kill" {
		// One node that killed its script is success; else a node that
		// could not (UNKILLABLE) says why; else none had a script.
		var unkillable, other []byte
		answered := false
		for _, p := range m.parts {
			if p.req.Err != nil {
				continue
			}
			answered = true
			r := p.req.Reply
			switch {
			case bytes.HasPrefix(r, []byte("+OK")):
				return resp.AppendOK(b)
			case bytes.HasPrefix(r, []byte("-UNKILLABLE")):
				unkillable = r
			case other == nil:
				other = r
			}
		}
		switch {
		case !answered:
			return resp.AppendError(b, m.failure(c.s))
		case unkillable != nil:
			return append(b, unkillable...)
		}
		return append(b, other...)
	}
	if msg := m.failure(c.s); msg != "" {
		return resp.AppendError(b, msg)
	}
	if e := m.errorReply(); e != nil {
		return append(b, e...)
	}
	if m.name != "script|exists" {
		return append(b, m.parts[0].req.Reply...) // LOAD's digest, FLUSH's OK
	}
	var all []int64
	for i, p := range m.parts {
		v, _, err := resp.Parse(p.req.Reply)
		if err != nil || !v.IsAggregate() || i > 0 && len(v.Elems) != len(all) {
			return resp.AppendError(b, "ERR unexpected reply to 'script|exists' from shard "+p.sh.name)
		}
		if i == 0 {
			all = make([]int64, len(v.Elems))
			for j := range all {
				all[j] = 1
			}
		}
		for j, e := range v.Elems {
			if e.Int == 0 {
				all[j] = 0
			}
		}
	}
	b = resp.AppendArray(b, len(all))
	for _, n := range all {
		b = resp.AppendInt(b, n)
	}
	return b
}

// countLoads is how many SCRIPT LOADs scriptLoads put before queued.
func (c *client) countLoads(queued []redcon.Command) int {
	n := 0
	for _, q := range queued {
		if len(q.Args) >= 2 && (strings.EqualFold(string(q.Args[0]), "evalsha") || strings.EqualFold(string(q.Args[0]), "evalsha_ro")) &&
			c.s.scripts.get(string(q.Args[1])) != nil {
			n++
		}
	}
	return n
}
