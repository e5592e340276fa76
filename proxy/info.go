package proxy

import (
	"net"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// INFO: the proxy's own sections (server, clients, stats), the keyspace
// summed over the nodes' INFO keyspace, and one section per shard, "#
// Shard_<name>", with the node's INFO shard fields plus its address and
// whether the proxy reaches it.

const infoNodeCmd = "*2\r\n$4\r\nINFO\r\n$5\r\nshard\r\n*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n"

// wantShard reports whether INFO asked for the section of shard name.
func wantShard(r *conncmd.InfoRequest, name string) bool {
	return r.WantAny("shards", "shard", "shard_"+strings.ToLower(name))
}

func (c *client) infoCmd(args [][]byte) {
	r := conncmd.ParseInfo(args)
	m := c.newMerge(nil, "info")
	m.info = &r
	needNodes := r.Want("keyspace")
	for _, sh := range c.tbl.shards {
		if wantShard(&r, sh.name) {
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
	var w conncmd.InfoWriter
	if r.Want("server") {
		port := ""
		if a := s.Addr(); a != nil {
			_, port, _ = net.SplitHostPort(a.String())
		}
		conncmd.WriteServer(&w, conncmd.ServerInfo{Role: "proxy", Port: port, RunID: s.runID, Started: s.started})
		w.Field("shards", len(c.tbl.shards))
		w.Field("loading", 0)
	}
	if r.Want("clients") {
		conncmd.WriteClients(&w, s.nclients.Load(), s.cfg.MaxClients)
	}
	if r.Want("stats") {
		w.Section("Stats")
		w.Field("total_connections_received", s.connsReceived.Load())
		w.Field("total_commands_processed", s.commands.Load())
		w.Field("rejected_connections", s.rejected.Load())
		w.Field("total_net_input_bytes", s.netIn.Load())
	}
	if r.Want("cluster") {
		// redis-py's RedisCluster refuses a node whose INFO lacks
		// cluster_enabled:1; the proxy answers CLUSTER (cluster.go).
		w.Section("Cluster")
		w.Field("cluster_enabled", 1)
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
	if r.Want("keyspace") {
		w.Section("Keyspace")
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
			w.Field("db0", "keys="+itoa(keys)+",expires="+itoa(expires)+",avg_ttl=0")
		}
	}
	for i, p := range m.parts {
		if !wantShard(r, p.sh.name) {
			continue
		}
		w.Section("Shard_" + p.sh.name)
		w.Field("shard_addr", p.sh.addr)
		if nodes[i].err != "" {
			w.Field("shard_reachable", 0)
			w.Field("shard_error", strings.ReplaceAll(nodes[i].err, "\n", " "))
			continue
		}
		w.Field("shard_reachable", 1)
		for _, kv := range nodes[i].shard {
			w.Field(kv[0], kv[1])
		}
	}
	return resp.AppendVerbatim(b, c.sess.Proto, "txt", w.String())
}
