package bitcask
import "testing"
func BenchmarkZZFill(b *testing.B) {
	dir := millionKeyDir(b)
	o := benchOpts(SyncNo); o.MaxFileSize = 32<<20; o.DisableHints = true
	db, _ := Open(dir, o)
	defer db.Close()
	var caps, lens, chunks, arenaCap, arenaUsed, blocks int64
	for i := range db.kd.shards {
		s := &db.kd.shards[i]
		for _, c := range s.chunks { caps += int64(cap(c.e)); lens += int64(len(c.e)); chunks++ }
		for _, bl := range s.arena.blocks { arenaCap += int64(cap(bl)); arenaUsed += int64(len(bl)); blocks++ }
	}
	b.Logf("entries %d cap %d fill %.3f chunks %d (%.1f/chunk) entrybytes/key %.1f arena cap %d used %d blocks %d arena/key %.2f", lens, caps, float64(lens)/float64(caps), chunks, float64(lens)/float64(chunks), float64(caps*40)/float64(lens), arenaCap, arenaUsed, blocks, float64(arenaCap)/float64(lens))
}
