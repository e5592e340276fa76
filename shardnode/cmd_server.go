package shardnode

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

func cmdTime(c *client, args [][]byte) {
	now := time.Now()
	var buf [20]byte
	c.array(2)
	c.bulk(strconv.AppendInt(buf[:0], now.Unix(), 10))
	c.bulk(strconv.AppendInt(buf[:0], int64(now.Nanosecond()/1000), 10))
}

// ---- INFO ----

var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "keyspace", "shard"}

func cmdInfo(c *client, args [][]byte) {
	want := map[string]bool{}
	if len(args) == 1 {
		for _, s := range infoSections {
			want[s] = true
		}
	}
	for _, a := range args[1:] {
		switch s := string(lowerASCII(a)); s {
		case "all", "default", "everything":
			for _, s := range infoSections {
				want[s] = true
			}
		default:
			want[s] = true
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !want[sec] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		c.srv.writeInfo(&b, sec)
	}
	c.out = resp.AppendVerbatim(c.out, c.proto, "txt", b.String())
}

type infoWriter struct{ b *strings.Builder }

func (w infoWriter) kv(k string, v any) {
	w.b.WriteString(k)
	w.b.WriteByte(':')
	switch x := v.(type) {
	case string:
		w.b.WriteString(x)
	case int:
		w.b.WriteString(strconv.Itoa(x))
	case int64:
		w.b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		w.b.WriteString(strconv.FormatUint(x, 10))
	}
	w.b.WriteString("\r\n")
}

// totals sums a counter over the server (closed connections) and the live
// connections.
func (s *Server) totals() (cmds, in, out, hits, misses int64) {
	cmds, in, out = s.stats.cmds.Load(), s.stats.netIn.Load(), s.stats.netOut.Load()
	hits, misses = s.stats.hits.Load(), s.stats.misses.Load()
	s.mu.Lock()
	for c := range s.clients {
		cmds += c.cmds.Load()
		in += c.netIn.Load()
		out += c.netOut.Load()
		hits += c.hits.Load()
		misses += c.misses.Load()
	}
	s.mu.Unlock()
	return
}

func (s *Server) writeInfo(b *strings.Builder, section string) {
	w := infoWriter{b}
	switch section {
	case "server":
		b.WriteString("# Server\r\n")
		w.kv("redis_version", redisVersion)
		w.kv("redis_git_sha1", "00000000")
		w.kv("redis_git_dirty", 0)
		w.kv("redis_mode", "standalone")
		w.kv("shardkv_role", "shard-node")
		w.kv("os", runtime.GOOS+" "+runtime.GOARCH)
		w.kv("arch_bits", strconv.Itoa(32<<(^uint(0)>>63)))
		w.kv("go_version", runtime.Version())
		w.kv("process_id", os.Getpid())
		w.kv("run_id", s.runID)
		w.kv("tcp_port", s.port())
		w.kv("server_time_usec", time.Now().UnixMicro())
		up := time.Since(s.started)
		w.kv("uptime_in_seconds", int64(up/time.Second))
		w.kv("uptime_in_days", int64(up/(24*time.Hour)))
		exe, _ := os.Executable()
		w.kv("executable", exe)
		w.kv("config_file", "")
	case "clients":
		b.WriteString("# Clients\r\n")
		w.kv("connected_clients", s.nclients.Load())
		w.kv("maxclients", s.cfg.MaxClients)
		w.kv("blocked_clients", 0)
		w.kv("tracking_clients", 0)
	case "memory":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.WriteString("# Memory\r\n")
		w.kv("used_memory", ms.HeapAlloc)
		w.kv("used_memory_human", humanBytes(int64(ms.HeapAlloc)))
		w.kv("used_memory_peak_process", ms.Sys)
		w.kv("live_data_bytes", s.db.LiveBytes())
		w.kv("maxmemory", s.sizeLimit.Load())
		w.kv("maxmemory_human", humanBytes(s.sizeLimit.Load()))
		w.kv("maxmemory_policy", "noeviction")
		var cacheBytes, cacheLimit, cacheHits, cacheMisses int64
		if rc := s.cache; rc != nil {
			cacheBytes, cacheLimit = rc.size(), rc.limit*cacheShards
			cacheHits, cacheMisses = rc.hits.Load(), rc.miss.Load()
		}
		w.kv("read_cache_bytes", cacheBytes)
		w.kv("read_cache_limit", cacheLimit)
		w.kv("read_cache_hits", cacheHits)
		w.kv("read_cache_misses", cacheMisses)
	case "persistence":
		b.WriteString("# Persistence\r\n")
		w.kv("loading", 0)
		w.kv("async_loading", 0)
		w.kv("rdb_bgsave_in_progress", 0)
		w.kv("aof_enabled", 1)
		w.kv("aof_fsync", s.db.SyncPolicy().String())
	case "stats":
		cmds, in, out, hits, misses := s.totals()
		b.WriteString("# Stats\r\n")
		w.kv("total_connections_received", s.stats.conns.Load())
		w.kv("total_commands_processed", cmds)
		w.kv("total_net_input_bytes", in)
		w.kv("total_net_output_bytes", out)
		w.kv("rejected_connections", s.stats.rejected.Load())
		w.kv("keyspace_hits", hits)
		w.kv("keyspace_misses", misses)
		w.kv("total_protocol_errors", s.stats.protoErr.Load())
	case "keyspace":
		b.WriteString("# Keyspace\r\n")
		if n, expires := s.keyCounts(); n > 0 {
			b.WriteString("db0:keys=" + strconv.Itoa(n) + ",expires=" + strconv.Itoa(expires) + ",avg_ttl=0\r\n")
		}
	case "shard":
		b.WriteString("# Shard\r\n")
		a := s.assign.Load()
		if a == nil {
			w.kv("shard_assigned", 0)
			w.kv("shard_name", "")
			w.kv("shard_start", "")
			w.kv("shard_end", "")
		} else {
			w.kv("shard_assigned", 1)
			w.kv("shard_name", a.Name)
			w.kv("shard_start", rangemap.FormatPosition(a.Start))
			w.kv("shard_end", rangemap.FormatPosition(a.End))
		}
		w.kv("shard_size_limit", s.sizeLimit.Load())
		w.kv("shard_live_bytes", s.db.LiveBytes())
		w.kv("shard_keys", s.db.Len())
		w.kv("shard_strict_indexes", boolInt(s.strict.Load()))
		stats := s.db.NamespaceStats()
		names := make([]string, 0, len(stats)+1)
		seen := map[string]bool{}
		for n := range stats {
			names = append(names, n)
			seen[n] = true
		}
		for n := range *s.indexes.Load() {
			if !seen[n] {
				names = append(names, n)
				seen[n] = true
			}
		}
		if !seen[""] {
			names = append(names, "")
		}
		slices.Sort(names)
		for _, n := range names {
			st := stats[n]
			b.WriteString("shard_index_" + n + ":keys=" + strconv.FormatInt(st.Keys, 10) +
				",bytes=" + strconv.FormatInt(st.Bytes, 10) + "\r\n")
		}
		dbs := s.db.Stats()
		w.kv("appendfsync", s.db.SyncPolicy().String())
		w.kv("merges", int64(dbs.Merges))
		w.kv("recovery_truncated_records", int64(dbs.RecoveryTruncated))
		w.kv("recovery_skipped_records", int64(dbs.RecoverySkipped))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// port is the TCP port the node serves on.
func (s *Server) port() string {
	if a := s.Addr(); a != nil {
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			return p
		}
	}
	_, p, _ := net.SplitHostPort(s.cfg.Addr)
	return p
}

// ---- CONFIG ----

// configParam is one parameter CONFIG GET shows; set is nil for the
// immutable ones.
type configParam struct {
	name string
	get  func(s *Server) string
	set  func(s *Server, v []byte) string // returns an error reason, "" when done
}

var configParams = []configParam{
	{name: "appendfsync", get: func(s *Server) string { return s.db.SyncPolicy().String() }, set: setAppendfsync},
	{name: "appendonly", get: func(*Server) string { return "yes" }},
	{name: "bind", get: func(s *Server) string { h, _, _ := net.SplitHostPort(s.cfg.Addr); return h }},
	{name: "databases", get: func(*Server) string { return "1" }},
	{name: "dir", get: func(s *Server) string {
		if abs, err := filepath.Abs(s.cfg.Dir); err == nil {
			return abs
		}
		return s.cfg.Dir
	}},
	{name: "maxclients", get: func(s *Server) string { return strconv.Itoa(s.cfg.MaxClients) }},
	{name: "maxmemory", get: func(s *Server) string { return strconv.FormatInt(s.sizeLimit.Load(), 10) }, set: setMaxmemory},
	{name: "maxmemory-policy", get: func(*Server) string { return "noeviction" }},
	{name: "port", get: func(s *Server) string { return s.port() }},
	{name: "proto-max-bulk-len", get: func(*Server) string { return strconv.Itoa(resp.MaxBulkLen) }},
	{name: "requirepass", get: func(s *Server) string { return s.cfg.RequirePass }},
	{name: "save", get: func(*Server) string { return "" }},
	{name: "timeout", get: func(*Server) string { return "0" }},
}

func setAppendfsync(s *Server, v []byte) string {
	p, err := bitcask.ParseSyncPolicy(strings.ToLower(string(v)))
	if err != nil {
		return "argument(s) must be one of the following: everysec, always, no"
	}
	s.db.SetSyncPolicy(p)
	s.log.Info("appendfsync changed", "appendfsync", p.String())
	return ""
}

func setMaxmemory(s *Server, v []byte) string {
	n, ok := parseMemory(v)
	if !ok {
		return "argument must be a memory value"
	}
	s.sizeLimit.Store(n)
	s.log.Info("size limit changed", "maxmemory", n)
	return ""
}

// parseMemory is Redis's memtoull: digits with an optional unit b, k, kb,
// m, mb, g, gb (k = 1000, kb = 1024, ...).
func parseMemory(v []byte) (int64, bool) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, false
	}
	mul := int64(1)
	switch unit := string(lowerASCII(v[i:])); unit {
	case "", "b":
	case "k":
		mul = 1000
	case "kb":
		mul = 1024
	case "m":
		mul = 1000 * 1000
	case "mb":
		mul = 1024 * 1024
	case "g":
		mul = 1000 * 1000 * 1000
	case "gb":
		mul = 1024 * 1024 * 1024
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(string(v[:i]), 10, 64)
	if err != nil || n > (1<<62)/mul {
		return 0, false
	}
	return n * mul, true
}

func findParam(name []byte) *configParam {
	for i := range configParams {
		if eqFold(name, configParams[i].name) {
			return &configParams[i]
		}
	}
	return nil
}

var configHelp = []string{
	"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GET <pattern>",
	"    Return parameters matching the glob-like <pattern> and their values.",
	"SET <directive> <value>",
	"    Set the configuration <directive> to <value>.",
	"RESETSTAT",
	"    Reset statistics reported by the INFO command.",
	"REWRITE",
	"    Rewrite the configuration file.",
	"HELP",
	"    Print this help.",
}

func cmdConfig(c *client, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "get"):
		if len(args) < 3 {
			c.arityErr("config|get")
			return
		}
		// A name without glob characters is looked up and replied as the
		// client spelled it, as Redis does.
		type match struct {
			p    *configParam
			name string
		}
		var matched []match
		seen := func(p *configParam) bool {
			return slices.ContainsFunc(matched, func(m match) bool { return m.p == p })
		}
		for _, pat := range args[2:] {
			if bytes.IndexAny(pat, "*?[") < 0 {
				if p := findParam(pat); p != nil && !seen(p) {
					matched = append(matched, match{p, string(pat)})
				}
				continue
			}
			for i := range configParams {
				p := &configParams[i]
				if !seen(p) && glob.Match(pat, []byte(p.name), true) {
					matched = append(matched, match{p, p.name})
				}
			}
		}
		c.mapHeader(len(matched))
		for _, m := range matched {
			c.bulkStr(m.name)
			c.bulkStr(m.p.get(c.srv))
		}
	case eqFold(sub, "set"):
		if len(args) < 4 || len(args)%2 != 0 {
			c.arityErr("config|set")
			return
		}
		// Check every pair before applying any, as Redis does.
		for i := 2; i < len(args); i += 2 {
			p := findParam(args[i])
			if p == nil {
				c.errReply("ERR Unknown option or number of arguments for CONFIG SET - '" + string(args[i]) + "'")
				return
			}
			if p.set == nil {
				c.errReply("ERR CONFIG SET failed (possibly related to argument '" + p.name + "') - can't set immutable config")
				return
			}
			switch p.name {
			case "appendfsync":
				if _, err := bitcask.ParseSyncPolicy(strings.ToLower(string(args[i+1]))); err != nil {
					c.errReply("ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no")
					return
				}
			case "maxmemory":
				if _, ok := parseMemory(args[i+1]); !ok {
					c.errReply("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value")
					return
				}
			}
		}
		for i := 2; i < len(args); i += 2 {
			p := findParam(args[i])
			if reason := p.set(c.srv, args[i+1]); reason != "" {
				c.errReply("ERR CONFIG SET failed (possibly related to argument '" + p.name + "') - " + reason)
				return
			}
		}
		c.ok()
	case eqFold(sub, "resetstat"):
		if len(args) != 2 {
			c.arityErr("config|resetstat")
			return
		}
		c.srv.resetStats()
		c.ok()
	case eqFold(sub, "rewrite"):
		if len(args) != 2 {
			c.arityErr("config|rewrite")
			return
		}
		c.errReply("ERR The server is running without a config file")
	case eqFold(sub, "help"):
		c.helpReply(configHelp)
	default:
		c.errReply(cmdtable.ErrUnknownSubcommand("config", string(sub)))
	}
}

func (s *Server) resetStats() {
	st := &s.stats
	for _, a := range []interface{ Store(int64) }{&st.conns, &st.rejected, &st.cmds, &st.netIn, &st.netOut, &st.hits, &st.misses, &st.protoErr} {
		a.Store(0)
	}
	s.mu.Lock()
	for c := range s.clients {
		c.cmds.Store(0)
		c.netOut.Store(0)
		c.hits.Store(0)
		c.misses.Store(0)
	}
	s.mu.Unlock()
}

// ---- COMMAND ----

var commandHelp = []string{
	"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"(no subcommand)",
	"    Return details about all commands.",
	"COUNT",
	"    Return the total number of commands in this server.",
	"LIST",
	"    Return a list of all commands in this server.",
	"INFO [<command-name> ...]",
	"    Return details about multiple commands.",
	"DOCS [<command-name> ...]",
	"    Return documentation details about multiple commands.",
	"GETKEYS <full-command>",
	"    Return the keys from a full command.",
	"HELP",
	"    Print this help.",
}

func cmdCommand(c *client, args [][]byte) {
	if len(args) == 1 {
		c.array(len(servedCommands))
		for _, sp := range servedCommands {
			c.commandInfo(sp)
		}
		return
	}
	sub := args[1]
	switch {
	case eqFold(sub, "count"):
		if len(args) != 2 {
			c.arityErr("command|count")
			return
		}
		c.intReply(int64(len(servedCommands)))
	case eqFold(sub, "list"):
		if len(args) != 2 {
			c.errReply(errSyntax)
			return
		}
		c.array(len(servedCommands))
		for _, sp := range servedCommands {
			c.bulkStr(sp.Name)
		}
	case eqFold(sub, "info"):
		if len(args) == 2 {
			c.array(len(servedCommands))
			for _, sp := range servedCommands {
				c.commandInfo(sp)
			}
			return
		}
		c.array(len(args) - 2)
		for _, name := range args[2:] {
			if sp := lookupSpec(name); sp != nil {
				c.commandInfo(sp)
			} else {
				c.null()
			}
		}
	case eqFold(sub, "docs"):
		var list []*cmdSpec
		if len(args) == 2 {
			list = servedCommands
		} else {
			for _, name := range args[2:] {
				if sp := lookupSpec(name); sp != nil {
					list = append(list, sp)
				}
			}
		}
		c.mapHeader(len(list))
		for _, sp := range list {
			c.out = cmdtable.AppendCommandDocs(c.out, c.proto, sp.Command)
		}
	case eqFold(sub, "getkeys"):
		if len(args) < 4 {
			c.arityErr("command|getkeys")
			return
		}
		cargs := args[2:]
		sp := lookupSpec(cargs[0])
		switch {
		case sp == nil:
			c.errReply("ERR Invalid command specified")
		case !sp.ArityOK(len(cargs)):
			c.errReply("ERR Invalid number of arguments specified for command")
		case sp.FirstKey <= 0:
			c.errReply("ERR The command has no key arguments")
		default:
			idx := sp.KeyIndexes(len(cargs))
			c.array(len(idx))
			for _, i := range idx {
				c.bulk(cargs[i])
			}
		}
	case eqFold(sub, "help"):
		c.helpReply(commandHelp)
	default:
		c.errReply(cmdtable.ErrUnknownSubcommand("command", string(sub)))
	}
}

func (c *client) commandInfo(sp *cmdSpec) {
	c.out = cmdtable.AppendCommandInfo(c.out, c.proto, sp.Command)
}
