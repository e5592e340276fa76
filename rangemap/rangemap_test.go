package rangemap

import (
	"math"
	"strings"
	"testing"
)

func shard(name string, start, end float64, port int) string {
	return `{"name":"` + name + `","start":` + ftoa(start) + `,"end":` + ftoa(end) + `,"size":0,"host":"127.0.0.1","port":` + itoa(port) + `}`
}

// replicated is shard with replicas on the given ports and min_acks.
func replicated(name string, start, end float64, port, minAcks int, replicas ...int) string {
	var rs []string
	for _, p := range replicas {
		rs = append(rs, `{"host":"127.0.0.1","port":`+itoa(p)+`}`)
	}
	s := shard(name, start, end, port)
	return s[:len(s)-1] + `,"min_acks":` + itoa(minAcks) + `,"replicas":[` + strings.Join(rs, ",") + `]}`
}

func ftoa(f float64) string { return FormatPosition(f) }
func itoa(i int) string     { return FormatPosition(float64(i)) }

func mapOf(shards ...string) string { return `{"shards":[` + strings.Join(shards, ",") + `]}` }

func TestParseValidation(t *testing.T) {
	cases := []struct {
		name, json, wantErr string
	}{
		{"valid two", mapOf(shard("a", 0, 0.5, 1), shard("b", 0.5, 1, 2)), ""},
		{"valid unsorted", mapOf(shard("b", 0.5, 1, 2), shard("a", 0, 0.5, 1)), ""},
		{"valid one", mapOf(shard("a", 0, 1, 1)), ""},
		{"gap", mapOf(shard("a", 0, 0.4, 1), shard("b", 0.5, 1, 2)), `gap: [0.4,0.5) between shard "a" and shard "b"`},
		{"overlap", mapOf(shard("a", 0, 0.6, 1), shard("b", 0.5, 1, 2)), `overlap: shard "b" starts at 0.5 inside shard "a"`},
		{"duplicate name", mapOf(shard("a", 0, 0.5, 1), shard("a", 0.5, 1, 2)), `duplicate name: shard "a"`},
		{"adjacent shards on one node", mapOf(shard("a", 0, 0.3, 1), shard("a-2", 0.3, 0.6, 1), shard("c", 0.6, 1, 2)), ""},
		{"shards not adjacent on one node", mapOf(shard("a", 0, 0.3, 1), shard("b", 0.3, 0.6, 2), shard("c", 0.6, 1, 1)), ""},
		{"end equals start", mapOf(shard("a", 0, 0.5, 1), shard("b", 0.5, 0.5, 2), shard("c", 0.5, 1, 3)), `end <= start: shard "b"`},
		{"end before start", mapOf(shard("a", 0, 0.5, 1), shard("b", 0.5, 0.4, 2)), `end <= start: shard "b"`},
		{"not reaching 1.0", mapOf(shard("a", 0, 0.5, 1), shard("b", 0.5, 0.9, 2)), `does not reach 1.0: last shard "b" ends at 0.9`},
		{"not starting at 0", mapOf(shard("a", 0.1, 1, 1)), `does not start at 0.0: first shard "a"`},
		{"bad JSON", `{"shards": [`, "bad JSON"},
		{"unknown field", `{"shards":[{"name":"a","start":0,"end":1,"host":"h","port":1,"prot":2}]}`, "bad JSON"},
		{"trailing data", mapOf(shard("a", 0, 1, 1)) + "{}", "trailing data"},
		{"no shards", `{"shards":[]}`, "no shards"},
		{"no name", mapOf(shard("", 0, 1, 1)), "has no name"},
		{"no host", `{"shards":[{"name":"a","start":0,"end":1,"port":1}]}`, `shard "a" has no host`},
		{"bad port", mapOf(shard("a", 0, 1, 70000)), `shard "a": port 70000`},
		{"negative size", `{"shards":[{"name":"a","start":0,"end":1,"size":-1,"host":"h","port":1}]}`, "negative"},
		{"replicas", mapOf(replicated("a", 0, 0.5, 1, 1, 11, 12), replicated("b", 0.5, 1, 2, 0, 21)), ""},
		{"a split's shards share replicas", mapOf(replicated("a", 0, 0.5, 1, 0, 11), replicated("a-2", 0.5, 1, 1, 0, 11)), ""},
		{"replica is a primary", mapOf(replicated("a", 0, 0.5, 1, 0, 2), shard("b", 0.5, 1, 2)), `shard "a": replica 127.0.0.1:2 is the primary of shard "b"`},
		{"replica of two nodes", mapOf(replicated("a", 0, 0.5, 1, 0, 11), replicated("b", 0.5, 1, 2, 0, 11)), `shard "b": replica 127.0.0.1:11 already copies 127.0.0.1:1`},
		{"min_acks above the replicas", mapOf(replicated("a", 0, 1, 1, 2, 11)), `shard "a": min_acks 2 must be between 0 and its 1 replicas`},
		{"replica without a port", `{"shards":[{"name":"a","start":0,"end":1,"host":"h","port":1,"replicas":[{"host":"h"}]}]}`, `shard "a": replica`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.json))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if m.Shards[0].Start != 0 {
					t.Fatalf("shards not sorted: %+v", m.Shards)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// The position of a key is part of the contract between proxy and nodes and
// of the data already on disk: these vectors must never change.
func TestPositionGolden(t *testing.T) {
	cases := []struct {
		key  string
		want float64
	}{
		// xxhash64("") = 0xef46db3751d8e999, the published test vector.
		{"", float64(uint64(0xef46db3751d8e999)>>11) / (1 << 53)},
		{"", 0.9346749315317059},
		{"a", 0.8215144243236395},
		{"idx:a", 0.5035619038499504},
		{"key:000000000042", 0.3912397703166831},
	}
	for _, tc := range cases {
		if got := Position([]byte(tc.key)); got != tc.want {
			t.Errorf("Position(%q) = %v, want %v", tc.key, FormatPosition(got), FormatPosition(tc.want))
		}
		if got := PositionString(tc.key); got != tc.want {
			t.Errorf("PositionString(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestFindCoversEveryPosition(t *testing.T) {
	m := Default()
	for _, p := range []float64{0, 0.1, 0.3333333333333333, 0.5, 0.6666666666666666, 0.9999999999999999} {
		i := m.Find(p)
		if !m.Shards[i].Contains(p) {
			t.Errorf("Find(%v) = %s [%v,%v), which does not contain it", p, m.Shards[i].Name, m.Shards[i].Start, m.Shards[i].End)
		}
	}
	for i := 0; i < 10000; i++ {
		key := []byte("k" + itoa(i))
		p := Position(key)
		if p < 0 || p >= 1 {
			t.Fatalf("Position(%q) = %v outside [0,1)", key, p)
		}
		if s := m.Shards[m.Locate(key)]; !s.Contains(p) {
			t.Fatalf("Locate(%q) = %s which does not contain %v", key, s.Name, p)
		}
	}
}

func TestIndex(t *testing.T) {
	for key, want := range map[string]string{"idx:a": "idx", "a": "", ":a": "", "a:b:c": "a", "": ""} {
		if got := string(Index([]byte(key))); got != want {
			t.Errorf("Index(%q) = %q, want %q", key, got, want)
		}
		if got := IndexString(key); got != want {
			t.Errorf("IndexString(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestDefaultMap(t *testing.T) {
	m := Default()
	if len(m.Shards) != 3 || m.Shards[0].Addr() != "127.0.0.1:7001" {
		t.Fatalf("unexpected default map: %+v", m.Shards)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(DefaultJSON()))
	f.Add(mapOf(shard("a", 0, 0.5, 1), shard("b", 0.5, 1, 2)))
	f.Add(`{"shards":[{"name":"a","start":0,"end":1e308,"host":"h","port":1}]}`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, data string) {
		m, err := Parse([]byte(data))
		if err != nil {
			return
		}
		// A map that validates must place every position on exactly one shard.
		for _, p := range []float64{0, 0.25, 0.5, 0.75, 0.9999999999999999} {
			if !m.Shards[m.Find(p)].Contains(p) {
				t.Fatalf("valid map %s does not place %v", data, p)
			}
		}
	})
}

// TestHashBounds: the bounds are the first and last hash whose position is
// in [start, end): one step (2^11, the hashes sharing a position) further
// out is outside, on both sides, for starts and ends that float64 cannot
// hold exactly.
func TestHashBounds(t *testing.T) {
	for _, r := range []struct{ start, end float64 }{
		{0, 1}, {0, 0.5}, {0.5, 1}, {0.1, 0.2}, {1.0 / 3, 2.0 / 3}, {0.7, 1}, {0, 1e-9},
	} {
		first, last := HashBounds(r.start, r.end)
		if p := PositionOfHash(first); p < r.start || p >= r.end {
			t.Errorf("[%v,%v): first %#x at %v is outside", r.start, r.end, first, p)
		}
		if p := PositionOfHash(last); p < r.start || p >= r.end {
			t.Errorf("[%v,%v): last %#x at %v is outside", r.start, r.end, last, p)
		}
		if first != 0 && PositionOfHash(first-1) >= r.start {
			t.Errorf("[%v,%v): the hash before first (%#x) is inside too", r.start, r.end, first-1)
		}
		if r.end >= 1 {
			if last != math.MaxUint64 {
				t.Errorf("[%v,1): last %#x, want the last hash", r.start, last)
			}
		} else if PositionOfHash(last+1) < r.end {
			t.Errorf("[%v,%v): the hash after last (%#x) is inside too", r.start, r.end, last+1)
		}
	}
}

// The assignment of a node lists every shard at its address, in map
// order, whether adjacent or not, with the mode and the epoch.
func TestNodeAssignArgs(t *testing.T) {
	m, err := Parse([]byte(`{"hash_tags": true, "epoch": 7, "shards": [
		{"name":"a","start":0,"end":0.25,"size":100,"host":"h","port":1},
		{"name":"b","start":0.25,"end":0.5,"host":"h","port":2},
		{"name":"c","start":0.5,"end":0.75,"size":5,"host":"h","port":1},
		{"name":"d","start":0.75,"end":1,"host":"h","port":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"h", 1, "SHARD.ASSIGN a 0 0.25 100 RANGE c 0.5 0.75 5 RANGE d 0.75 1 0 HASHTAGS 1 EPOCH 7"},
		{"h", 2, "SHARD.ASSIGN b 0.25 0.5 0 HASHTAGS 1 EPOCH 7"},
		{"h", 3, ""},
		{"g", 1, ""},
	} {
		if got := strings.Join(m.NodeAssignArgs(tc.host, tc.port), " "); got != tc.want {
			t.Errorf("%s:%d: %q, want %q", tc.host, tc.port, got, tc.want)
		}
	}
	// A static map (no epoch) without hash tags sends neither.
	m.HashTags, m.Epoch = false, 0
	if got := strings.Join(m.NodeAssignArgs("h", 2), " "); got != "SHARD.ASSIGN b 0.25 0.5 0" {
		t.Errorf("static map: %q", got)
	}
	if m.NodeAssignArgs("h", 3) != nil {
		t.Error("an address without shards has args")
	}
}
