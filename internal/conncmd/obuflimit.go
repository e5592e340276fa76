package conncmd

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
)

// Redis's client-output-buffer-limit: per class of client, a hard limit
// (the client is closed as soon as its pending output reaches it) and a
// soft limit with a time (closed once its output stayed at or over the soft
// limit for longer than that many seconds); 0 turns a limit off. Both
// servers keep the three classes Redis has and validate them as Redis
// does, and apply the normal class to their clients. The replica class has
// no clients here (there is no replication) and the pubsub class will have
// them once Pub/Sub exists: both are stored and shown, and do nothing yet.

// ObufClosed is the log message for a client closed over its limit,
// Redis's.
const ObufClosed = "client scheduled to be closed ASAP for overcoming of output buffer limits"

// Output buffer classes, in the order CONFIG GET shows them.
const (
	ObufNormal = iota
	ObufReplica
	ObufPubsub
	obufClasses
)

// obufClassNames are the names CONFIG GET shows.
var obufClassNames = [obufClasses]string{"normal", "slave", "pubsub"}

// BufferLimit is one class's limits; 0 is no limit.
type BufferLimit struct {
	Hard, Soft  uint64
	SoftSeconds int64
}

// On reports whether the class is limited at all.
func (l BufferLimit) On() bool { return l.Hard > 0 || l.Soft > 0 }

// Over is Redis's checkClientOutputBufferLimits for a client whose pending
// output is used bytes at Unix second now: whether it must be closed.
// softSince is when the client was first seen at or over the soft limit (0:
// it is under it), updated here.
func (l BufferLimit) Over(used uint64, softSince *int64, now int64) bool {
	if l.Hard > 0 && used >= l.Hard {
		return true
	}
	if l.Soft == 0 || used < l.Soft {
		*softSince = 0
		return false
	}
	if *softSince == 0 {
		*softSince = now
		return false
	}
	return now-*softSince > l.SoftSeconds
}

// OutputLimits holds the three classes' limits; safe for concurrent use
// (one Server's connections read them, CONFIG SET replaces them).
type OutputLimits struct {
	v atomic.Pointer[[obufClasses]BufferLimit]
}

// NewOutputLimits returns Redis's defaults: "normal 0 0 0 slave 268435456
// 67108864 60 pubsub 33554432 8388608 60".
func NewOutputLimits() *OutputLimits {
	o := &OutputLimits{}
	o.v.Store(&[obufClasses]BufferLimit{
		ObufNormal:  {},
		ObufReplica: {Hard: 256 << 20, Soft: 64 << 20, SoftSeconds: 60},
		ObufPubsub:  {Hard: 32 << 20, Soft: 8 << 20, SoftSeconds: 60},
	})
	return o
}

// Class returns one class's limits.
func (o *OutputLimits) Class(class int) BufferLimit { return o.v.Load()[class] }

// String is the value CONFIG GET shows.
func (o *OutputLimits) String() string {
	v := o.v.Load()
	var b []byte
	for i, l := range v {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, obufClassNames[i]...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, l.Hard, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, l.Soft, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, l.SoftSeconds, 10)
	}
	return string(b)
}

// Set applies a CONFIG SET value: "<class> <hard> <soft> <soft seconds>"
// repeated, the classes it names changed and the others left alone. It
// returns Redis's reason when the value is refused, and then changes
// nothing.
func (o *OutputLimits) Set(v []byte) string {
	next, reason := o.parse(v)
	if reason == "" {
		o.v.Store(next)
	}
	return reason
}

// Param is the CONFIG parameter client-output-buffer-limit over o.
func (o *OutputLimits) Param(changed func(string)) Param {
	return Param{Name: "client-output-buffer-limit", Get: o.String,
		Check: func(v []byte) string {
			_, reason := o.parse(v)
			return reason
		},
		Set: func(v []byte) {
			o.Set(v)
			if changed != nil {
				changed(o.String())
			}
		}}
}

// parse is Redis's setConfigClientOutputBufferLimitOption: the value split
// at every single space (so doubled spaces make empty words, as there),
// four words per class, every class checked before any is applied.
func (o *OutputLimits) parse(v []byte) (*[obufClasses]BufferLimit, string) {
	next := *o.v.Load()
	if len(v) == 0 {
		return &next, "" // Redis's split of "" has no words: nothing changes
	}
	words := bytes.Split(v, []byte(" "))
	if len(words)%4 != 0 {
		return nil, "Wrong number of arguments in buffer limit configuration."
	}
	for j := 0; j < len(words); j += 4 {
		class := -1
		switch strings.ToLower(string(words[j])) {
		case "normal":
			class = ObufNormal
		case "slave", "replica":
			class = ObufReplica
		case "pubsub":
			class = ObufPubsub
		}
		if class < 0 {
			return nil, "Invalid client class specified in buffer limit configuration."
		}
		hard, ok1 := memToULL(words[j+1])
		soft, ok2 := memToULL(words[j+2])
		secs, ok3 := softSeconds(words[j+3])
		if !ok1 || !ok2 || !ok3 {
			return nil, "Error in hard, soft or soft_seconds setting in buffer limit configuration."
		}
		next[class] = BufferLimit{Hard: hard, Soft: soft, SoftSeconds: secs}
	}
	return &next, ""
}

// memToULL is Redis's memtoull: digits (none is 0) and an optional unit b,
// k, kb, m, mb, g, gb, case-insensitive; a number past 2^64-1 saturates
// there, as strtoull does, and the unit's product wraps as in C.
func memToULL(w []byte) (uint64, bool) {
	if bytes.IndexByte(w, '-') >= 0 {
		return 0, false
	}
	i := 0
	for i < len(w) && w[i] >= '0' && w[i] <= '9' {
		i++
	}
	mul, ok := memUnit(w[i:])
	if !ok {
		return 0, false
	}
	if i == 0 {
		return 0, true
	}
	n, err := strconv.ParseUint(string(w[:i]), 10, 64)
	if err != nil {
		n = math.MaxUint64 // only a range error is left
	}
	return n * mul, true
}

// softSeconds is Redis's strtoll into the class's int field: an optional
// sign and digits (none is 0), the low 32 bits kept, negative refused.
func softSeconds(w []byte) (int64, bool) {
	s := string(w)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	for _, ch := range []byte(s) {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	var n int64
	if s != "" {
		u, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			u = math.MaxInt64 // strtoll's saturation
			if neg {
				u = 1 << 63 // LLONG_MIN, as a bit pattern
			}
		}
		n = int64(u)
		if neg {
			n = -n
		}
	}
	n = int64(int32(n))
	if n < 0 {
		return 0, false
	}
	return n, true
}
