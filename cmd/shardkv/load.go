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
	rdb := g.client()
	defer rdb.Close()
	if *create {
		if err := rdb.Do(ctx, "INDEX.CREATE", index).Err(); err != nil {
			return fmt.Errorf("INDEX.CREATE %s: %w", index, err)
		}
	}
	l := &loader{rdb: rdb, prefix: index + ":", stderr: stderr, batchRows: *batch}
	res, err := l.load(ctx, bufio.NewReaderSize(stdin, 1<<20), *raw)
	fmt.Fprintf(stdout, "%d rows stored in index %s\n", res.stored, index)
	if err != nil {
		return fmt.Errorf("%w (rows after line %d were not read)", err, res.lastLine)
	}
	if res.rejected > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d rows rejected (see the lines above)", res.rejected)}
	}
	return nil
}

// loader sends rows as pipelined SETs and reports each rejected row.
type loader struct {
	rdb       *redis.Client
	prefix    string // "INDEX:"
	stderr    io.Writer
	batchRows int

	// the batch being filled: lines[i] is the line number of the row of cmds[i]
	pipe  redis.Pipeliner
	cmds  []*redis.StatusCmd
	lines []int
	bytes int
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
				fmt.Fprintf(l.stderr, "line %d: %v\n", res.lastLine, err)
				res.rejected++
			} else {
				cmd := l.pipe.Set(ctx, l.prefix+string(key), value, 0)
				l.cmds = append(l.cmds, cmd)
				l.lines = append(l.lines, res.lastLine)
				l.bytes += len(key) + len(value)
				if len(l.cmds) >= l.batchRows || l.bytes >= maxBatchBytes {
					if err := l.flush(ctx, &res); err != nil {
						return res, err
					}
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
	if len(l.cmds) == 0 {
		return nil
	}
	_, _ = l.pipe.Exec(ctx) // errors are per command below
	var fatal error
	for i, cmd := range l.cmds {
		err := cmd.Err()
		switch {
		case err == nil:
			res.stored++
		case isServerError(err):
			fmt.Fprintf(l.stderr, "line %d: %v\n", l.lines[i], err)
			res.rejected++
		default:
			if fatal == nil {
				fatal = fmt.Errorf("lines %d-%d: %w", l.lines[0], l.lines[len(l.lines)-1], err)
			}
		}
	}
	l.cmds, l.lines, l.bytes = l.cmds[:0], l.lines[:0], 0
	return fatal
}

// isServerError reports whether err is an error reply from the server (as
// opposed to a connection or protocol failure).
func isServerError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
