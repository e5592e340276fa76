package bitcask

import (
	"math"
	"strconv"
	"testing"
)

// TestCountHashRange: counts of keys, and of those with an expiry, by hash
// range agree with a pass over the keys: ranges inside one key directory
// shard, across shards, whole, at both ends of the hash space, and empty.
func TestCountHashRange(t *testing.T) {
	clk := newTestClock()
	o := testOptions()
	o.Clock = clk.Now
	db := mustOpen(t, t.TempDir(), o)
	now := clk.Ms()
	for i := 0; i < 5000; i++ {
		exp := int64(0)
		if i%3 == 0 {
			exp = now + 3600_000
		}
		if err := db.Put([]byte("k"+strconv.Itoa(i)), []byte("v"), exp); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(lo, hi uint64) (keys, expiring int) {
		db.Range(func(key []byte, m Meta) bool {
			if h := Hash(key); lo <= h && h <= hi {
				keys++
				if m.ExpireAt != 0 {
					expiring++
				}
			}
			return true
		})
		return keys, expiring
	}
	const shard = uint64(1) << (64 - shardBits)
	for _, r := range []struct{ lo, hi uint64 }{
		{0, math.MaxUint64},
		{0, 1<<63 - 1},
		{1 << 63, math.MaxUint64},
		{5 * shard, 9*shard - 1},
		{5*shard + 12345, 5*shard + shard/2},
		{shard / 3, 200*shard + shard/7},
		{math.MaxUint64 - shard/2, math.MaxUint64},
		{0, 0},
		{10, 5},
	} {
		gotK, gotE := db.CountHashRange(r.lo, r.hi)
		wantK, wantE := pass(r.lo, r.hi)
		if gotK != wantK || gotE != wantE {
			t.Errorf("CountHashRange(%#x, %#x) = %d keys, %d expiring; a pass counts %d, %d", r.lo, r.hi, gotK, gotE, wantK, wantE)
		}
	}
	if k, e := db.CountHashRange(0, math.MaxUint64); k != 5000 || k != db.Len() || e != db.ExpiringKeys() {
		t.Errorf("whole space: %d keys, %d expiring; Len %d, ExpiringKeys %d", k, e, db.Len(), db.ExpiringKeys())
	}
}
