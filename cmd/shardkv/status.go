package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// shardState is one row of `status`: the proxy's view of a shard from
// SHARD.MAP, and the node's INFO shard fields that the proxy relays in its
// "# Shard_<name>" section of INFO shards.
type shardState struct {
	name, start, end, addr string
	reachable              bool   // the shard is healthy: the proxy reaches the node, which holds the map's assignment
	health                 string // SHARD.MAP's health text: ok, unreachable: ..., map mismatch: ...

	info map[string]string // the node's INFO shard fields; nil when absent
}

func cmdStatus(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("status", g, stderr)
	var ef etcdFlags
	ef.register(fs.StringVar)
	var npf nodePasswordFlags
	npf.register(fs)
	if _, err := parseSub(fs, args, 0, "", stderr); err != nil {
		return err
	}
	nodePW, err := npf.password(&ef)
	if err != nil {
		return err
	}
	rdb, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reply, err := rdb.Do(ctx, "SHARD.MAP").Slice()
	if err != nil {
		return fmt.Errorf("SHARD.MAP: %w", err)
	}
	shards := make([]shardState, 0, len(reply))
	for i, e := range reply {
		s, err := parseMapEntry(e)
		if err != nil {
			return fmt.Errorf("SHARD.MAP entry %d: %w", i, err)
		}
		shards = append(shards, s)
	}
	text, err := rdb.Info(ctx, "shards", "server").Result()
	if err != nil {
		return fmt.Errorf("INFO shards: %w", err)
	}
	sections := parseInfoSections(text)
	for i := range shards {
		shards[i].info = sections["shard_"+strings.ToLower(shards[i].name)]
	}

	etcdMap := false
	if srv, err := rdb.Info(ctx, "server").Result(); err == nil {
		if e := parseInfoSections(srv)["server"]["map_epoch"]; e != "" && e != "0" {
			etcdMap = true
			fmt.Fprintf(stdout, "map epoch %s (etcd)\n", e)
			printChanges(ctx, &ef, stdout)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tRANGE\tADDRESS\tHEALTH\tKEYS\tLIVE BYTES\tSIZE LIMIT")
	down := 0
	prevAddr := ""
	for _, s := range shards {
		health := "up"
		if !s.reachable {
			health = "down"
			if strings.HasPrefix(s.health, "map mismatch") {
				health = "mismatch"
			}
			down++
		}
		keys, live, limit := "-", "-", "-"
		if s.info == nil && s.addr == prevAddr {
			// An entry a split left on the node of the row above: the
			// node's figures are on that row.
			keys, live, limit = "(above)", "(above)", "(above)"
		}
		prevAddr = s.addr
		if v, ok := s.info["shard_keys"]; ok {
			keys = v
		}
		if v, ok := s.info["shard_live_bytes"]; ok {
			live = v
		}
		if v, ok := s.info["shard_size_limit"]; ok {
			limit = v
			if v == "0" {
				limit = "none"
			}
		}
		fmt.Fprintf(tw, "%s\t[%s, %s)\t%s\t%s\t%s\t%s\t%s\n", s.name, s.start, s.end, s.addr, health, keys, live, limit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if etcdMap {
		printCopies(ctx, &ef, nodePW, stdout)
	}
	// The map's placement mode (INFO server's placement: hash_tags, or
	// whole_key); a proxy that does not say is left unsaid.
	if p := sections["server"]["placement"]; p != "" {
		fmt.Fprintf(stdout, "placement: %s\n", p)
	}
	if down > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d shards are down or mismatched", down, len(shards))}
	}
	return nil
}

// parseMapEntry reads one SHARD.MAP entry: [name, start, end, address,
// healthy, health] as an array, or the same fields in a map keyed by name.
func parseMapEntry(e any) (shardState, error) {
	switch e := e.(type) {
	case []any:
		if len(e) < 5 {
			return shardState{}, fmt.Errorf("expected [name, start, end, address, reachable], got %v", e)
		}
		st := shardState{
			name: formatValue(e[0]), start: formatPosition(e[1]), end: formatPosition(e[2]),
			addr: formatValue(e[3]), reachable: truthy(e[4]),
		}
		if len(e) > 5 {
			st.health = formatValue(e[5])
		}
		return st, nil
	case map[any]any:
		get := func(names ...string) any {
			for _, n := range names {
				if v, ok := e[n]; ok {
					return v
				}
			}
			return nil
		}
		return shardState{
			name: formatValue(get("name")), start: formatPosition(get("start")), end: formatPosition(get("end")),
			addr: formatValue(get("address", "addr")), reachable: truthy(get("reachable", "up")),
		}, nil
	default:
		return shardState{}, fmt.Errorf("unexpected reply %T %v", e, e)
	}
}

// truthy reads a reachability flag, whichever way the reply encodes it.
func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case int64:
		return v != 0
	case string:
		switch strings.ToLower(v) {
		case "1", "yes", "true", "up", "reachable", "ok":
			return true
		}
	}
	return false
}

// parseInfoSections reads INFO's text: "# Name" starts a section, each
// "field:value" line belongs to the section above it. Section names are
// lower-cased.
func parseInfoSections(text string) map[string]map[string]string {
	out := make(map[string]map[string]string)
	cur := map[string]string{}
	out[""] = cur
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
		case line[0] == '#':
			name := strings.ToLower(strings.TrimSpace(line[1:]))
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			cur = out[name]
		default:
			if k, v, ok := strings.Cut(line, ":"); ok {
				cur[k] = v
			}
		}
	}
	return out
}
