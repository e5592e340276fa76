package proxy

import (
	"net"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// INFO: the proxy's own sections (server, clients, stats, commandstats),
// the figures of the nodes (memory, persistence, keyspace, and the stats
// about keys) summed over the nodes' INFO, and one section per shard, "#
// Shard_<name>", with the node's INFO shard fields plus its address and
// whether the proxy reaches it. A section with figures summed over the
// nodes lists, when some shard did not answer, the shards it could not
// count in unreachable_shards: its sums are then partial. db0's line keeps
// Redis's shape either way.

const infoNodeCmd = "*6\r\n$4\r\nINFO\r\n$5\r\nshard\r\n$8\r\nkeyspace\r\n$6\r\nmemory\r\n$11\r\npersistence\r\n$5\r\nstats\r\n"

// wantShard reports whether INFO asked for the section of shard name.
func wantShard(r *conncmd.InfoRequest, name string) bool {
	return r.WantAny("shards", "shard", "shard_"+strings.ToLower(name))
}

func (c *client) infoCmd(args [][]byte) {
	r := conncmd.ParseInfo(args)
	m := c.newMerge(nil, "info")
	m.info = &r
	needNodes := r.WantAny("keyspace", "memory", "persistence", "stats")
	for _, sh := range c.tbl.nodes {
		if wantShard(&r, sh.name) {
			needNodes = true
		}
	}
	if !needNodes {
		return
	}
	for _, sh := range c.tbl.nodes {
		c.addPart(m, sh, []byte(infoNodeCmd), 1)
	}
}

// infoSections parses INFO's text into its sections (lower case names),
// each the "k:v" lines in order.
func infoSections(text []byte) map[string][][2]string {
	out := map[string][][2]string{}
	sec := ""
	for _, line := range strings.Split(string(text), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
			continue
		case line[0] == '#':
			sec = strings.ToLower(strings.TrimSpace(line[1:]))
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out[sec] = append(out[sec], [2]string{k, v})
		}
	}
	return out
}

// nodeInfo is one node's reply to infoNodeCmd.
type nodeInfo struct {
	sections map[string][][2]string
	err      string
}

func (n *nodeInfo) field(section, key string) (string, bool) {
	for _, kv := range n.sections[section] {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}

func (n *nodeInfo) int(section, key string) int64 {
	v, _ := n.field(section, key)
	x, _ := strconv.ParseInt(v, 10, 64)
	return x
}

func (c *client) writeInfo(m *merge, b []byte) []byte {
	r := m.info
	s := c.s
	nodes := make([]nodeInfo, len(m.parts))
	var unreachable []string
	for i, p := range m.parts {
		switch v, _, err := resp.Parse(p.req.Reply); {
		case p.req.Err != nil:
			nodes[i].err = p.req.Err.Error()
		case err != nil:
			nodes[i].err = "malformed reply"
		case v.IsError():
			nodes[i].err = string(v.Str)
		default:
			nodes[i].sections = infoSections(v.Str)
		}
		if nodes[i].err != "" {
			unreachable = append(unreachable, p.sh.name)
		}
	}
	// partial names the shards a sum could not count.
	partial := func(w *conncmd.InfoWriter) {
		if len(unreachable) > 0 {
			w.Field("unreachable_shards", strings.Join(unreachable, ","))
		}
	}
	sum := func(section, key string) int64 {
		var n int64
		for i := range nodes {
			n += nodes[i].int(section, key)
		}
		return n
	}
	var w conncmd.InfoWriter
	if r.Want("server") {
		port := ""
		if a := s.Addr(); a != nil {
			_, port, _ = net.SplitHostPort(a.String())
		}
		conncmd.WriteServer(&w, conncmd.ServerInfo{Role: "proxy", Port: port, RunID: s.runID, Started: s.started})
		up := 0
		for _, sh := range c.tbl.nodes {
			if sh.healthy() {
				up++
			}
		}
		w.Field("shards", len(c.tbl.nodes))
		w.Field("shards_up", up)
		// The range map's placement mode, named as the local cluster's
		// DIR/placement file names it.
		placement := "whole_key"
		if c.tbl.m.HashTags {
			placement = "hash_tags"
		}
		w.Field("placement", placement)
		// The epoch of the map routed by: 0 for a static map file, else
		// the etcd map's (docs/RESHARDING.md).
		w.Field("map_epoch", c.tbl.m.Epoch)
		w.Field("loading", 0)
	}
	if r.Want("clients") {
		conncmd.WriteClients(&w, s.nclients.Load(), s.cfg.MaxClients, s.blocked.Load())
	}
	if r.Want("memory") {
		// maxmemory is the sum of the shards' size limits, or 0 (none)
		// when a shard has none.
		var limit int64
		for _, sh := range c.tbl.m.Shards {
			if sh.Size <= 0 {
				limit = 0
				break
			}
			limit += sh.Size
		}
		conncmd.WriteMemory(&w, conncmd.MemoryInfo{Used: sum("memory", "used_memory"),
			Peak: sum("memory", "used_memory_peak"), RSS: sum("memory", "used_memory_rss"), MaxMemory: limit})
		own := s.obs.Memory()
		w.Field("proxy_used_memory", own.Used)
		w.Field("proxy_used_memory_human", conncmd.HumanBytes(own.Used))
		w.Field("proxy_used_memory_rss", own.RSS)
		w.Field("proxy_used_memory_peak", s.obs.Peak())
		w.Field("live_data_bytes", sum("memory", "live_data_bytes"))
		partial(&w)
	}
	if r.Want("persistence") {
		ok := true
		for i := range nodes {
			if v, _ := nodes[i].field("persistence", "aof_last_write_status"); v == "err" {
				ok = false
			}
		}
		conncmd.WritePersistence(&w, conncmd.PersistenceInfo{WriteOK: ok, Started: s.started.Unix()})
		partial(&w)
	}
	if r.Want("stats") {
		conncmd.WriteStats(&w, s.obs, conncmd.StatsInfo{
			Connections: s.connsReceived.Load(), Commands: s.commands.Load(),
			NetIn: s.netIn.Load(), NetOut: s.netOut.Load(), Rejected: s.rejected.Load(),
			ExpiredKeys: sum("stats", "expired_keys"),
			Hits:        sum("stats", "keyspace_hits"), Misses: sum("stats", "keyspace_misses"),
		}.WithPubsub(s.ps.counts()))
		partial(&w)
	}
	if r.WantExtra("commandstats") {
		conncmd.WriteCommandStats(&w, &s.obs.Commands, proxyRows)
	}
	if r.Want("cluster") {
		// redis-py's RedisCluster refuses a node whose INFO lacks
		// cluster_enabled:1; the proxy answers CLUSTER (cluster.go).
		w.Section("Cluster")
		w.Field("cluster_enabled", 1)
	}
	if r.Want("keyspace") {
		w.Section("Keyspace")
		// A line per database that has keys on some node, as Redis.
		for d := range conncmd.Databases {
			db := "db" + strconv.Itoa(d)
			var keys, expires int64
			for i := range nodes {
				v, _ := nodes[i].field("keyspace", db)
				for _, f := range strings.Split(v, ",") {
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
			if keys > 0 {
				w.Field(db, "keys="+itoa(keys)+",expires="+itoa(expires)+",avg_ttl=0")
			}
		}
		partial(&w)
	}
	for i, p := range m.parts {
		if !wantShard(r, p.sh.name) {
			continue
		}
		w.Section("Shard_" + p.sh.name)
		w.Field("shard_addr", p.sh.addr)
		health, why := "ok", nodes[i].err
		if why != "" {
			health = "unreachable"
		}
		if r := p.sh.mismatch.Load(); r != nil {
			health, why = "map_mismatch", *r
		}
		if nodes[i].err != "" {
			w.Field("shard_reachable", 0)
		} else {
			w.Field("shard_reachable", 1)
		}
		if why != "" {
			w.Field("shard_error", strings.ReplaceAll(why, "\n", " "))
		}
		w.Field("shard_health", health)
		if nodes[i].err != "" {
			continue
		}
		for _, kv := range nodes[i].sections["shard"] {
			w.Field(kv[0], kv[1])
		}
	}
	return resp.AppendVerbatim(b, c.sess.Proto, "txt", w.String())
}
