package shardnode

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
)

// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT|HELP, as Redis 7.0 answers them.
//
// ENCODING. Redis picks a string's encoding from its content when a command
// stores a value it was given (SET, GETSET, MSET, APPEND to a missing key,
// ...): int for an integer of at most 20 characters in Redis's canonical
// form, embstr up to 44 bytes, raw beyond. Some commands keep the object
// they build instead: APPEND to an existing key and SETRANGE leave it raw,
// INCRBYFLOAT makes a new string (embstr up to 44 bytes, never int), COPY
// duplicates it (an integer then loses Redis's sharing, which REFCOUNT
// shows). The node keeps that choice in the key directory's tag of the
// value (bitcask's PutTagged, in a byte the entry had spare: no memory per
// key), and computes the rest from the content. Like Redis's, the choice
// does not survive a restart: Redis recomputes every encoding from the
// content when it loads its data, and an Open starts every tag at 0.
//
// FREQ needs an LFU maxmemory-policy, which the node never has
// (maxmemory-policy is noeviction), so it is Redis's error for that case.
//
// IDLETIME is the seconds since the key was last written (any command that
// stores it or changes its expiry), read from writeClock: no memory per
// key, and up to a second less than the exact time. Redis also counts
// reads as accesses (a GET resets it); the node's reads do not: a read
// time does not fit in the key directory's entry (40 bytes, no padding;
// about 13 spare bits scattered over three words, where Redis keeps a
// 24-bit clock of seconds), and storing one on a read would be a write
// under the shard's read lock, making every reader's access to that word
// atomic (README, OBJECT). After a restart keys count from the node's start,
// as Redis's count from the load.
//
// REFCOUNT is 1, or 2147483647 for the integers 0..9999 that Redis shares
// (OBJ_SHARED_INTEGERS; Redis shares them under every maxmemory-policy
// that does not evict by LRU or LFU, noeviction included).

// Encoding tags of a string value (bitcask.Meta.Tag).
const (
	encAuto     = 0 // from the content
	encRaw      = 1 // raw whatever the content (APPEND to a key, SETRANGE)
	encNotInt   = 2 // embstr or raw by length, never int (INCRBYFLOAT)
	encUnshared = 3 // int when the content is an integer, never shared (COPY)
)

// appendTag is the tag APPEND gives its result: Redis stores a missing
// key's value as it stores SET's, and appends to an existing one in place.
func appendTag(existed bool) uint8 {
	if existed {
		return encRaw
	}
	return encAuto
}

// copyTag is the tag of COPY's duplicate of a value tagged tag: Redis's
// dupStringObject keeps the encoding but not an integer's sharing.
func copyTag(v []byte, tag uint8) uint8 {
	if tag == encAuto && stringEncoding(v, tag) == "int" {
		return encUnshared
	}
	return tag
}

// stringEncoding is the encoding Redis would report for a string value
// stored with tag.
func stringEncoding(v []byte, tag uint8) string {
	switch tag {
	case encRaw:
		return "raw"
	case encAuto, encUnshared:
		if len(v) <= 20 {
			if _, ok := parseInt(v); ok {
				return "int"
			}
		}
	}
	if len(v) <= 44 {
		return "embstr"
	}
	return "raw"
}

// sharedIntRefcount is the refcount Redis reports for a shared object.
const sharedIntRefcount = math.MaxInt32

var objectHelp = []string{
	"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"ENCODING <key>",
	"    Return the kind of internal representation used in order to store the value",
	"    associated with a <key>.",
	"FREQ <key>",
	"    Return the access frequency index of the <key>. The returned integer is",
	"    proportional to the logarithm of the recent access frequency of the key.",
	"IDLETIME <key>",
	"    Return the idle time of the <key>, that is the approximated number of",
	"    seconds elapsed since the last access to the key.",
	"REFCOUNT <key>",
	"    Return the number of references of the value associated with the specified",
	"    <key>.",
	"HELP",
	"    Prints this help.",
}

const errNoLFU = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."

func cmdObject(c *client, args [][]byte) {
	sub := args[1]
	if eqFold(sub, "help") {
		c.helpReply(objectHelp)
		return
	}
	var known bool
	for _, s := range []string{"encoding", "freq", "idletime", "refcount"} {
		known = known || eqFold(sub, s)
	}
	if !known {
		c.errReply(cmdtable.ErrUnknownSubcommand("object", string(sub)))
		return
	}
	key := args[2]
	m, ok := c.st.meta(key)
	if !ok {
		c.null()
		return
	}
	switch {
	case eqFold(sub, "freq"):
		c.errReply(errNoLFU)
	case eqFold(sub, "idletime"):
		c.intReply(c.srv.clock.idle(m.Seq, c.now))
	case m.Type == bitcask.TypeHash && eqFold(sub, "encoding"):
		if fs, ok := c.hashFields(key, false); ok {
			c.bulkStr(hashEncoding(fs))
		}
	case m.Type == bitcask.TypeSet && eqFold(sub, "encoding"):
		if ms, ok := c.setMembers(key); ok {
			c.bulkStr(setEncoding(ms))
		}
	case m.Type == bitcask.TypeZSet && eqFold(sub, "encoding"):
		if ms, ok := c.zrangeOf(key, &bitcask.ZRange{Start: 0, Stop: 128, Count: -1}); ok {
			c.bulkStr(zsetEncoding(ms))
		}
	case m.Type == bitcask.TypeList && eqFold(sub, "encoding"):
		// Redis 7.0 keeps every list in a quicklist (listpack lists are 7.2's).
		c.bulkStr("quicklist")
	case m.Type == bitcask.TypeHash || m.Type == bitcask.TypeSet || m.Type == bitcask.TypeZSet || m.Type == bitcask.TypeList:
		c.intReply(1)
	default:
		v, m, ok, failed := c.get(key)
		switch {
		case failed:
		case !ok:
			c.null()
		case eqFold(sub, "encoding"):
			c.bulkStr(stringEncoding(v, m.Tag))
		default: // refcount
			n, _ := parseInt(v)
			if m.Tag == encAuto && stringEncoding(v, m.Tag) == "int" && n >= 0 && n < 10000 {
				c.intReply(sharedIntRefcount)
			} else {
				c.intReply(1)
			}
		}
	}
}

// writeClock tells when a sequence number was written, to the second,
// from samples of the database's newest sequence number taken once a
// second (OBJECT IDLETIME): a key's Meta.Seq was written after the last
// sample below it and no later than the first sample at or above it. A
// second without writes adds no sample. Past maxClockSamples the older
// half is thinned to every other sample, so the clock stays exact for the
// latest samples and coarsens, under-reporting idle time, for older ones.
type writeClock struct {
	last func() uint64
	stop chan struct{}
	once sync.Once

	mu      sync.Mutex
	samples []clockSample // increasing seq and time; samples[0] is the start
}

type clockSample struct {
	seq uint64 // the database's newest sequence number at ...
	at  int64  // ... this unix millisecond
}

const maxClockSamples = 8192

// startWriteClock samples last now and then every second until stopped.
func startWriteClock(last func() uint64) *writeClock {
	wc := &writeClock{last: last, stop: make(chan struct{})}
	wc.sample(time.Now().UnixMilli())
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-wc.stop:
				return
			case now := <-t.C:
				wc.sample(now.UnixMilli())
			}
		}
	}()
	return wc
}

func (wc *writeClock) close() { wc.once.Do(func() { close(wc.stop) }) }

func (wc *writeClock) sample(now int64) {
	seq := wc.last()
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if n := len(wc.samples); n > 0 && wc.samples[n-1].seq >= seq {
		return
	}
	wc.samples = append(wc.samples, clockSample{seq: seq, at: now})
	if len(wc.samples) > maxClockSamples {
		old := wc.samples[:maxClockSamples/2]
		kept := 1 // the start stays
		for i := 2; i < len(old); i += 2 {
			old[kept] = old[i]
			kept++
		}
		wc.samples = append(wc.samples[:kept], wc.samples[len(old):]...)
	}
}

// idle is the whole seconds from the write of seq to now (unix ms): from
// the first sample that covers seq, 0 when none does yet (written in the
// last second), from the start for a key written before it.
func (wc *writeClock) idle(seq uint64, now int64) int64 {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	j := sort.Search(len(wc.samples), func(i int) bool { return wc.samples[i].seq >= seq })
	if j == len(wc.samples) {
		return 0
	}
	return max(0, now-wc.samples[j].at) / 1000
}
