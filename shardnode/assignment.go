package shardnode

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
)

// Files the node keeps in its data directory beside the Bitcask files.
const (
	assignmentFile = "assignment.json"
	indexesFile    = "indexes.json"
)

// Assignment is the list of ranges a node owns, pushed by the proxy (or
// the controller) with SHARD.ASSIGN and kept in assignment.json. A node
// serves one shard of the map or several, adjacent or not (a split or a
// move leaves them on it): each is a Range.
type Assignment struct {
	// Name, Start, End and Size are the first range (Ranges[0]): an
	// assignment.json of one range reads as before ranges were lists.
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// Size is the byte limit on live data (keys plus values); 0 is none.
	Size int64 `json:"size"`
	// Ranges is every range, sorted by start, when there are more than
	// one; empty in a one-range file (read: Name, Start, End, Size).
	Ranges []Range `json:"ranges,omitempty"`
	// Strict, when set, overrides Config.StrictIndexes.
	Strict *bool `json:"strict,omitempty"`
	// HashTags is the map's placement mode (rangemap.Map.HashTags): keys
	// are owned by the position of their hash tag. An assignment.json
	// written before the mode existed has none: whole-key positions.
	HashTags bool `json:"hash_tags,omitempty"`
	// Epoch is the etcd map's epoch the assignment was given at
	// (docs/RESHARDING.md); 0 for a proxy with a static map file. An
	// assignment at an older epoch is refused; one at a newer epoch
	// replaces it without FORCE, since the map that makes it is newer.
	Epoch uint64 `json:"epoch,omitempty"`
}

// Range is one shard of the map a node serves: positions Start <= p < End,
// and the shard's size limit.
type Range struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Size  int64   `json:"size"`
}

// normalize makes Ranges the full list and the top fields its first entry,
// after a parse or a read of assignment.json.
func (a *Assignment) normalize() {
	if len(a.Ranges) == 0 {
		a.Ranges = []Range{{Name: a.Name, Start: a.Start, End: a.End, Size: a.Size}}
	}
	slices.SortStableFunc(a.Ranges, func(x, y Range) int { return cmp.Compare(x.Start, y.Start) })
	r := a.Ranges[0]
	a.Name, a.Start, a.End, a.Size = r.Name, r.Start, r.End, r.Size
}

// sizeLimit is the node's byte limit on live data: the sum of its ranges'
// sizes, none (0) when one of them has none. The node counts its live
// bytes as one figure, so the limit of a node holding several shards is
// their sum, not one limit per range.
func (a *Assignment) sizeLimit() int64 {
	var n int64
	for _, r := range a.Ranges {
		if r.Size == 0 {
			return 0
		}
		n += r.Size
	}
	return n
}

// sameRange reports whether b assigns the same shards: names, ranges,
// sizes and placement mode.
func (a *Assignment) sameRange(b *Assignment) bool {
	return slices.Equal(a.Ranges, b.Ranges) && a.HashTags == b.HashTags
}

// find is the index in Ranges of the range holding position p, or -1.
func (a *Assignment) find(p float64) int {
	for i := range a.Ranges {
		if r := &a.Ranges[i]; r.Start <= p && p < r.End {
			return i
		}
	}
	return -1
}

// hasPosition reports whether position p falls in one of the ranges.
func (a *Assignment) hasPosition(p float64) bool {
	if len(a.Ranges) == 1 {
		return a.Start <= p && p < a.End
	}
	return a.find(p) >= 0
}

// overlaps reports whether [lo,hi) meets one of the ranges.
func (a *Assignment) overlaps(lo, hi float64) bool {
	for _, r := range a.Ranges {
		if lo < r.End && r.Start < hi {
			return true
		}
	}
	return false
}

// covers reports whether [lo,hi) lies inside the ranges (adjacent ones
// together).
func (a *Assignment) covers(lo, hi float64) bool {
	for _, r := range a.Ranges {
		if r.Start <= lo && lo < r.End {
			lo = r.End
		}
	}
	return lo >= hi
}

// whole reports whether the ranges cover all of [0,1).
func (a *Assignment) whole() bool { return a.covers(0, 1) }

// owns reports whether key's position falls in one of the ranges.
func (a *Assignment) owns(key []byte) bool {
	return a.hasPosition(rangemap.PositionOfHash(rangemap.PlacementHash(key, a.HashTags)))
}

// placement is the hash that places key, whose whole-key hash is whole.
func (a *Assignment) placement(key []byte, whole uint64) uint64 {
	return rangemap.PlacementOfHashed(key, whole, a.HashTags)
}

func (a *Assignment) validate() error {
	names := make(map[string]bool, len(a.Ranges))
	for i, r := range a.Ranges {
		switch {
		case r.Name == "" || !conncmd.ValidName([]byte(r.Name)):
			return errors.New("shard name must be printable ASCII without spaces")
		case names[r.Name]:
			return fmt.Errorf("shard name %s given twice", r.Name)
		case math.IsNaN(r.Start) || math.IsNaN(r.End) || r.Start < 0 || r.End > 1 || r.Start >= r.End:
			return fmt.Errorf("range [%s,%s) is not inside [0,1) with start < end",
				rangemap.FormatPosition(r.Start), rangemap.FormatPosition(r.End))
		case r.Size < 0:
			return errors.New("size must not be negative")
		case i > 0 && r.Start < a.Ranges[i-1].End:
			return fmt.Errorf("ranges %s and %s overlap", a.Ranges[i-1].Name, r.Name)
		}
		names[r.Name] = true
	}
	return nil
}

// describe renders an assignment as the refusal message shows it, the
// ranges joined by ", "; the proxy reads it back (proxy/shards.go,
// sameRangeOtherSize).
func (a *Assignment) describe() string {
	var b strings.Builder
	for i, r := range a.Ranges {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s [%s,%s) size %d", r.Name, rangemap.FormatPosition(r.Start),
			rangemap.FormatPosition(r.End), r.Size)
	}
	if a.HashTags {
		b.WriteString(" hash_tags 1")
	}
	if a.Epoch > 0 {
		b.WriteString(" epoch " + strconv.FormatUint(a.Epoch, 10))
	}
	return b.String()
}

// wrongShard is the refusal of a key at position p outside the ranges,
// each named ("[start,end) of name", joined by ", "). An assignment made
// at an epoch names it at the end (" epoch N"): a proxy whose map is older
// reads the map again and retries (proxy/mismatch.go).
func (a *Assignment) wrongShard(p float64) string {
	msg := "WRONGSHARD " + rangemap.FormatPosition(p) + " not in "
	for i, r := range a.Ranges {
		if i > 0 {
			msg += ", "
		}
		msg += "[" + rangemap.FormatPosition(r.Start) + "," + rangemap.FormatPosition(r.End) + ") of " + r.Name
	}
	if a.Epoch > 0 {
		msg += " epoch " + strconv.FormatUint(a.Epoch, 10)
	}
	return msg
}

type indexesDoc struct {
	Indexes []string `json:"indexes"`
}

// loadState reads assignment.json and indexes.json when they exist, and
// removes the temporary files a crash in writeFileAtomic left behind.
func (s *Server) loadState() error {
	for _, name := range []string{assignmentFile, indexesFile, fenceFile} {
		left, _ := filepath.Glob(filepath.Join(s.cfg.Dir, name+".tmp*"))
		for _, f := range left {
			s.log.Info("removing leftover temporary file", "file", f)
			os.Remove(f)
		}
	}
	empty := map[string]struct{}{}
	s.indexes.Store(&empty)
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, assignmentFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("shardnode: %w", err)
	default:
		var a Assignment
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("shardnode: %s: %w", assignmentFile, err)
		}
		a.normalize()
		if err := a.validate(); err != nil {
			return fmt.Errorf("shardnode: %s: %w", assignmentFile, err)
		}
		s.assign.Store(&a)
		s.sizeLimit.Store(a.sizeLimit())
		if a.Strict != nil {
			s.strict.Store(*a.Strict)
		}
	}
	data, err = os.ReadFile(filepath.Join(s.cfg.Dir, indexesFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("shardnode: %w", err)
	default:
		var doc indexesDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("shardnode: %s: %w", indexesFile, err)
		}
		set := make(map[string]struct{}, len(doc.Indexes))
		for _, n := range doc.Indexes {
			set[n] = struct{}{}
		}
		s.indexes.Store(&set)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data so that a crash leaves the
// old or the new file, never a mix: temp file, fsync, rename, fsync dir.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, so that a rename or remove in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Server) saveAssignment(a *Assignment) error {
	doc := *a
	if len(doc.Ranges) == 1 {
		doc.Ranges = nil // the one-range file of before
	}
	data, err := json.MarshalIndent(&doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.cfg.Dir, assignmentFile, append(data, '\n'))
}

// indexExists reports whether INDEX.CREATE created the index.
func (s *Server) indexExists(name []byte) bool {
	_, ok := (*s.indexes.Load())[string(name)]
	return ok
}

// setIndex adds or removes an index and persists the set. Callers hold
// stateMu.
func (s *Server) setIndex(name string, present bool) error {
	cur := *s.indexes.Load()
	if _, ok := cur[name]; ok == present {
		return nil
	}
	next := make(map[string]struct{}, len(cur)+1)
	for n := range cur {
		next[n] = struct{}{}
	}
	if present {
		next[name] = struct{}{}
	} else {
		delete(next, name)
	}
	doc := indexesDoc{Indexes: make([]string, 0, len(next))}
	for n := range next {
		doc.Indexes = append(doc.Indexes, n)
	}
	slices.Sort(doc.Indexes)
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.cfg.Dir, indexesFile, append(data, '\n')); err != nil {
		return err
	}
	s.indexes.Store(&next)
	return nil
}
