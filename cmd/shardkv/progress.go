package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is load's progress line on a terminal: the rows read so far and
// the rate, redrawn at most every progressEvery. A nil *progress, which
// newProgress returns when stderr is not a terminal (a file, a pipe, CI),
// prints nothing, so logs and scripts get only the result lines.
type progress struct {
	bar   *progressbar.ProgressBar
	index string
	rows  int64
}

const progressEvery = 200 * time.Millisecond

// newProgress returns the progress line for w, or nil unless w is a
// terminal that can redraw a line.
func newProgress(w io.Writer, index string) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return nil
	}
	return newProgressTo(w, index)
}

// newProgressTo draws on w whatever it is.
func newProgressTo(w io.Writer, index string) *progress {
	p := &progress{index: index}
	p.bar = progressbar.NewOptions64(-1, // the number of rows is not known ahead
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(p.describe()),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionThrottle(progressEvery),
		progressbar.OptionClearOnFinish(),
		// No ticker goroutine: every redraw happens in load's own
		// goroutine, so it never lands in the middle of a rejected row's
		// line.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	// The rate counts from the start of the load, not from the first draw.
	p.bar.StartWithoutRender()
	return p
}

// describe is the text before the rate: "loading INDEX: N rows".
func (p *progress) describe() string {
	return fmt.Sprintf("loading %s: %d rows", p.index, p.rows)
}

// add counts rows read (stored or rejected).
func (p *progress) add(rows int) {
	if p == nil {
		return
	}
	p.rows += int64(rows)
	// Describe would draw at once; the option only sets the text, for the
	// draw that Add makes when progressEvery has passed.
	progressbar.OptionSetDescription(p.describe())(p.bar)
	_ = p.bar.Add(rows)
}

// clear erases the line, before something else is written to the terminal;
// the next add draws it again.
func (p *progress) clear() {
	if p != nil {
		_ = p.bar.Clear()
	}
}

// finish erases the line for good.
func (p *progress) finish() {
	if p != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}
