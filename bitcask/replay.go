package bitcask

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Replay at Open does not insert records into the key directory one by
// one: random-position inserts into sorted chunks cost a cache miss or two
// and a memmove each. It appends them to a per-shard buffer instead and
// folds the buffer in when it grows as large as the shard (and at the
// end, and before a flush-all): sort the buffer by (hash, key, arrival),
// then merge it with the shard's sorted entries in one pass. Per key, the
// records are applied in arrival (file) order with the same sequence
// number rules as a one-by-one replay, so the result is the same.

// rootType is the entry typ a record gives its key: a root's collection
// type, else 0.
func rootType(h *header) uint8 {
	if h.kind == kindColl {
		return h.keyType
	}
	return 0
}

// foldMin is the buffer length below which a shard never folds early.
var foldMin = 4096

type pendRec struct {
	hash     uint64
	seq      uint64
	expireAt int64
	off      uint32
	vlen     uint32 // packed with the value type, as entry.vlen
	key      uint32 // offset of the key in replayBuf.keys
	klen     uint32
	idx      uint32 // arrival order
	file     uint16
	kind     uint8
	typ      uint8 // a root's collection type
}

type replayBuf struct {
	recs []pendRec
	keys []byte
}

func (b *replayBuf) keyOf(r *pendRec) []byte { return b.keys[r.key : r.key+r.klen] }

// replayState is what replay carries from record to record.
type replayState struct {
	maxSeq   uint64 // highest sequence number seen in a valid record
	flushSeq uint64 // records older than the newest flush-all are dead
	dbs      [NumDBs]*replayDB
}

// replayDB is replayState's part for one database, made by its first
// record.
type replayDB struct {
	flushSeq uint64 // the database's records older than its newest flush-db are dead
	bufs     [numShards]replayBuf
	// colls gathers the element records by collection key; finishReplay
	// keeps those newer than their live root (see collection.go).
	colls map[string]*replayColl
	last  *replayColl // the collection of the last element record
}

func (rs *replayState) of(d uint8) *replayDB {
	if rs.dbs[d] == nil {
		rs.dbs[d] = new(replayDB)
	}
	return rs.dbs[d]
}

// replayColl is what replay found of one collection key: the newest
// root record's sequence number and every element record, in file
// order, appended to flat arrays (no map entry or string per element:
// finishColls builds the collection's own index from them in one pass).
//
// A hash's, set's or sorted set's records are kept one per element
// (byHash): a table of the elements' hashes finds the element's record,
// which a newer one replaces in place, so memory is the collection's
// size however often its elements were written. A list's are appended
// in file order (its tree is built from them sorted, which also finds
// an element's records side by side) and deduplicated by dedup when
// they grow past limit.
type replayColl struct {
	key    string
	gen    uint64 // the newest root record's sequence number
	recs   []elemRec
	fields []byte // the elements, at elemRec.at
	byHash bool
	// tab (byHash) holds, per slot, the high 32 bits of an element's
	// xxhash and 1 + the index of its record; linear probing from those
	// bits, at most half full.
	tab   []uint64
	limit int // length of recs at which dedup runs (not byHash)
}

// add takes the record r of element field, in file order: the newest of
// each element (of equal sequence numbers, the later in file order: a
// merge's copy) stays, tombstones included.
func (rc *replayColl) add(r *elemRec, field []byte) {
	if !rc.byHash {
		rc.appendRec(r, field)
		if len(rc.recs) >= rc.limit {
			rc.dedup()
		}
		return
	}
	if 2*(len(rc.recs)+1) > len(rc.tab) {
		rc.growTab()
	}
	tag := xxhash.Sum64(field) >> 32
	mask := uint64(len(rc.tab) - 1)
	for s := tag & mask; ; s = (s + 1) & mask {
		v := rc.tab[s]
		if v == 0 {
			rc.appendRec(r, field)
			rc.tab[s] = tag<<32 | uint64(len(rc.recs))
			return
		}
		if v>>32 != tag {
			continue
		}
		o := &rc.recs[uint32(v)-1]
		if o.flen == r.flen && bytes.Equal(rc.field(o), field) {
			if r.seq >= o.seq {
				r.at = o.at
				*o = *r
			}
			return
		}
	}
}

// appendRec appends r and its element, doubling the arrays when full.
// The arrays are the arena's (set.go): a big one grows without a copy and
// is never zeroed by the runtime, and none of it counts in the heap goal;
// release frees them.
func (rc *replayColl) appendRec(r *elemRec, field []byte) {
	if len(rc.recs) == cap(rc.recs) {
		rc.recs = arenaGrow(rc.recs, 2*len(rc.recs)+16)
	}
	if len(rc.fields)+len(field) > cap(rc.fields) {
		rc.fields = arenaGrow(rc.fields, 2*len(rc.fields)+len(field)+256)
	}
	r.at = len(rc.fields)
	rc.fields = append(rc.fields, field...)
	rc.recs = append(rc.recs, *r)
}

// growTab doubles tab, placing each entry by its hash bits again.
func (rc *replayColl) growTab() {
	tab := arenaAlloc[uint64](nil, max(16, 2*len(rc.tab)))
	mask := uint64(len(tab) - 1)
	for _, v := range rc.tab {
		if v == 0 {
			continue
		}
		s := (v >> 32) & mask
		for tab[s] != 0 {
			s = (s + 1) & mask
		}
		tab[s] = v
	}
	arenaFree(rc.tab)
	rc.tab = tab
}

// release frees rc's arrays.
func (rc *replayColl) release() {
	arenaFree(rc.recs)
	arenaFree(rc.fields)
	arenaFree(rc.tab)
	rc.recs, rc.fields, rc.tab = nil, nil, nil
}

// live drops, after the last record, what is not the collection's: the
// records not newer than its root and the tombstones. What is left is
// one record per element.
//
// A list's records may still hold several of one element, tombstones
// among them: buildList finds them side by side once sorted, which it
// does anyway, and keeps the newest if it is a put.
func (rc *replayColl) live() {
	arenaFree(rc.tab)
	rc.tab = nil
	n := 0
	for i := range rc.recs {
		if r := &rc.recs[i]; r.seq > rc.gen && (!rc.byHash || !r.dead) {
			rc.recs[n] = *r
			n++
		}
	}
	rc.recs = rc.recs[:n]
}

// elemRec is one element record found by replay.
type elemRec struct {
	seq  uint64
	at   int    // offset of the element in replayColl.fields
	off  uint32 // offset of the record in its file
	vlen uint32 // logical value length, packed as entry.vlen
	flen uint32 // the element's length
	file uint16
	dead bool // a tombstone
	// hasScore says score holds a sorted set member's score's bits (from
	// the record or its hint): finishColls need not read it.
	hasScore bool
	score    uint64
}

// dedupMin is the length of a list's records from which replay drops
// those a newer one of the same element replaced: an element set a
// million times must not keep a million records in memory until the
// end. After dedup the limit is a multiple of what is left, so a list of
// distinct elements pays for about a third more probes than it has
// records.
var dedupMin = 4096

// dedup keeps, of rc's records newer than its generation, the newest of
// each element (of equal sequence numbers, the later in file order: a
// merge's copy), in file order. A tombstone stays: an older put of its
// element may come later in file order (a merge's output sorts before
// newer files but not always after what it replaced).
func (rc *replayColl) dedup() {
	recs := rc.recs
	tab := arenaAlloc[uint32](nil, slotsFor(2*len(recs)))
	defer arenaFree(tab)
	mask := len(tab) - 1
	win := arenaAlloc[bool](nil, len(recs))
	defer arenaFree(win)
	for i := range recs {
		r := &recs[i]
		if r.seq <= rc.gen {
			continue
		}
		f := rc.field(r)
		for s := int(xxhash.Sum64(f)) & mask; ; s = (s + 1) & mask {
			j := tab[s]
			if j == 0 {
				tab[s] = uint32(i + 1)
				win[i] = true
				break
			}
			o := &recs[j-1]
			if o.flen != r.flen || !bytes.Equal(rc.field(o), f) {
				continue
			}
			if r.seq >= o.seq {
				win[j-1], win[i] = false, true
				tab[s] = uint32(i + 1)
			}
			break
		}
	}
	n, fb := 0, 0
	for i := range recs {
		if win[i] {
			n++
			fb += int(recs[i].flen)
		}
	}
	rc.limit = 4*n + dedupMin
	if n == len(recs) {
		return // every record is its element's newest and stays
	}
	out := arenaAlloc[elemRec](nil, n)[:0]
	fields := arenaAlloc[byte](nil, fb)[:0]
	for i := range recs {
		if r := recs[i]; win[i] {
			f := rc.field(&r)
			r.at = len(fields)
			fields = append(fields, f...)
			out = append(out, r)
		}
	}
	arenaFree(rc.recs)
	arenaFree(rc.fields)
	rc.recs, rc.fields = out, fields
}

func (rc *replayColl) field(r *elemRec) []byte { return rc.fields[r.at : r.at+int(r.flen)] }

func (r *elemRec) loc() elemLoc { return elemLoc{seq: r.seq, off: r.off, vlen: r.vlen, file: r.file} }

// coll returns the replayColl of key, made for a collection of key type
// keyType if it is new.
func (rs *replayDB) coll(key []byte, keyType uint8) *replayColl {
	// Element records come in runs of one collection's (a Tx's, a
	// merge's): the last one found answers most lookups.
	if rs.last != nil && rs.last.key == string(key) {
		return rs.last
	}
	if rs.colls == nil {
		rs.colls = make(map[string]*replayColl)
	}
	rc := rs.colls[string(key)]
	if rc == nil {
		rc = &replayColl{key: string(key), limit: dedupMin, byHash: keyType != keyTypeList}
		rs.colls[rc.key] = rc
	}
	rs.last = rc
	return rc
}

// replay takes one record found at Open (scanned or from a hint); score
// is a sorted set element's score's bits when the caller has them.
func (db *DB) replay(f *dataFile, off int64, h *header, key []byte, vlen uint32, score *uint64, rs *replayState) {
	if h.seq > rs.maxSeq {
		rs.maxSeq = h.seq
	}
	if h.seq < rs.flushSeq {
		return
	}
	if h.kind == kindFlushAll {
		for _, v := range db.views {
			v.flushReplayed(rs, h.seq)
		}
		rs.flushSeq = h.seq
		return
	}
	db = db.views[h.db()]
	rd := rs.of(h.db())
	if h.seq < rd.flushSeq {
		return
	}
	if h.kind == kindFlushDB {
		db.flushReplayed(rs, h.seq)
		return
	}
	if isElem(h.kind) {
		ck, field, _ := splitElemKey(key) // checked by the scanner and the hint reader
		rc := rd.coll(ck, h.keyType)
		r := elemRec{
			seq: h.seq, off: uint32(off), vlen: packVlen(vlen, h.valType),
			flen: uint32(len(field)), file: f.handle, dead: h.kind == kindElemDelete,
		}
		if score != nil {
			r.score, r.hasScore = *score, true
		}
		rc.add(&r, field)
		return
	}
	if h.kind == kindColl {
		rc := rd.coll(key, h.keyType)
		rc.gen = max(rc.gen, h.seq)
	}
	hash := xxhash.Sum64(key)
	si := hash >> (64 - shardBits)
	b := &rd.bufs[si]
	b.recs = append(b.recs, pendRec{
		hash: hash, seq: h.seq, expireAt: h.expireAt, off: uint32(off), vlen: packVlen(vlen, h.valType),
		key: uint32(len(b.keys)), klen: uint32(len(key)), idx: uint32(len(b.recs)), file: f.handle, kind: h.kind,
		typ: rootType(h),
	})
	b.keys = append(b.keys, key...)
	if n := len(b.recs); n >= foldMin && n >= db.kd.shards[si].n || len(b.keys) >= 1<<30 {
		db.fold(&db.kd.shards[si], b)
	}
}

// flushReplayed applies a flush of db's database at sequence number seq.
func (db *DB) flushReplayed(rs *replayState, seq uint64) {
	rd := rs.dbs[db.num]
	if rd == nil {
		return // nothing of the database replayed yet
	}
	db.foldAll(rd)
	rd.flushSeq = seq
	for i := range db.kd.shards {
		db.kd.shards[i].filter(func(e *entry) bool { return e.seq > seq })
	}
}

// foldAll folds every shard's buffer of db's database.
func (db *DB) foldAll(rd *replayDB) {
	if rd == nil {
		return
	}
	for i := range rd.bufs {
		db.fold(&db.kd.shards[i], &rd.bufs[i])
	}
}

// fold merges a shard's buffered records into it.
func (db *DB) fold(s *shard, b *replayBuf) {
	if len(b.recs) == 0 {
		return
	}
	// Compaction must not run while out holds key references: make sure
	// the arena has room for every buffered key first.
	kb := len(b.keys) + 3*len(b.recs)
	if len(s.arena.blocks)+kb/arenaBigKey+kb/(arenaMaxBlock-arenaBigKey)+2 >= maxArenaBlock {
		s.compact()
	}
	recs := b.recs
	slices.SortFunc(recs, func(x, y pendRec) int {
		if c := cmp.Compare(x.hash, y.hash); c != 0 {
			return c
		}
		if c := bytes.Compare(b.keyOf(&x), b.keyOf(&y)); c != 0 {
			return c
		}
		return cmp.Compare(x.idx, y.idx)
	})
	out := make([]entry, 0, s.n+len(recs))
	var cur entry
	next := func(yield func(e *entry) bool) {
		for ci := range s.chunks {
			es := s.chunks[ci].e
			for i := range es {
				if !yield(&es[i]) {
					return
				}
			}
		}
	}
	// Walk the existing entries and the sorted records together.
	pi := 0
	emitGroup := func(existing *entry) {
		// Apply every record of one key, starting from existing (or none).
		key := b.keyOf(&recs[pi])
		has := existing != nil
		if has {
			cur = *existing
		}
		h := recs[pi].hash
		for ; pi < len(recs) && recs[pi].hash == h && bytes.Equal(b.keyOf(&recs[pi]), key); pi++ {
			r := &recs[pi]
			switch r.kind {
			case kindPut, kindColl:
				if !has || r.seq >= cur.seq {
					k := cur.key
					cur = entry{hash: r.hash, seq: r.seq, expireAt: r.expireAt, off: r.off, vlen: r.vlen, file: r.file, key: k, typ: r.typ}
					has = true
				}
			case kindDelete:
				if has && r.seq > cur.seq {
					has = false
				}
			case kindExpire:
				if has && r.seq > cur.seq {
					cur.expireAt, cur.seq = r.expireAt, r.seq
				}
			}
		}
		switch {
		case has && existing != nil:
			out = append(out, cur) // keeps the existing key reference
		case has:
			cur.key = s.addKey(key)
			out = append(out, cur)
		case existing != nil:
			s.dropKeyNoCompact(len(key))
		}
	}
	for e := range next {
		for pi < len(recs) && s.before2(&recs[pi], b, e) {
			emitGroup(nil)
		}
		if pi < len(recs) && recs[pi].hash == e.hash && bytes.Equal(b.keyOf(&recs[pi]), s.keyOf(e)) {
			emitGroup(e)
			continue
		}
		out = append(out, *e)
	}
	for pi < len(recs) {
		emitGroup(nil)
	}
	s.rebuild(out)
	b.recs, b.keys = b.recs[:0], b.keys[:0]
	if s.arena.dead >= 4096 && s.arena.dead >= s.arena.used {
		s.compact()
	}
}

// before2 reports whether the buffered record r sorts before entry e.
func (s *shard) before2(r *pendRec, b *replayBuf, e *entry) bool {
	if r.hash != e.hash {
		return r.hash < e.hash
	}
	return bytes.Compare(b.keyOf(r), s.keyOf(e)) < 0
}

// rebuild replaces the shard's chunks with es, sorted, cut into chunks
// that have a little room to grow.
func (s *shard) rebuild(es []entry) {
	const fill = maxChunk - chunkGrow/2
	for _, c := range s.chunks {
		s.freeArray(c.e)
	}
	s.chunks = s.chunks[:0]
	s.n, s.nexp = len(es), 0
	for i := 0; i < len(es); i += fill {
		n := min(fill, len(es)-i)
		c := s.chunkArray(n, chunkCapFor(n))
		copy(c, es[i:i+n])
		s.chunks = append(s.chunks, chunk{first: c[0].hash, last: c[n-1].hash, e: c})
	}
	for i := range es {
		if es[i].expireAt != 0 {
			s.nexp++
		}
	}
}
