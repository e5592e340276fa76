package proxy

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/resp"
)

// CLUSTER. Cluster-aware clients (go-redis NewClusterClient, ioredis
// Cluster, redis-py RedisCluster) learn a Redis Cluster's topology from
// CLUSTER SLOTS (or SHARDS, NODES) and send each key to the node that owns
// its slot. The proxy answers as a cluster of one master that owns all
// 16384 slots, at the address the client reached it on: every command comes
// back to the proxy, which routes it by the range map as usual. Slots are
// not the range map's positions (those are xxhash, slots CRC16); a client
// only needs them to agree with the topology it was told, and one node
// owning every slot agrees with any key.
//
// The node id is the proxy's run_id: 40 hex digits, random per process, so
// one proxy reports one id on every connection until it restarts.
//
// Subcommands that would change a cluster (slots, meet, failover, epochs)
// get an error that says why, not a fake +OK; the topology comes from the
// range map (SHARD.RELOAD).

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// clusterSub is how the proxy answers one CLUSTER subcommand (the command
// table's subcommand rows hold Redis 7.0's arities); run nil means it is
// refused with unsupported.
type clusterSub struct {
	run         func(c *client, out []byte, args [][]byte) []byte
	unsupported string
}

const (
	errClusterChange = "the shardkv proxy presents itself as one node owning every slot; its shards are set by the range map (SHARD.RELOAD), not by CLUSTER commands"
	errClusterKeys   = "the shardkv proxy does not index keys by hash slot (its shards own ranges of xxhash positions); use SCAN"
)

var clusterSubs = map[string]clusterSub{
	"info":                  {run: (*client).clusterInfo},
	"myid":                  {run: (*client).clusterMyID},
	"nodes":                 {run: (*client).clusterNodes},
	"slots":                 {run: (*client).clusterSlotsReply},
	"shards":                {run: (*client).clusterShards},
	"keyslot":               {run: (*client).clusterKeySlot},
	"links":                 {run: (*client).clusterLinks},
	"replicas":              {run: (*client).clusterReplicas},
	"slaves":                {run: (*client).clusterReplicas},
	"count-failure-reports": {run: (*client).clusterFailureReports},
	"help":                  {run: (*client).clusterHelp},
	"countkeysinslot":       {unsupported: errClusterKeys},
	"getkeysinslot":         {unsupported: errClusterKeys},
	"addslots":              {unsupported: errClusterChange},
	"addslotsrange":         {unsupported: errClusterChange},
	"delslots":              {unsupported: errClusterChange},
	"delslotsrange":         {unsupported: errClusterChange},
	"flushslots":            {unsupported: errClusterChange},
	"setslot":               {unsupported: errClusterChange},
	"meet":                  {unsupported: errClusterChange},
	"forget":                {unsupported: errClusterChange},
	"replicate":             {unsupported: errClusterChange},
	"failover":              {unsupported: errClusterChange},
	"reset":                 {unsupported: errClusterChange},
	"bumpepoch":             {unsupported: errClusterChange},
	"set-config-epoch":      {unsupported: errClusterChange},
	"saveconfig":            {unsupported: errClusterChange},
}

var clusterRow = cmdtable.Lookup([]byte("cluster"))

// clusterCmd is CLUSTER subcommand [args]; the table checked arity -2.
func (c *client) clusterCmd(args [][]byte) {
	mark := len(c.out)
	c.out = c.clusterReply(c.out, args)
	c.reply(mark)
}

func (c *client) clusterReply(out []byte, args [][]byte) []byte {
	// Admission resolved the subcommand already; a direct caller gets the
	// same errors from the same rows.
	if _, msg := clusterRow.Resolve(args, cmdtable.SideProxy); msg != "" {
		return resp.AppendError(out, msg)
	}
	name := strings.ToLower(string(args[1]))
	sub, ok := clusterSubs[name]
	switch {
	case !ok:
		return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("cluster", string(args[1])))
	case sub.run == nil:
		return resp.AppendError(out, "ERR CLUSTER "+strings.ToUpper(name)+" is not supported: "+sub.unsupported)
	}
	return sub.run(c, out, args)
}

// clusterSelf is the one node the proxy presents: its id and the address
// the client connected to, which is an address that reaches the proxy
// whatever it binds (a wildcard, several interfaces).
func (c *client) clusterSelf() (id, ip string, port int) {
	host, p, err := net.SplitHostPort(c.sess.LAddr)
	if err == nil {
		port, _ = strconv.Atoi(p)
	} else {
		host = "" // Redis's "unknown": clients use the address they dialed
	}
	return c.s.runID, host, port
}

func (c *client) clusterInfo(out []byte, args [][]byte) []byte {
	// cluster_state is ok while the proxy answers: a shard that is down
	// fails its keys with TRYAGAIN, and SHARD.MAP and INFO say which; slots
	// cannot say, as they do not map onto shards.
	const info = "cluster_state:ok\r\n" +
		"cluster_slots_assigned:16384\r\n" +
		"cluster_slots_ok:16384\r\n" +
		"cluster_slots_pfail:0\r\n" +
		"cluster_slots_fail:0\r\n" +
		"cluster_known_nodes:1\r\n" +
		"cluster_size:1\r\n" +
		"cluster_current_epoch:0\r\n" +
		"cluster_my_epoch:0\r\n" +
		"cluster_stats_messages_sent:0\r\n" +
		"cluster_stats_messages_received:0\r\n" +
		"total_cluster_links_buffer_limit_exceeded:0\r\n"
	return resp.AppendVerbatim(out, c.sess.Proto, "txt", info)
}

func (c *client) clusterMyID(out []byte, args [][]byte) []byte {
	return resp.AppendBulkString(out, c.s.runID)
}

// clusterNodes is Redis 7.0's line for a master that is itself:
// id ip:port@cport flags master ping-sent pong-recv config-epoch link-state
// slots. The cluster bus port is 0: the proxy has no cluster bus.
func (c *client) clusterNodes(out []byte, args [][]byte) []byte {
	id, ip, port := c.clusterSelf()
	line := id + " " + ip + ":" + strconv.Itoa(port) + "@0 myself,master - 0 0 0 connected 0-" + strconv.Itoa(clusterSlots-1) + "\n"
	return resp.AppendVerbatim(out, c.sess.Proto, "txt", line)
}

// clusterSlotsReply is CLUSTER SLOTS: one range, 0-16383, whose master is
// the proxy: ip, port, id and Redis 7's networking metadata (none: no
// hostname), a map in RESP3.
func (c *client) clusterSlotsReply(out []byte, args [][]byte) []byte {
	id, ip, port := c.clusterSelf()
	out = resp.AppendArray(out, 1)
	out = resp.AppendArray(out, 3)
	out = resp.AppendInt(out, 0)
	out = resp.AppendInt(out, clusterSlots-1)
	out = resp.AppendArray(out, 4)
	out = resp.AppendBulkString(out, ip)
	out = resp.AppendInt(out, int64(port))
	out = resp.AppendBulkString(out, id)
	return resp.AppendMap(out, c.sess.Proto, 0)
}

// clusterShards is CLUSTER SHARDS: one shard with the slot range and its
// one node, maps in RESP3 and flat arrays in RESP2, with Redis 7.0's fields
// in Redis's order.
func (c *client) clusterShards(out []byte, args [][]byte) []byte {
	id, ip, port := c.clusterSelf()
	proto := c.sess.Proto
	out = resp.AppendArray(out, 1)
	out = resp.AppendMap(out, proto, 2)
	out = resp.AppendBulkString(out, "slots")
	out = resp.AppendArray(out, 2)
	out = resp.AppendInt(out, 0)
	out = resp.AppendInt(out, clusterSlots-1)
	out = resp.AppendBulkString(out, "nodes")
	out = resp.AppendArray(out, 1)
	out = resp.AppendMap(out, proto, 7)
	out = resp.AppendBulkString(out, "id")
	out = resp.AppendBulkString(out, id)
	out = resp.AppendBulkString(out, "port")
	out = resp.AppendInt(out, int64(port))
	out = resp.AppendBulkString(out, "ip")
	out = resp.AppendBulkString(out, ip)
	out = resp.AppendBulkString(out, "endpoint")
	out = resp.AppendBulkString(out, ip)
	out = resp.AppendBulkString(out, "role")
	out = resp.AppendBulkString(out, "master")
	out = resp.AppendBulkString(out, "replication-offset")
	out = resp.AppendInt(out, 0)
	out = resp.AppendBulkString(out, "health")
	return resp.AppendBulkString(out, "online")
}

func (c *client) clusterKeySlot(out []byte, args [][]byte) []byte {
	return resp.AppendInt(out, int64(keySlot(args[2])))
}

// clusterLinks: a cluster of one node has no links to peers.
func (c *client) clusterLinks(out []byte, args [][]byte) []byte {
	return resp.AppendArray(out, 0)
}

// clusterReplicas is CLUSTER REPLICAS|SLAVES node-id: the proxy has none.
func (c *client) clusterReplicas(out []byte, args [][]byte) []byte {
	if string(args[2]) != c.s.runID {
		return resp.AppendError(out, "ERR Unknown node "+string(args[2]))
	}
	return resp.AppendArray(out, 0)
}

// clusterFailureReports is CLUSTER COUNT-FAILURE-REPORTS node-id: no peer
// ever reports the proxy failing.
func (c *client) clusterFailureReports(out []byte, args [][]byte) []byte {
	if string(args[2]) != c.s.runID {
		return resp.AppendError(out, "ERR Unknown node "+string(args[2]))
	}
	return resp.AppendInt(out, 0)
}

// clusterHelp is Redis 7.0's CLUSTER HELP, word for word: it documents the
// command; the subcommands the proxy refuses say so when called.
func (c *client) clusterHelp(out []byte, args [][]byte) []byte {
	return conncmd.AppendHelp(out, "CLUSTER", clusterHelpLines)
}

var clusterHelpLines = []string{
	"ADDSLOTS <slot> [<slot> ...]",
	"    Assign slots to current node.",
	"ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
	"    Assign slots which are between <start-slot> and <end-slot> to current node.",
	"BUMPEPOCH",
	"    Advance the cluster config epoch.",
	"COUNT-FAILURE-REPORTS <node-id>",
	"    Return number of failure reports for <node-id>.",
	"COUNTKEYSINSLOT <slot>",
	"    Return the number of keys in <slot>.",
	"DELSLOTS <slot> [<slot> ...]",
	"    Delete slots information from current node.",
	"DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
	"    Delete slots information which are between <start-slot> and <end-slot> from current node.",
	"FAILOVER [FORCE|TAKEOVER]",
	"    Promote current replica node to being a master.",
	"FORGET <node-id>",
	"    Remove a node from the cluster.",
	"GETKEYSINSLOT <slot> <count>",
	"    Return key names stored by current node in a slot.",
	"FLUSHSLOTS",
	"    Delete current node own slots information.",
	"INFO",
	"    Return information about the cluster.",
	"KEYSLOT <key>",
	"    Return the hash slot for <key>.",
	"MEET <ip> <port> [<bus-port>]",
	"    Connect nodes into a working cluster.",
	"MYID",
	"    Return the node id.",
	"NODES",
	"    Return cluster configuration seen by node. Output format:",
	"    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
	"REPLICATE <node-id>",
	"    Configure current node as replica to <node-id>.",
	"RESET [HARD|SOFT]",
	"    Reset current node (default: soft).",
	"SET-CONFIG-EPOCH <epoch>",
	"    Set config epoch of current node.",
	"SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
	"    Set slot state.",
	"REPLICAS <node-id>",
	"    Return <node-id> replicas.",
	"SAVECONFIG",
	"    Force saving cluster configuration on disk.",
	"SLOTS",
	"    Return information about slots range mappings. Each range is made of:",
	"    start, end, master and replicas IP addresses, ports and ids",
	"SHARDS",
	"    Return information about slot range mappings and the nodes associated with them.",
	"LINKS",
	"    Return information about all network links between this node and its peers.",
	"    Output format is an array where each array element is a map containing attributes of a link",
}

// keySlot is Redis Cluster's slot of a key: CRC16 (XMODEM) mod 16384 of
// the key, or of its hash tag, the bytes between the first '{' and the
// first '}' after it when there is at least one.
func keySlot(key []byte) int {
	if open := bytes.IndexByte(key, '{'); open >= 0 {
		if n := bytes.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key) & (clusterSlots - 1))
}

// crc16Table is CRC-16/XMODEM's table (polynomial 0x1021, initial 0, no
// reflection), Redis's crc16.c computed instead of spelled out.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(b []byte) uint16 {
	var crc uint16
	for _, ch := range b {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^ch]
	}
	return crc
}
