package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/shardkv/shardkv/rangemap"
)

func cmdLocate(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("locate", g, stderr)
	pos, err := parseSub(fs, args, 1, "KEY", stderr)
	if err != nil {
		return err
	}
	key := pos[0]
	rdb, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reply, err := rdb.Do(ctx, "SHARD.LOCATE", key).Slice()
	if err != nil {
		return fmt.Errorf("SHARD.LOCATE: %w", err)
	}
	if len(reply) != 4 {
		return fmt.Errorf("SHARD.LOCATE: expected [position, shard, address, hashed], got %v", reply)
	}
	fmt.Fprintf(stdout, "key       %s\n", strconv.Quote(key))
	fmt.Fprintf(stdout, "hashed    %s\n", strconv.Quote(formatValue(reply[3])))
	fmt.Fprintf(stdout, "index     %s\n", strconv.Quote(rangemap.IndexString(key)))
	fmt.Fprintf(stdout, "position  %s\n", formatPosition(reply[0]))
	fmt.Fprintf(stdout, "shard     %s\n", formatValue(reply[1]))
	fmt.Fprintf(stdout, "address   %s\n", formatValue(reply[2]))
	return nil
}

// formatPosition renders a position the way rangemap does, whether it
// arrives as a bulk string (RESP2) or a double (RESP3).
func formatPosition(v any) string {
	switch v := v.(type) {
	case float64:
		return rangemap.FormatPosition(v)
	case string:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return rangemap.FormatPosition(f)
		}
	}
	return formatValue(v)
}

// formatValue renders a reply element as text.
func formatValue(v any) string {
	switch v := v.(type) {
	case float64:
		return rangemap.FormatPosition(v)
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return "(nil)"
	default:
		return fmt.Sprint(v)
	}
}
