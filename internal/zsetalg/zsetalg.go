// Package zsetalg is the sorted-set algebra of ZUNION, ZINTER, ZDIFF,
// ZINTERCARD and their STORE forms, as Redis 7.0 computes it: argument
// parsing with Redis's errors, weights, aggregation and the result's
// order. The shard node runs it over the sets of one shard; the proxy
// over sets it gathered from several (proxy/zsetops.go).
package zsetalg

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Member is a member of a sorted set and its score.
type Member struct {
	Member string
	Score  float64
}

// Op is the set operation.
type Op uint8

const (
	Union Op = iota
	Inter
	Diff
)

// Aggregate combines the scores of a member found in several sets.
type Aggregate uint8

const (
	Sum Aggregate = iota
	Min
	Max
)

// Options are a command's parsed arguments after its keys.
type Options struct {
	Op         Op
	Weights    []float64 // one per key (1 when not given)
	Agg        Aggregate
	WithScores bool
	Limit      int64 // ZINTERCARD's LIMIT, 0 for none
}

// Kind says which command's grammar Parse applies.
type Kind uint8

const (
	Plain Kind = iota // ZUNION, ZINTER, ZDIFF: WITHSCORES allowed
	Store             // the STORE forms
	Card              // ZINTERCARD: LIMIT only
)

// NumKeys reads the number of keys at args[i] (args[0] the command name)
// and checks that so many follow; msg is Redis's error otherwise.
func NumKeys(args [][]byte, i int) (n int, msg string) {
	v, err := strconv.ParseInt(string(args[i]), 10, 64)
	if err != nil {
		return 0, "ERR value is not an integer or out of range"
	}
	if v < 1 {
		return 0, "ERR at least 1 input key is needed for '" + strings.ToLower(string(args[0])) + "' command"
	}
	if v > int64(len(args)-i-1) {
		return 0, "ERR syntax error"
	}
	return int(v), ""
}

// Parse reads the options after n keys (rest: the arguments after them).
func Parse(rest [][]byte, op Op, kind Kind, n int) (o Options, msg string) {
	o.Op = op
	o.Weights = make([]float64, n)
	for i := range o.Weights {
		o.Weights[i] = 1
	}
	for j := 0; j < len(rest); {
		left := len(rest) - j
		switch w := rest[j]; {
		case op != Diff && kind != Card && left >= n+1 && eqFold(w, "weights"):
			j++
			for i := 0; i < n; i, j = i+1, j+1 {
				f, ok := ParseFloat(rest[j])
				if !ok {
					return o, "ERR weight value is not a float"
				}
				o.Weights[i] = f
			}
		case op != Diff && kind != Card && left >= 2 && eqFold(w, "aggregate"):
			switch a := rest[j+1]; {
			case eqFold(a, "sum"):
				o.Agg = Sum
			case eqFold(a, "min"):
				o.Agg = Min
			case eqFold(a, "max"):
				o.Agg = Max
			default:
				return o, "ERR syntax error"
			}
			j += 2
		case kind == Plain && eqFold(w, "withscores"):
			o.WithScores = true
			j++
		case kind == Card && left >= 2 && eqFold(w, "limit"):
			v, err := strconv.ParseInt(string(rest[j+1]), 10, 64)
			if err != nil {
				return o, "ERR value is not an integer or out of range"
			}
			if v < 0 {
				return o, "ERR LIMIT can't be negative"
			}
			o.Limit = v
			j += 2
		default:
			return o, "ERR syntax error"
		}
	}
	return o, ""
}

// ParseFloat parses a score or weight as Redis's strtod-based parser does:
// no leading space, no trailing bytes, not NaN, not out of range.
func ParseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' || b[0] == '\v' || b[0] == '\f' {
		return 0, false
	}
	if strings.ContainsRune(string(b), '_') {
		return 0, false // Go's digit separators; strtod has none
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func eqFold(b []byte, s string) bool { return strings.EqualFold(string(b), s) }

// Compute returns the result of o over sets (nil for an absent key), in
// the order Redis replies it: by score, then member.
func Compute(sets [][]Member, o *Options) []Member {
	var out []Member
	switch o.Op {
	case Diff:
		if len(sets[0]) == 0 {
			return nil
		}
		drop := make(map[string]bool)
		for _, s := range sets[1:] {
			for _, m := range s {
				drop[m.Member] = true
			}
		}
		for _, m := range sets[0] {
			if !drop[m.Member] {
				out = append(out, m)
			}
		}
	case Inter:
		idx := bySize(sets)
		if len(sets[idx[0]]) == 0 {
			return nil
		}
		others := make([]map[string]float64, len(idx))
		for k, i := range idx[1:] {
			others[k+1] = asMap(sets[i])
		}
	next:
		for _, m := range sets[idx[0]] {
			score := weighted(o.Weights[idx[0]], m.Score)
			for k, i := range idx[1:] {
				v, ok := others[k+1][m.Member]
				if !ok {
					continue next
				}
				score = aggregate(o.Agg, score, weighted(o.Weights[i], v))
			}
			out = append(out, Member{m.Member, score})
		}
	default:
		acc := make(map[string]float64)
		var order []string
		for _, i := range bySize(sets) {
			for _, m := range sets[i] {
				v := weighted(o.Weights[i], m.Score)
				if cur, ok := acc[m.Member]; ok {
					acc[m.Member] = aggregate(o.Agg, cur, v)
				} else {
					acc[m.Member] = v
					order = append(order, m.Member)
				}
			}
		}
		out = make([]Member, 0, len(order))
		for _, m := range order {
			out = append(out, Member{m, acc[m]})
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := cmp.Compare(a.Score, b.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Member, b.Member)
	})
	return out
}

// InterCard counts the intersection of sets, stopping at limit (0: none).
func InterCard(sets [][]Member, limit int64) int64 {
	idx := bySize(sets)
	others := make([]map[string]float64, len(idx))
	for k, i := range idx[1:] {
		others[k+1] = asMap(sets[i])
	}
	var n int64
next:
	for _, m := range sets[idx[0]] {
		for k := range idx[1:] {
			if _, ok := others[k+1][m.Member]; !ok {
				continue next
			}
		}
		n++
		if limit > 0 && n >= limit {
			break
		}
	}
	return n
}

// bySize returns the indexes of sets from the smallest, as Redis orders
// its inputs.
func bySize(sets [][]Member) []int {
	idx := make([]int, len(sets))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(len(sets[a]), len(sets[b])) })
	return idx
}

func asMap(s []Member) map[string]float64 {
	m := make(map[string]float64, len(s))
	for _, e := range s {
		m[e.Member] = e.Score
	}
	return m
}

// weighted is w*score, 0 where that is NaN (0 times infinity), as Redis.
func weighted(w, score float64) float64 {
	v := w * score
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func aggregate(a Aggregate, cur, v float64) float64 {
	switch a {
	case Min:
		return min(cur, v)
	case Max:
		return max(cur, v)
	}
	s := cur + v
	if math.IsNaN(s) {
		return 0 // inf + -inf
	}
	return s
}
