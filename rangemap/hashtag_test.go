package rangemap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/redistest"
)

// Redis Cluster's hash-tag rule (cluster.c keyHashSlot), case by case.
var tagCases = []struct{ key, tag string }{
	{"", ""},
	{"plain", "plain"},
	{"user:{42}:cart", "42"},
	{"user:{42}:profile", "42"},
	{"{42}", "42"},
	{"{}", "{}"},                 // empty tag: the whole key
	{"{}{42}", "{}{42}"},         // the first '{' has an empty tag; later ones are not looked at
	{"a{}b{c}", "a{}b{c}"},       // the same, inside a key
	{"{", "{"},                   // no closing brace
	{"}", "}"},                   // no opening brace
	{"}{", "}{"},                 // the '}' comes before the '{'
	{"a}b{c", "a}b{c"},           // no '}' after the '{'
	{"{a", "{a"},                 // unclosed
	{"{{a}}", "{a"},              // from the first '{' to the first '}' after it
	{"{a}{b}", "a"},              // only the first tag counts
	{"x{a}y{b}z", "a"},           // likewise
	{"{a}}", "a"},                // a second '}' is an ordinary byte
	{"{ }", " "},                 // any byte is a tag
	{"{\x00}", "\x00"},           // binary tags
	{"{\xff\xfe}k", "\xff\xfe"},  //
	{"pre{fix", "pre{fix"},       // a lone '{'
	{"{{}", "{"},                 // tag "{"
	{"{}}", "{}}"},               // the first '}' after '{' is right after it: empty
	{"foo{bar}{zap}", "bar"},     // Redis's own example
	{"foo{}{bar}", "foo{}{bar}"}, // Redis's own example: the whole key
	{"foo{{bar}}zap", "{bar"},    // Redis's own example
	{"foo{bar}{zap}", "bar"},
}

func TestTag(t *testing.T) {
	for _, c := range tagCases {
		if got := string(Tag([]byte(c.key))); got != c.tag {
			t.Errorf("Tag(%q) = %q, want %q", c.key, got, c.tag)
		}
		if got := TagString(c.key); got != c.tag {
			t.Errorf("TagString(%q) = %q, want %q", c.key, got, c.tag)
		}
	}
}

// TestTagMatchesRedis checks Tag against redis-server's own CLUSTER KEYSLOT
// on the table and on many generated keys: a key's slot is the slot of the
// bytes Tag picks (Tag never returns a key with a tag in it, so Redis
// hashes those bytes whole), and keys with equal tags share a slot.
func TestTagMatchesRedis(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: redistest.StartCluster(t)})
	defer rdb.Close()
	ctx := context.Background()
	keys := make([]string, 0, 4000)
	for _, c := range tagCases {
		keys = append(keys, c.key)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("{}{}ab:\x00\xff")
	for len(keys) < cap(keys) {
		b := make([]byte, rng.IntN(9))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		keys = append(keys, string(b))
	}
	slots := func(ks []string) []int64 {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(ks))
		for i, k := range ks {
			cmds[i] = pipe.ClusterKeySlot(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		out := make([]int64, len(ks))
		for i, c := range cmds {
			out[i] = c.Val()
		}
		return out
	}
	tags := make([]string, len(keys))
	for i, k := range keys {
		tags[i] = TagString(k)
		if strings.Contains(tags[i], "}") && tags[i] != k {
			t.Fatalf("Tag(%q) = %q holds a '}'", k, tags[i])
		}
	}
	ks, ts := slots(keys), slots(tags)
	for i := range keys {
		if ks[i] != ts[i] {
			t.Errorf("CLUSTER KEYSLOT %q = %d but KEYSLOT of its tag %q = %d", keys[i], ks[i], tags[i], ts[i])
		}
	}
	// Keys with one tag share a slot in Redis and a position here.
	for i := 0; i < 200; i++ {
		tag := fmt.Sprintf("t%d", i)
		a, b := "x{"+tag+"}y", "{"+tag+"}:z{q}"
		s := slots([]string{a, b})
		m := &Map{HashTags: true}
		if s[0] != s[1] || m.Position([]byte(a)) != m.Position([]byte(b)) {
			t.Fatalf("%q and %q: slots %d %d, positions %v %v", a, b, s[0], s[1], m.Position([]byte(a)), m.Position([]byte(b)))
		}
	}
}

func TestPlacementModes(t *testing.T) {
	on, off := &Map{HashTags: true}, &Map{}
	for _, c := range tagCases {
		k := []byte(c.key)
		if got, want := off.Position(k), Position(k); got != want {
			t.Errorf("whole-key Position(%q) = %v, want %v", c.key, got, want)
		}
		if got, want := on.Position(k), PositionOfHash(xxhash.Sum64String(c.tag)); got != want {
			t.Errorf("hash-tag Position(%q) = %v, want the position of %q, %v", c.key, got, c.tag, want)
		}
		whole := xxhash.Sum64(k)
		for _, tags := range []bool{false, true} {
			if got, want := PlacementOfHashed(k, whole, tags), PlacementHash(k, tags); got != want {
				t.Errorf("PlacementOfHashed(%q, tags %v) = %x, want %x", c.key, tags, got, want)
			}
		}
		if got := string(off.Hashed(k)); got != c.key {
			t.Errorf("whole-key Hashed(%q) = %q", c.key, got)
		}
		if got := string(on.Hashed(k)); got != c.tag {
			t.Errorf("hash-tag Hashed(%q) = %q, want %q", c.key, got, c.tag)
		}
	}
}

func TestHashTagsField(t *testing.T) {
	m, err := Parse([]byte(`{"hash_tags": true, "shards": [` + shard("a", 0, 1, 1) + `]}`))
	if err != nil || !m.HashTags {
		t.Fatalf("Parse with hash_tags: %+v, %v", m, err)
	}
	if m, err := Parse([]byte(mapOf(shard("a", 0, 1, 1)))); err != nil || m.HashTags {
		t.Fatalf("Parse without hash_tags: %+v, %v", m, err)
	}
	if Default().HashTags {
		t.Fatal("the embedded default map has hash tags on: a proxy started without a map would lose keys placed by whole-key positions")
	}
	big := &Map{HashTags: true}
	for i := 0; i <= MaxTagShards; i++ {
		big.Shards = append(big.Shards, Shard{Name: fmt.Sprint(i), Start: float64(i) / float64(MaxTagShards+1),
			End: float64(i+1) / float64(MaxTagShards+1), Host: "h", Port: i + 1})
	}
	big.Shards[len(big.Shards)-1].End = 1
	if err := big.Validate(); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("a map of %d shards with hash tags: %v", len(big.Shards), err)
	}
}

func TestTagCursor(t *testing.T) {
	for _, c := range []struct {
		shard int
		node  uint64
	}{{0, 0}, {0, 1 << 10}, {0, 12345 << 10}, {2, 1<<64 - 1<<10}, {MaxTagShards - 1, 7 << 10}} {
		cur := TagCursor(c.shard, c.node)
		if cur == 0 {
			t.Errorf("TagCursor(%d, %d) = 0: the client would stop", c.shard, c.node)
		}
		s, n := SplitTagCursor(cur)
		if s != c.shard || n != c.node {
			t.Errorf("SplitTagCursor(TagCursor(%d, %d)) = %d, %d", c.shard, c.node, s, n)
		}
	}
	// A node cursor that is not a multiple of 2^TagCursorBits comes back
	// rounded down: keys may be seen twice, never skipped.
	if _, n := SplitTagCursor(TagCursor(1, 5000)); n > 5000 || 5000-n >= 1<<TagCursorBits {
		t.Errorf("node cursor 5000 came back as %d", n)
	}
	if s, n := SplitTagCursor(0); s != 0 || n != 0 {
		t.Errorf("SplitTagCursor(0) = %d, %d", s, n)
	}
}

func BenchmarkPosition(b *testing.B) {
	key := []byte("user:{42}:cart:item")
	for _, m := range []*Map{{}, {HashTags: true}} {
		b.Run(fmt.Sprintf("hash_tags=%v", m.HashTags), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = m.Position(key)
			}
		})
	}
}

func FuzzTag(f *testing.F) {
	for _, c := range tagCases {
		f.Add([]byte(c.key))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		tag := Tag(key)
		if string(tag) != TagString(string(key)) {
			t.Fatalf("Tag and TagString differ on %q", key)
		}
		if len(tag) == len(key) {
			return
		}
		// A tag: non-empty, no '}', right after the key's first '{'.
		open := strings.IndexByte(string(key), '{')
		if len(tag) == 0 || strings.IndexByte(string(tag), '}') >= 0 || string(key[open+1:open+1+len(tag)]) != string(tag) || key[open+1+len(tag)] != '}' {
			t.Fatalf("Tag(%q) = %q", key, tag)
		}
	})
}
