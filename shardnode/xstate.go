package shardnode

import (
	"bytes"
	"errors"
	"slices"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/xstate"
)

// Whole key states in cross-shard transactions (docs/TRANSACTIONS.md, "Key
// states"). A prepare keeps the final state of each key it wrote, of any
// type, and a commit replaces the key with it in one storage transaction.
// The coordinator reads a key's state under the transaction's lock with
// TX.DUMP (TX.DUMPX locks it exclusively, for a key it writes later),
// writes one with TX.PUT, and with TX.LOAD gives a key of another shard a
// state inside this prepare's dry run only: the prepare's commands read it
// as if the key lived here (SMOVE from a set of another shard), it is never
// locked, checked against the assignment or kept, and TX.DUMP of it
// replies what the commands left of it. The four run only inside
// TX.PREPARE.

const errTxOnlyInPrepare = "ERR this command runs only inside TX.PREPARE"

// readState reads key's whole state in tx (kind None when absent).
func readState(tx *bitcask.Tx, key []byte) (*xstate.State, error) {
	m, ok := tx.Meta(key)
	if !ok {
		return &xstate.State{Kind: xstate.None}, nil
	}
	s := &xstate.State{ExpireAt: m.ExpireAt}
	var err error
	switch m.Type {
	case bitcask.TypeString:
		s.Kind, s.Tag = xstate.String, m.Tag
		var v []byte
		v, _, err = tx.Get(key)
		s.Val = append([]byte{}, v...)
	case bitcask.TypeHash:
		s.Kind = xstate.Hash
		var fs []bitcask.HashField
		fs, err = tx.HashGetAll(key, true)
		slices.SortFunc(fs, func(a, b bitcask.HashField) int { return bytes.Compare(a.Field, b.Field) })
		for _, f := range fs {
			s.Elems = append(s.Elems, f.Field, f.Value)
		}
	case bitcask.TypeSet:
		s.Kind = xstate.Set
		s.Elems, err = tx.SetMembers(key)
		// Sorted, as the hash's fields below: one state, one encoding
		// (captureFinals compares them).
		slices.SortFunc(s.Elems, bytes.Compare)
	case bitcask.TypeZSet:
		s.Kind = xstate.ZSet
		var zs []bitcask.ZMember
		zs, err = tx.ZSetRange(key, &bitcask.ZRange{By: bitcask.ZByRank, Start: 0, Stop: -1, Count: -1})
		for _, z := range zs {
			s.Z = append(s.Z, xstate.ZMember{Member: z.Member, Score: z.Score})
		}
	case bitcask.TypeList:
		s.Kind = xstate.List
		err = tx.ListWalk(key, 0, false, func(_ int, v []byte) bool {
			s.Elems = append(s.Elems, append([]byte(nil), v...))
			return true
		})
	default:
		err = errors.New("ERR key of a type a cross-shard transaction cannot hold")
	}
	return s, err
}

// writeState replaces key with s in tx.
func writeState(tx *bitcask.Tx, key []byte, s *xstate.State) error {
	if s.Kind == xstate.String {
		return tx.PutTagged(key, s.Val, s.ExpireAt, s.Tag)
	}
	if _, err := tx.Delete(key); err != nil {
		return err
	}
	var err error
	switch s.Kind {
	case xstate.None:
		return nil
	case xstate.Hash:
		for i := 0; i+1 < len(s.Elems) && err == nil; i += 2 {
			_, err = tx.HashSet(key, s.Elems[i], s.Elems[i+1])
		}
	case xstate.Set:
		for i := 0; i < len(s.Elems) && err == nil; i++ {
			_, err = tx.SetAdd(key, s.Elems[i])
		}
	case xstate.ZSet:
		for i := 0; i < len(s.Z) && err == nil; i++ {
			_, err = tx.ZSetAdd(key, s.Z[i].Member, s.Z[i].Score)
		}
	case xstate.List:
		if len(s.Elems) > 0 {
			_, err = tx.ListPush(key, s.Elems, false, false)
		}
	}
	if err == nil && s.ExpireAt > 0 {
		_, err = tx.SetExpireAt(key, s.ExpireAt)
	}
	return err
}

// finalState is the txFinal of a key the prepare's commands changed, read
// in tx; m is its meta there.
func finalState(tx *bitcask.Tx, key string, m bitcask.Meta) (txFinal, error) {
	k := []byte(key)
	if m.Type == bitcask.TypeString {
		v, _, err := tx.Get(k)
		return txFinal{key: k, val: append([]byte(nil), v...), expireAt: m.ExpireAt, tag: m.Tag}, err
	}
	s, err := readState(tx, k)
	return txFinal{key: k, coll: s}, err
}

// inTxPrepare reports whether c runs the commands of a TX.PREPARE: they
// run in its dry run, whose WATCH registry is a scratch one.
func (c *client) inTxPrepare() bool {
	return c.inExec && c.st == &c.txs && c.txs.tx != nil && c.txs.watches != &c.srv.watches
}

// TX.DUMP key / TX.DUMPX key: the key's state as xstate encodes it.
func cmdTxDump(c *client, args [][]byte) {
	if !c.inTxPrepare() {
		c.errReply(errTxOnlyInPrepare)
		return
	}
	s, err := readState(c.txs.tx, args[1])
	if err != nil {
		c.storeErr(err)
		return
	}
	c.bulk(xstate.Encode(s))
}

// TX.PUT key state / TX.LOAD key state: the key becomes state (TX.LOAD's
// key is a scratch one, cmdTxPrepare).
func cmdTxPut(c *client, args [][]byte) {
	if !c.inTxPrepare() {
		c.errReply(errTxOnlyInPrepare)
		return
	}
	s, err := xstate.Decode(args[2])
	if err != nil {
		c.errReply("ERR " + err.Error())
		return
	}
	if err := writeState(c.txs.tx, args[1], s); err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

// scratchKeys are the keys a prepare's TX.LOAD commands name.
type scratchKeys map[string]struct{}

// add records the key of a TX.LOAD command.
func (s *scratchKeys) add(args [][]byte) {
	if len(args) != 3 || !bytes.EqualFold(args[0], []byte("tx.load")) {
		return
	}
	if *s == nil {
		*s = make(scratchKeys)
	}
	(*s)[string(args[1])] = struct{}{}
}

// checkTxKeys is checkKeys for a command of a prepare: its scratch keys
// are not this shard's, and are not checked.
func (c *client) checkTxKeys(spec *cmdSpec, args [][]byte, scratch scratchKeys) string {
	if len(scratch) == 0 {
		return c.checkKeys(spec, args)
	}
	a := c.srv.assign.Load()
	if a == nil {
		return errNoAssign
	}
	strict := spec.write && c.srv.strict.Load()
	for _, i := range spec.KeyIndexes(args) {
		if _, ok := scratch[string(args[i])]; ok {
			continue
		}
		if spec.write && c.srv.mig.fence.Load() != nil {
			if _, fr := c.keyFenced(args[i]); fr != nil {
				return errFenced
			}
		}
		if msg := c.checkKey(a, args[i], strict); msg != "" {
			return msg
		}
	}
	return ""
}

// extend merges old, a prepare of the same transaction from an earlier
// round that wrote nothing (TX.DUMP, TX.DUMPX), into p: p takes over its
// keys and locks. Caller holds t.mu.
func (t *txTable) extend(old, p *preparedTx) bool {
	if old.busy || len(old.writes) > 0 || old.db != p.db || old.durable {
		return false
	}
	idx := make(map[txLockKey]int, len(old.keys))
	keys := append([]txLockKey(nil), old.keys...)
	excl := append([]bool(nil), old.excl...)
	for i, k := range keys {
		idx[k] = i
	}
	for i, k := range p.keys {
		if j, ok := idx[k]; ok {
			excl[j] = excl[j] || p.excl[i]
			continue
		}
		keys = append(keys, k)
		excl = append(excl, p.excl[i])
	}
	p.keys, p.excl = keys, excl
	return true
}

// priorColls reads, before a prepare's commands run, the state of each
// collection it may write: a collection's meta does not change when only
// its elements do, so its final state is compared with this one.
func priorColls(tx *bitcask.Tx, p *preparedTx, before []bitcask.Meta, existed []bool) (map[string][]byte, error) {
	var prior map[string][]byte
	for i, k := range p.keys {
		if !p.excl[i] || !existed[i] || before[i].Type == bitcask.TypeString {
			continue
		}
		s, err := readState(tx, []byte(k.key))
		if err != nil {
			return nil, err
		}
		if prior == nil {
			prior = make(map[string][]byte)
		}
		prior[k.key] = xstate.Encode(s)
	}
	return prior, nil
}

// captureFinals keeps in p the final state of every key its commands
// changed. A key they left alone (a WRONGTYPE, an NX that did not set, an
// SADD of a member already there) is not written.
func captureFinals(tx *bitcask.Tx, p *preparedTx, before []bitcask.Meta, existed []bool, prior map[string][]byte) error {
	for i, k := range p.keys {
		if !p.excl[i] {
			continue
		}
		m, ok := tx.Meta([]byte(k.key))
		prev, wasColl := prior[k.key]
		switch {
		case !ok && !existed[i]:
			continue
		case !ok:
			p.writes = append(p.writes, txFinal{key: []byte(k.key), del: true})
			continue
		case !wasColl && m.Type == bitcask.TypeString && existed[i] && m.Seq == before[i].Seq:
			continue
		}
		w, err := finalState(tx, k.key, m)
		if err != nil {
			return err
		}
		if wasColl && w.coll != nil && bytes.Equal(xstate.Encode(w.coll), prev) {
			continue
		}
		p.writes = append(p.writes, w)
	}
	return nil
}
