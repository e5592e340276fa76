//go:build linux

package shardnode

import (
	"time"
)

// The event loop's part of reply memory (replymem.go): held pipelines
// resumed, and connections blocked over the soft output buffer limit
// closed when its time runs out.

// resumeAll goes on with the held pipelines whose replies were all written
// in the last pass.
func (l *eventLoop) resumeAll() {
	if len(l.held) == 0 {
		return
	}
	held := l.held
	l.held = l.resumed[:0]
	for _, c := range held {
		if c.fd >= 0 && c.batch != nil && !c.wblocked && c.blocked == nil {
			l.resumeHeld(c)
		}
	}
	clear(held)
	l.resumed = held[:0]
}

// resumeHeld goes on with c's held pipeline in this pass.
func (l *eventLoop) resumeHeld(c *client) {
	l.touched = append(l.touched, c)
	c.resume()
	c.run()
}

// softTimeout is how long the loop may wait, in milliseconds, before a
// connection of overSoft may run out of its soft limit's time (-1: none).
func (l *eventLoop) softTimeout() int {
	if len(l.overSoft) == 0 {
		return -1
	}
	first := int64(-1)
	for _, c := range l.overSoft {
		if c.obufSoftSince == 0 {
			continue
		}
		// Over() holds once more than SoftSeconds whole seconds passed.
		end := c.obufSoftSince + l.srv.obuf.Class(c.obufClass()).SoftSeconds + 1
		if first < 0 || end < first {
			first = end
		}
	}
	if first < 0 {
		return 0 // all left the list: let watchSoft clean it
	}
	ms := time.Until(time.Unix(first, 0)).Milliseconds()
	return int(max(ms, 0)) + 1
}

// watchSoft closes the connections of overSoft whose replies stayed over
// the soft limit longer than its seconds, and forgets the ones that got
// under it or are no longer blocked.
func (l *eventLoop) watchSoft() {
	keep := l.overSoft[:0]
	for _, c := range l.overSoft {
		switch {
		case c.fd < 0 || !c.wblocked:
		case c.overOutputLimit(true):
			l.close(c)
		case c.obufSoftSince != 0:
			keep = append(keep, c)
		}
	}
	clear(l.overSoft[len(keep):])
	l.overSoft = keep
}
