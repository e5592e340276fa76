package proxy

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// INFO: the proxy's own sections (server, clients, stats), the keyspace
// summed over the nodes' INFO keyspace, and one section per shard, "#
// Shard_<name>", with the node's INFO shard fields plus its address and
// whether the proxy reaches it.

const infoNodeCmd = "*2\r\n$4\r\nINFO\r\n$5\r\nshard\r\n*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n"

// infoRequest is what one INFO asked for.
type infoRequest struct {
	all      bool            // every section
	sections map[string]bool // lower-case section names
}

func (r *infoRequest) want(section string) bool {
	return r.all || r.sections[section]
}

func (r *infoRequest) wantShard(name string) bool {
	return r.all || r.sections["shards"] || r.sections["shard"] || r.sections["shard_"+strings.ToLower(name)]
}

func (c *client) infoCmd(args [][]byte) {
	r := &infoRequest{sections: map[string]bool{}}
	if len(args) == 1 {
		r.all = true
	}
	for _, a := range args[1:] {
		switch s := strings.ToLower(string(a)); s {
		case "all", "everything", "default":
			r.all = true
		default:
			r.sections[s] = true
		}
	}
	m := c.newMerge(mergeInfo, "info", false)
	m.info = r
	needNodes := r.want("keyspace")
	for _, sh := range c.tbl.shards {
		if r.wantShard(sh.name) {
			needNodes = true
		}
	}
	if !needNodes {
		return
	}
	for _, sh := range c.tbl.shards {
		c.addPart(m, sh, []byte(infoNodeCmd), 2)
	}
}

// infoFields parses "k:v" lines, skipping headers and blank lines.
func infoFields(text []byte) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(string(text), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func (c *client) writeInfo(m *merge, b []byte) []byte {
	r := m.info
	s := c.s
	var t strings.Builder
	section := func(name string) {
		if t.Len() > 0 {
			t.WriteString("\r\n")
		}
		t.WriteString("# " + name + "\r\n")
	}
	field := func(k, v string) { t.WriteString(k + ":" + v + "\r\n") }
	if r.want("server") {
		section("Server")
		port := ""
		if a := s.Addr(); a != nil {
			if i := strings.LastIndex(a.String(), ":"); i >= 0 {
				port = a.String()[i+1:]
			}
		}
		up := time.Since(s.started)
		field("redis_version", redisVersion)
		field("redis_mode", "standalone")
		field("shardkv_role", "proxy")
		field("os", runtime.GOOS)
		field("arch_bits", strconv.Itoa(strconv.IntSize))
		field("go_version", runtime.Version())
		field("process_id", strconv.Itoa(os.Getpid()))
		field("tcp_port", port)
		field("uptime_in_seconds", itoa(int64(up/time.Second)))
		field("uptime_in_days", itoa(int64(up/(24*time.Hour))))
		field("shards", strconv.Itoa(len(c.tbl.shards)))
		field("loading", "0")
	}
	if r.want("clients") {
		section("Clients")
		field("connected_clients", itoa(s.nclients.Load()))
		field("maxclients", strconv.Itoa(s.cfg.MaxClients))
		field("blocked_clients", "0")
	}
	if r.want("stats") {
		section("Stats")
		field("total_connections_received", itoa(s.connsReceived.Load()))
		field("total_commands_processed", itoa(s.commands.Load()))
		field("rejected_connections", itoa(s.rejected.Load()))
		field("total_net_input_bytes", itoa(s.netIn.Load()))
	}
	// The nodes' replies: INFO shard, then INFO keyspace.
	type nodeInfo struct {
		shard, keyspace [][2]string
		err             string
	}
	nodes := make([]nodeInfo, len(m.parts))
	for i, p := range m.parts {
		if p.req.Err != nil {
			nodes[i].err = p.req.Err.Error()
			continue
		}
		v1, n, err1 := resp.Parse(p.req.Reply)
		if err1 != nil {
			nodes[i].err = "malformed reply"
			continue
		}
		v2, _, err2 := resp.Parse(p.req.Reply[n:])
		switch {
		case err2 != nil:
			nodes[i].err = "malformed reply"
		case v1.IsError():
			nodes[i].err = string(v1.Str)
		case v2.IsError():
			nodes[i].err = string(v2.Str)
		default:
			nodes[i].shard = infoFields(v1.Str)
			nodes[i].keyspace = infoFields(v2.Str)
		}
	}
	if r.want("keyspace") {
		section("Keyspace")
		var keys, expires int64
		for _, n := range nodes {
			for _, kv := range n.keyspace {
				if kv[0] != "db0" {
					continue
				}
				for _, f := range strings.Split(kv[1], ",") {
					k, v, _ := strings.Cut(f, "=")
					x, _ := strconv.ParseInt(v, 10, 64)
					switch k {
					case "keys":
						keys += x
					case "expires":
						expires += x
					}
				}
			}
		}
		if keys > 0 {
			field("db0", "keys="+itoa(keys)+",expires="+itoa(expires)+",avg_ttl=0")
		}
	}
	for i, p := range m.parts {
		if !r.wantShard(p.sh.name) {
			continue
		}
		section("Shard_" + p.sh.name)
		field("shard_addr", p.sh.addr)
		if nodes[i].err != "" {
			field("shard_reachable", "0")
			field("shard_error", strings.ReplaceAll(nodes[i].err, "\n", " "))
			continue
		}
		field("shard_reachable", "1")
		for _, kv := range nodes[i].shard {
			field(kv[0], kv[1])
		}
	}
	return resp.AppendVerbatim(b, c.proto, "txt", t.String())
}
