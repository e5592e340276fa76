// Package rangemap is the one implementation of shardkv's range map: its JSON
// format, the rules a map must follow, the position of a key in [0,1) and the
// index a key belongs to. The proxy and the shard nodes both import it, so
// they can never disagree about where a key belongs.
package rangemap

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Shard is one entry of the map: the node that owns positions Start <= p < End.
type Shard struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// Size is the number of bytes of live data (keys plus values) the shard
	// may hold; 0 means no limit.
	Size int64  `json:"size"`
	Host string `json:"host"`
	Port int    `json:"port"`
	// Replicas are the nodes that copy the shard from its primary (Host,
	// Port), in the order a failover prefers them on equal offsets
	// (docs/REPLICATION.md).
	Replicas []Replica `json:"replicas,omitempty"`
	// MinAcks is how many replicas must hold a write before its reply
	// goes out; 0 is asynchronous.
	MinAcks int `json:"min_acks,omitempty"`
}

// Replica is a node that copies a shard.
type Replica struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// ReplicaAddrs are the host:port of the shard's replicas, in order.
func (s Shard) ReplicaAddrs() []string {
	var out []string
	for _, r := range s.Replicas {
		out = append(out, r.Addr())
	}
	return out
}

// Addr is the replica's host:port.
func (r Replica) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// Addr is the shard node's host:port.
func (s Shard) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Contains reports whether position p falls in the shard's half-open range.
func (s Shard) Contains(p float64) bool { return s.Start <= p && p < s.End }

// Map is a validated range map. Shards are sorted by Start and tile [0,1).
type Map struct {
	// HashTags turns on Redis Cluster's hash-tag rule: a key's position is
	// the position of its tag (see Tag) instead of its whole bytes. A map
	// without the field keeps whole-key positions, so data placed by such
	// a map stays where it is; the rule cannot change for a cluster that
	// holds data (README, "Hash tags").
	HashTags bool    `json:"hash_tags,omitempty"`
	Shards   []Shard `json:"shards"`
	// Epoch numbers the map's versions in etcd (docs/RESHARDING.md): every
	// change is epoch+1, so it only grows. A static map file has none
	// (epoch 0).
	Epoch uint64 `json:"epoch,omitempty"`
}

// Marshal renders m as the JSON Parse reads.
func Marshal(m *Map) ([]byte, error) { return json.MarshalIndent(m, "", "  ") }

//go:embed default.json
var defaultJSON []byte

// DefaultJSON is the embedded map used by `make run` and by a proxy started
// without a map file: three shard nodes on 127.0.0.1:7001-7003.
func DefaultJSON() []byte { return append([]byte(nil), defaultJSON...) }

// Default returns the embedded default map.
func Default() *Map {
	m, err := Parse(defaultJSON)
	if err != nil {
		panic("rangemap: embedded default map is invalid: " + err.Error())
	}
	return m
}

// Load reads and validates the map file at path.
func Load(path string) (*Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a map in pyshard's JSON format and validates it.
func Parse(data []byte) (*Map, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Map
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("range map: bad JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("range map: bad JSON: trailing data after the map object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate sorts the shards by Start and checks every rule of the format.
// The error names the rule and the shard that breaks it.
func (m *Map) Validate() error {
	if len(m.Shards) == 0 {
		return errors.New("range map: no shards")
	}
	sort.SliceStable(m.Shards, func(i, j int) bool { return m.Shards[i].Start < m.Shards[j].Start })
	names := make(map[string]bool, len(m.Shards))
	for i, s := range m.Shards {
		switch {
		case s.Name == "":
			return fmt.Errorf("range map: shard #%d has no name", i)
		case names[s.Name]:
			return fmt.Errorf("range map: duplicate name: shard %q appears twice", s.Name)
		case math.IsNaN(s.Start) || math.IsNaN(s.End) || math.IsInf(s.Start, 0) || math.IsInf(s.End, 0):
			return fmt.Errorf("range map: shard %q: start and end must be finite numbers", s.Name)
		case s.End <= s.Start:
			return fmt.Errorf("range map: end <= start: shard %q has [%v,%v)", s.Name, s.Start, s.End)
		case s.Size < 0:
			return fmt.Errorf("range map: shard %q: size %d is negative", s.Name, s.Size)
		case s.Host == "":
			return fmt.Errorf("range map: shard %q has no host", s.Name)
		case s.Port <= 0 || s.Port > 65535:
			return fmt.Errorf("range map: shard %q: port %d is not in 1..65535", s.Name, s.Port)
		}
		// A node may serve several shards, adjacent or not (a split or a
		// move leaves them there): it owns the list of their ranges
		// (NodeAssignArgs).
		names[s.Name] = true
		if i == 0 {
			if s.Start != 0 {
				return fmt.Errorf("range map: does not start at 0.0: first shard %q starts at %v", s.Name, s.Start)
			}
			continue
		}
		prev := m.Shards[i-1]
		if s.Start > prev.End {
			return fmt.Errorf("range map: gap: [%v,%v) between shard %q and shard %q is owned by nobody", prev.End, s.Start, prev.Name, s.Name)
		}
		if s.Start < prev.End {
			return fmt.Errorf("range map: overlap: shard %q starts at %v inside shard %q which ends at %v", s.Name, s.Start, prev.Name, prev.End)
		}
	}
	if last := m.Shards[len(m.Shards)-1]; last.End != 1 {
		return fmt.Errorf("range map: does not reach 1.0: last shard %q ends at %v", last.Name, last.End)
	}
	addrs := make(map[string]string, len(m.Shards)) // primary address -> a shard of it
	for _, s := range m.Shards {
		addrs[s.Addr()] = s.Name
	}
	if err := m.validateReplicas(addrs); err != nil {
		return err
	}
	if m.HashTags && len(m.Shards) > MaxTagShards {
		return fmt.Errorf("range map: %d shards: a map with hash_tags has at most %d (the proxy's SCAN cursor holds the shard index)", len(m.Shards), MaxTagShards)
	}
	return nil
}

// validateReplicas checks that a replica is no shard's primary, copies
// one node only (the shards a split left on one primary share their
// replicas), and that min_acks is possible; primaries maps each primary
// address to a shard name.
func (m *Map) validateReplicas(primaries map[string]string) error {
	copies := map[string]string{} // replica address -> the primary it copies
	for _, s := range m.Shards {
		if s.MinAcks < 0 || s.MinAcks > len(s.Replicas) {
			return fmt.Errorf("range map: shard %q: min_acks %d must be between 0 and its %d replicas", s.Name, s.MinAcks, len(s.Replicas))
		}
		for _, r := range s.Replicas {
			switch {
			case r.Host == "" || r.Port <= 0 || r.Port > 65535:
				return fmt.Errorf("range map: shard %q: replica %q needs a host and a port in 1..65535", s.Name, r.Addr())
			case primaries[r.Addr()] != "":
				return fmt.Errorf("range map: shard %q: replica %s is the primary of shard %q", s.Name, r.Addr(), primaries[r.Addr()])
			case copies[r.Addr()] != "" && copies[r.Addr()] != s.Addr():
				return fmt.Errorf("range map: shard %q: replica %s already copies %s", s.Name, r.Addr(), copies[r.Addr()])
			}
			copies[r.Addr()] = s.Addr()
		}
	}
	return nil
}

// MaxTagShards is the most shards a map with hash tags may have: the
// proxy's SCAN cursor keeps the shard index plus one in its top
// TagCursorBits bits.
const MaxTagShards = 1<<TagCursorBits - 1

// TagCursorBits is the number of top bits of a proxy SCAN cursor that hold
// the shard index when hash tags are on (see TagCursor).
const TagCursorBits = 10

// TagCursor encodes the proxy's SCAN cursor under hash tags, where a
// shard's keys are spread over every hash: the shard index plus one in the
// top TagCursorBits bits (so no cursor but the first and the last is 0),
// the node's own cursor (a hash of its key directory, which stays ordered
// by whole-key hashes) in the rest, with its low TagCursorBits bits
// dropped. Dropping them rounds the node's cursor down, so the next call
// revisits at most the keys whose hashes lie in that window (SCAN may
// return a key twice, as Redis's may) and never skips one.
func TagCursor(shard int, node uint64) uint64 {
	return uint64(shard+1)<<(64-TagCursorBits) | node>>TagCursorBits
}

// SplitTagCursor is the inverse of TagCursor: the shard index and the node
// cursor to send. 0 is the start, shard 0 from its first hash; a cursor
// no TagCursor made (its top bits 0) is read as shard 0.
func SplitTagCursor(c uint64) (shard int, node uint64) {
	top := int(c >> (64 - TagCursorBits))
	if top == 0 {
		return 0, c << TagCursorBits
	}
	return top - 1, c << TagCursorBits
}

// Tag returns the bytes of key that decide its position under Redis
// Cluster's hash-tag rule: the bytes between the first '{' and the first
// '}' after it when there is at least one between them, else the whole key.
func Tag(key []byte) []byte {
	open := bytes.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	shut := bytes.IndexByte(key[open+1:], '}')
	if shut <= 0 { // no '}' after the '{', or "{}"
		return key
	}
	return key[open+1 : open+1+shut]
}

// TagString is Tag for a string key, without copying it.
func TagString(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	shut := strings.IndexByte(key[open+1:], '}')
	if shut <= 0 {
		return key
	}
	return key[open+1 : open+1+shut]
}

// PlacementHash is the 64-bit hash whose position places key under this
// map: xxhash64 of the tag when hash tags are on, of the whole key when off.
func (m *Map) PlacementHash(key []byte) uint64 { return PlacementHash(key, m.HashTags) }

// PlacementHash is the hash that places key under the given mode; the one
// function behind every placement decision of proxy and node.
func PlacementHash(key []byte, hashTags bool) uint64 {
	if hashTags {
		key = Tag(key)
	}
	return xxhash.Sum64(key)
}

// PlacementOfHashed is PlacementHash for a caller that holds whole, the
// xxhash64 of the whole key, already (the node's key directory is keyed by
// it): without a tag the placement hash is that same hash.
func PlacementOfHashed(key []byte, whole uint64, hashTags bool) uint64 {
	if !hashTags {
		return whole
	}
	if t := Tag(key); len(t) != len(key) {
		return xxhash.Sum64(t)
	}
	return whole
}

// Hashed returns the bytes of key the map hashes to place it.
func (m *Map) Hashed(key []byte) []byte {
	if m.HashTags {
		return Tag(key)
	}
	return key
}

// Position is key's position under this map (see PlacementHash).
func (m *Map) Position(key []byte) float64 { return PositionOfHash(PlacementHash(key, m.HashTags)) }

// Position is where key falls in [0,1) under whole-key placement (a map
// without hash_tags): the top 53 bits of xxhash64 over the whole key, as a
// fraction. float64 represents every such value exactly. Map.Position is
// the position under a given map's mode.
func Position(key []byte) float64 { return PositionOfHash(xxhash.Sum64(key)) }

// PositionString is Position for a string key, without copying it.
func PositionString(key string) float64 { return PositionOfHash(xxhash.Sum64String(key)) }

// PositionOfHash is the position of a key whose xxhash64 is h, for callers
// that already hold the hash (the node's key directory is ordered by it, and
// the proxy's SCAN cursor is one).
func PositionOfHash(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// HashBounds returns the first and last 64-bit hash whose position is in
// [start, end), for 0 <= start < end <= 1: the hashes a shard with that
// range owns. Rounding start up matters: a start such as 0.1 is not a
// multiple of 2^-53, and rounding down would name a hash of the previous
// shard.
func HashBounds(start, end float64) (first, last uint64) {
	first = firstHash(start)
	if end >= 1 {
		return first, math.MaxUint64
	}
	return first, firstHash(end) - 1
}

func firstHash(p float64) uint64 { return uint64(math.Ceil(p*(1<<53))) << 11 }

// Find returns the index in m.Shards of the shard that owns position p.
func (m *Map) Find(p float64) int {
	// The first shard whose End is beyond p owns it, since ranges tile [0,1).
	i := sort.Search(len(m.Shards), func(i int) bool { return p < m.Shards[i].End })
	if i == len(m.Shards) {
		i = len(m.Shards) - 1
	}
	return i
}

// Locate returns the index in m.Shards of the shard that owns key.
func (m *Map) Locate(key []byte) int { return m.Find(m.Position(key)) }

// Lookup returns the shard with the given name.
func (m *Map) Lookup(name string) (Shard, bool) {
	for _, s := range m.Shards {
		if s.Name == name {
			return s, true
		}
	}
	return Shard{}, false
}

// NodeAssignArgs is the SHARD.ASSIGN command, its name first, that gives the
// node at host:port its ranges under m: every shard of m with that address,
// in map order, the first as "name start end size" and each other as
// "RANGE name start end size", then "HASHTAGS 1" when m has hash tags and
// "EPOCH n" when m has an epoch. Nil when no shard of m is at host:port:
// SHARD.UNASSIGN EPOCH n tells a node the map gives it no range.
// The proxies push it, and the controller sends it on a move's switch
// (docs/RESHARDING.md), so both give a node the same assignment.
func (m *Map) NodeAssignArgs(host string, port int) []string {
	var args []string
	for _, s := range m.Shards {
		if s.Host != host || s.Port != port {
			continue
		}
		if args == nil {
			args = []string{"SHARD.ASSIGN"}
		} else {
			args = append(args, "RANGE")
		}
		args = append(args, s.Name, FormatPosition(s.Start), FormatPosition(s.End), strconv.FormatInt(s.Size, 10))
	}
	if args == nil {
		return nil
	}
	if m.HashTags {
		args = append(args, "HASHTAGS", "1")
	}
	if m.Epoch > 0 {
		args = append(args, "EPOCH", strconv.FormatUint(m.Epoch, 10))
	}
	return args
}

// FormatPosition renders a position the way replies and errors show it.
func FormatPosition(p float64) string { return strconv.FormatFloat(p, 'g', -1, 64) }

// Index returns the index (namespace) a key belongs to: the bytes before its
// first ':', or "" when the key has none.
func Index(key []byte) []byte {
	if i := bytes.IndexByte(key, ':'); i >= 0 {
		return key[:i]
	}
	return nil
}

// IndexString is Index for a string key.
func IndexString(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return key[:i]
		}
	}
	return ""
}

// SCAN cursors, on a node and on the proxy, are key hashes: the next hash to
// visit (see PositionOfHash). Both servers read them with ParseCursor.
// ParseCursor reads a SCAN cursor as Redis does with strtoul: an optional
// sign ('-' negates modulo 2^64), then decimal digits, nothing else.
func ParseCursor(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, true // strtoul("") is 0 with nothing left over
	}
	neg := false
	if b[0] == '+' || b[0] == '-' {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	u, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		u = -u
	}
	return u, true
}
