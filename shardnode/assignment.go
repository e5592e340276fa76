package shardnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
)

// Files the node keeps in its data directory beside the Bitcask files.
const (
	assignmentFile = "assignment.json"
	indexesFile    = "indexes.json"
)

// Assignment is the range a node owns, pushed by the proxy with
// SHARD.ASSIGN and kept in assignment.json.
type Assignment struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// Size is the byte limit on live data (keys plus values); 0 is none.
	Size int64 `json:"size"`
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

// sameRange reports whether b assigns the same shard: name, range, size
// and placement mode.
func (a *Assignment) sameRange(b *Assignment) bool {
	return a.Name == b.Name && a.Start == b.Start && a.End == b.End && a.Size == b.Size && a.HashTags == b.HashTags
}

// owns reports whether key's position falls in the assignment's range.
func (a *Assignment) owns(key []byte) bool {
	p := rangemap.PositionOfHash(rangemap.PlacementHash(key, a.HashTags))
	return a.Start <= p && p < a.End
}

// placement is the hash that places key, whose whole-key hash is whole.
func (a *Assignment) placement(key []byte, whole uint64) uint64 {
	return rangemap.PlacementOfHashed(key, whole, a.HashTags)
}

func (a *Assignment) validate() error {
	switch {
	case a.Name == "" || !conncmd.ValidName([]byte(a.Name)):
		return errors.New("shard name must be printable ASCII without spaces")
	case math.IsNaN(a.Start) || math.IsNaN(a.End) || a.Start < 0 || a.End > 1 || a.Start >= a.End:
		return fmt.Errorf("range [%s,%s) is not inside [0,1) with start < end",
			rangemap.FormatPosition(a.Start), rangemap.FormatPosition(a.End))
	case a.Size < 0:
		return errors.New("size must not be negative")
	}
	return nil
}

// describe renders an assignment as the refusal message shows it; the
// proxy reads it back (proxy/shards.go, sameRangeOtherSize).
func (a *Assignment) describe() string {
	tags := ""
	if a.HashTags {
		tags = " hash_tags 1"
	}
	if a.Epoch > 0 {
		tags += " epoch " + strconv.FormatUint(a.Epoch, 10)
	}
	return fmt.Sprintf("%s [%s,%s) size %d%s", a.Name, rangemap.FormatPosition(a.Start),
		rangemap.FormatPosition(a.End), a.Size, tags)
}

// wrongShard is the refusal of a key at position p outside the range. An
// assignment made at an epoch names it at the end (" epoch N"): a proxy
// whose map is older reads the map again and retries (proxy/mismatch.go).
func (a *Assignment) wrongShard(p float64) string {
	msg := "WRONGSHARD " + rangemap.FormatPosition(p) + " not in [" + rangemap.FormatPosition(a.Start) +
		"," + rangemap.FormatPosition(a.End) + ") of " + a.Name
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
	for _, name := range []string{assignmentFile, indexesFile} {
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
		if err := a.validate(); err != nil {
			return fmt.Errorf("shardnode: %s: %w", assignmentFile, err)
		}
		s.assign.Store(&a)
		s.sizeLimit.Store(a.Size)
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
	data, err := json.MarshalIndent(a, "", "  ")
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
