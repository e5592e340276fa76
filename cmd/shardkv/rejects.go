package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// rejects reports the rows load rejects, in line order, on stderr. The
// first row of a run rejected for the same reason is printed as it comes
// ("line 7: ERR no such index 'x'"); the rest of the run is one line when it
// ends ("lines 8-100000: 99993 more rows with the same error"), so a load
// into a missing index prints three lines, not a hundred thousand. At the
// end, each reason a user can fix gets one hint.
type rejects struct {
	w      io.Writer
	index  string // the index being loaded, for hints
	raw    bool   // load --raw, for hints
	before func() // called before each write: clears the progress line

	// the current run: rows rejected for the same kind of reason, the first
	// of them printed
	kind        string
	what        string // the kind in words, for the summary
	first, last int    // line numbers of its first and last rows; first is 0 with no run
	more        int    // rows after the first
	lastErr     error  // the last row's

	hints    []string // in the order the reasons first came
	hintSeen map[string]bool
}

// add reports that the row on line was rejected with err.
func (r *rejects) add(line int, err error) {
	kind, what := rejectKind(err)
	if r.first > 0 && kind == r.kind {
		r.last, r.lastErr = line, err
		r.more++
		return
	}
	r.endRun()
	r.kind, r.what, r.first, r.last, r.more = kind, what, line, line, 0
	r.printf("line %d: %v\n", line, err)
	if h := r.hint(err); h != "" && !r.hintSeen[h] {
		if r.hintSeen == nil {
			r.hintSeen = map[string]bool{}
		}
		r.hintSeen[h] = true
		r.hints = append(r.hints, h)
	}
}

// endRun prints the summary of the current run, if it had more than one row.
func (r *rejects) endRun() {
	switch {
	case r.first == 0 || r.more == 0:
	case r.more == 1:
		r.printf("line %d: %v\n", r.last, r.lastErr)
	default:
		r.printf("lines %d-%d: %d more rows with %s\n", r.first+1, r.last, r.more, r.what)
	}
	r.first, r.more = 0, 0
}

// end closes the last run and prints the hints.
func (r *rejects) end() {
	r.endRun()
	for _, h := range r.hints {
		r.printf("hint: %s\n", h)
	}
	r.hints = nil
}

func (r *rejects) printf(format string, args ...any) {
	if r.before != nil {
		r.before()
	}
	fmt.Fprintf(r.w, format, args...)
}

// rejectKind is what makes two rejections "the same": the error's text, except
// for bad escapes, whose texts differ by column and byte but share one cause
// and one fix. what names the kind in a run's summary.
func rejectKind(err error) (kind, what string) {
	var be *badEscapeError
	if errors.As(err, &be) {
		return badEscapeKind, "a bad escape"
	}
	return err.Error(), "the same error"
}

// badEscapeKind cannot be an error's text: those never hold a NUL.
const badEscapeKind = "\x00bad escape"

// hint is the advice for a rejection a user can fix, or "".
func (r *rejects) hint(err error) string {
	msg := err.Error()
	var be *badEscapeError
	switch {
	case errors.As(err, &be) && !r.raw:
		return "backslashes that are not escapes (Windows paths, pyshard's files) load byte for byte with --raw"
	case strings.HasPrefix(msg, "ERR no such index "):
		return fmt.Sprintf("the nodes run with -strict-indexes and index '%s' was never created: load with --create (shardkv load %s --create) or send INDEX.CREATE %s first",
			r.index, r.index, r.index)
	case strings.HasPrefix(msg, "OOM "):
		return "a shard is at its size limit (\"size\" in the range map): delete keys, or raise the size in the map and reload it (SHARD.RELOAD)"
	case strings.HasPrefix(msg, "TRYAGAIN "):
		return "a shard node is down (shardkv status shows which); load again when it is back: rows already stored are set again to the same values"
	}
	return ""
}
