package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 1000

func cmdCat(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("cat", g, stderr)
	pos, err := parseSub(fs, args, 1, "INDEX", stderr)
	if err != nil {
		return err
	}
	index := pos[0]
	if err := checkIndexName(index); err != nil {
		return err
	}
	rdb, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	w := bufio.NewWriterSize(stdout, 1<<16)
	n, err := catIndex(ctx, rdb, index, w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("cat %s: %w (after %d rows)", index, err, n)
	}
	return nil
}

// catIndex writes every key of index once, with its value, as escaped rows.
// SCAN through the proxy returns a key present for the whole scan at least
// once and may return it again, so keys already printed are remembered. A key
// deleted between SCAN and GET is skipped.
func catIndex(ctx context.Context, rdb *redis.Client, index string, w io.Writer) (int, error) {
	prefix := index + ":"
	match := globEscape(prefix) + "*"
	seen := make(map[string]struct{})
	var (
		cursor uint64
		rows   int
		buf    []byte
		fresh  []string
	)
	for {
		keys, next, err := rdb.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return rows, fmt.Errorf("SCAN %d: %w", cursor, err)
		}
		fresh = fresh[:0]
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix) {
				continue // MATCH is a filter we rely on, but never trust blindly
			}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			fresh = append(fresh, k)
		}
		if len(fresh) > 0 {
			pipe := rdb.Pipeline()
			gets := make([]*redis.StringCmd, len(fresh))
			for i, k := range fresh {
				gets[i] = pipe.Get(ctx, k)
			}
			_, _ = pipe.Exec(ctx) // errors are per command below
			for i, cmd := range gets {
				v, err := cmd.Bytes()
				if err == redis.Nil {
					continue
				}
				if err != nil {
					return rows, fmt.Errorf("GET %q: %w", fresh[i], err)
				}
				buf = escapeKey(buf[:0], []byte(fresh[i][len(prefix):]))
				buf = append(buf, '|')
				buf = escapeValue(buf, v)
				buf = append(buf, '\n')
				if _, err := w.Write(buf); err != nil {
					return rows, err
				}
				rows++
			}
		}
		if next == 0 {
			return rows, nil
		}
		cursor = next
	}
}
