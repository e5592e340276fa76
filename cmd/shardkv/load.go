package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
)

// maxBatchBytes bounds the bytes of one pipelined batch, so a few huge
// values do not make the CLI hold hundreds of megabytes at once.
const maxBatchBytes = 8 << 20

func cmdLoad(ctx context.Context, g *globals, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := subFlags("load", g, stderr)
	create := fs.Bool("create", false, "run INDEX.CREATE INDEX before loading")
	raw := fs.Bool("raw", false, "no escapes: split each line at its first '|' and take both parts byte for byte")
	batch := fs.Int("batch", 1000, "rows per pipelined batch")
	pos, err := parseSub(fs, args, 1, "INDEX [--create] [--raw] [--batch N] < rows", stderr)
	if err != nil {
		return err
	}
	index := pos[0]
	if err := checkIndexName(index); err != nil {
		return err
	}
	if *batch < 1 {
		return &exitError{code: 2, msg: "--batch must be at least 1"}
	}
	rdb, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if *create {
		if err := rdb.Do(ctx, "INDEX.CREATE", index).Err(); err != nil {
			return fmt.Errorf("INDEX.CREATE %s: %w", index, err)
		}
	}
	bar := newProgress(stderr, index)
	rep := &rejects{w: stderr, index: index, raw: *raw, before: bar.clear}
	l := &loader{rdb: rdb, addr: g.addr, prefix: index + ":", rejects: rep, progress: bar, batchRows: *batch}
	res, err := l.load(ctx, bufio.NewReaderSize(stdin, 1<<20), *raw)
	bar.finish()
	rep.end()
	fmt.Fprintf(stdout, "%d rows stored in index %s\n", res.stored, index)
	if err != nil {
		return fmt.Errorf("%w (rows after line %d were not read)", err, res.lastLine)
	}
	if res.rejected > 0 {
		rows := "rows"
		if res.rejected == 1 {
			rows = "row"
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d %s rejected (see the lines above)", res.rejected, rows)}
	}
	return nil
}

// loader sends rows as pipelined SETs and reports each rejected row, in
// the order of the lines.
type loader struct {
	rdb       *redis.Client
	addr      string // the proxy's, for errors
	prefix    string // "INDEX:"
	rejects   *rejects
	progress  *progress
	batchRows int

	// the batch being filled, in line order
	pipe  redis.Pipeliner
	rows  []pendingRow
	sent  int // rows of the batch with a command
	bytes int
}

// pendingRow is a row of the batch: sent as cmd, or rejected before sending
// with err.
type pendingRow struct {
	line int
	cmd  *redis.StatusCmd
	err  error
}

type loadResult struct {
	stored, rejected int
	lastLine         int // the last line read
}

func (l *loader) load(ctx context.Context, r *bufio.Reader, raw bool) (loadResult, error) {
	var res loadResult
	l.pipe = l.rdb.Pipeline()
	for {
		line, rerr := r.ReadBytes('\n')
		if len(line) > 0 {
			res.lastLine++
			key, value, err := parseRow(trimLineEnd(line, raw), raw)
			if err != nil {
				l.rows = append(l.rows, pendingRow{line: res.lastLine, err: err})
			} else {
				cmd := l.pipe.Set(ctx, l.prefix+string(key), value, 0)
				l.rows = append(l.rows, pendingRow{line: res.lastLine, cmd: cmd})
				l.sent++
				l.bytes += len(key) + len(value)
			}
			if len(l.rows) >= l.batchRows || l.bytes >= maxBatchBytes {
				if err := l.flush(ctx, &res); err != nil {
					return res, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			l.flush(ctx, &res)
			return res, fmt.Errorf("reading stdin: %w", rerr)
		}
	}
	return res, l.flush(ctx, &res)
}

// flush sends the batch and checks every reply. A server error rejects its
// row; a connection error stops the load, since the fate of the batch is then
// unknown.
func (l *loader) flush(ctx context.Context, res *loadResult) error {
	if len(l.rows) == 0 {
		return nil
	}
	if l.sent > 0 {
		_, _ = l.pipe.Exec(ctx) // errors are per command below
	}
	var fatal error
	first, last := 0, 0 // lines of the commands sent
	for _, row := range l.rows {
		err := row.err
		if row.cmd != nil {
			if first == 0 {
				first = row.line
			}
			last = row.line
			err = row.cmd.Err()
		}
		switch {
		case err == nil:
			res.stored++
		case row.cmd == nil || isServerError(err):
			l.rejects.add(row.line, err)
			res.rejected++
		default:
			if fatal == nil {
				fatal = err
			}
		}
	}
	l.progress.add(len(l.rows))
	l.rows, l.sent, l.bytes = l.rows[:0], 0, 0
	if fatal != nil {
		return fmt.Errorf("lines %d-%d: lost the proxy at %s: %w", first, last, l.addr, fatal)
	}
	return nil
}

// isServerError reports whether err is an error reply from the server (as
// opposed to a connection or protocol failure).
func isServerError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
