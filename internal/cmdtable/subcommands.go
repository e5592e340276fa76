package cmdtable

import "bytes"

// Subcommands of the container commands, as Redis 7's command table has
// them: a row each, with its own arity (Redis checks "object|encoding"'s
// arity, not OBJECT's), flags and key positions. Redis looks the
// subcommand up before anything else, so a container given a subcommand it
// does not have is refused at once, also inside MULTI, where the refusal
// makes EXEC abort. Only the subcommands shardkv serves are listed: one
// Redis has and shardkv lacks (CLIENT TRACKING, CLIENT PAUSE) gets the
// unknown-subcommand error, which tells a client to do without it, as an
// unknown command does. Route says which server serves a subcommand when
// only one does (CLIENT KILL and CLIENT REPLY act on the proxy's clients).
var subcommands = map[string][]Command{
	"object": {
		{Name: "object|encoding", Arity: 3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Group: "generic", Summary: "Returns the internal encoding of a Redis object."},
		{Name: "object|freq", Arity: 3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Group: "generic", Summary: "Returns the logarithmic access frequency counter of a Redis object."},
		{Name: "object|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "generic", Summary: "Returns helpful text about the different subcommands."},
		{Name: "object|idletime", Arity: 3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Group: "generic", Summary: "Returns the time since the last access to a Redis object."},
		{Name: "object|refcount", Arity: 3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Group: "generic", Summary: "Returns the reference count of a value of a key."},
	},
	"client": {
		{Name: "client|getname", Arity: 2, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Returns the name of the connection."},
		{Name: "client|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "connection", Summary: "Returns helpful text about the different subcommands."},
		{Name: "client|id", Arity: 2, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Returns the unique client ID of the connection."},
		{Name: "client|info", Arity: 2, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Returns information about the connection."},
		{Name: "client|kill", Arity: -3, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Route: RouteProxyOnly, Group: "connection", Summary: "Terminates open connections."},
		{Name: "client|list", Arity: -2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Lists open connections."},
		{Name: "client|no-evict", Arity: 3, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Sets the client eviction mode of the connection."},
		{Name: "client|no-touch", Arity: 3, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Controls whether commands sent by the client affect the LRU/LFU of accessed keys."},
		{Name: "client|reply", Arity: 3, Flags: FlagNoScript | FlagLoading | FlagStale, Route: RouteProxyOnly, Group: "connection", Summary: "Instructs the server whether to reply to commands."},
		{Name: "client|setinfo", Arity: 4, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Sets information specific to the client or connection."},
		{Name: "client|setname", Arity: 3, Flags: FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Sets the connection name."},
		{Name: "client|unblock", Arity: -3, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "connection", Summary: "Unblocks a client blocked by a blocking command from a different connection."},
	},
	"command": {
		{Name: "command|count", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns a count of commands."},
		{Name: "command|docs", Arity: -2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns documentary information about one, multiple or all commands."},
		{Name: "command|getkeys", Arity: -4, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Extracts the key names from an arbitrary command."},
		{Name: "command|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns helpful text about the different subcommands."},
		{Name: "command|info", Arity: -2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns information about one, multiple or all commands."},
		{Name: "command|list", Arity: -2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns a list of command names."},
	},
	"slowlog": {
		{Name: "slowlog|get", Arity: -2, Flags: FlagAdmin | FlagLoading | FlagStale, Group: "server", Summary: "Returns the slow log's entries."},
		{Name: "slowlog|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Show helpful text about the different subcommands."},
		{Name: "slowlog|len", Arity: 2, Flags: FlagAdmin | FlagLoading | FlagStale, Group: "server", Summary: "Returns the number of entries in the slow log."},
		{Name: "slowlog|reset", Arity: 2, Flags: FlagAdmin | FlagLoading | FlagStale, Group: "server", Summary: "Clears all entries from the slow log."},
	},
	// LATENCY DOCTOR and GRAPH, Redis's reports for a person, are not served.
	"latency": {
		{Name: "latency|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns helpful text about the different subcommands."},
		{Name: "latency|histogram", Arity: -2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Returns the cumulative distribution of latencies of a subset or all commands."},
		{Name: "latency|history", Arity: 3, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Returns timestamp-latency samples for an event."},
		{Name: "latency|latest", Arity: 2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Returns the latest latency samples for all events."},
		{Name: "latency|reset", Arity: -2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Resets the latency data for one or more events."},
	},
	"pubsub": {
		{Name: "pubsub|channels", Arity: -2, Flags: FlagPubsub | FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns the active channels."},
		{Name: "pubsub|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns helpful text about the different subcommands."},
		{Name: "pubsub|numpat", Arity: 2, Flags: FlagPubsub | FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns a count of unique pattern subscriptions."},
		{Name: "pubsub|numsub", Arity: -2, Flags: FlagPubsub | FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns a count of subscribers to channels."},
		{Name: "pubsub|shardchannels", Arity: -2, Flags: FlagPubsub | FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns the active shard channels."},
		{Name: "pubsub|shardnumsub", Arity: -2, Flags: FlagPubsub | FlagLoading | FlagStale, Group: "pubsub", Summary: "Returns the count of subscribers of shard channels."},
	},
	// SCRIPT DEBUG (the Lua debugger) is not served.
	"script": {
		{Name: "script|exists", Arity: -3, Flags: FlagNoScript, Group: "scripting", Summary: "Determines whether server-side Lua scripts exist in the script cache."},
		{Name: "script|flush", Arity: -2, Flags: FlagNoScript, Group: "scripting", Summary: "Removes all server-side Lua scripts from the script cache."},
		{Name: "script|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "scripting", Summary: "Returns helpful text about the different subcommands."},
		{Name: "script|kill", Arity: 2, Flags: FlagNoScript | FlagAllowBusy, Group: "scripting", Summary: "Terminates a server-side Lua script during execution."},
		{Name: "script|load", Arity: 3, Flags: FlagNoScript | FlagStale, Group: "scripting", Summary: "Loads a server-side Lua script to the script cache."},
	},
	"memory": {
		{Name: "memory|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns helpful text about the different subcommands."},
		{Name: "memory|usage", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Group: "server", Summary: "Estimates the memory usage of a key."},
	},
	// CLUSTER is the proxy's (proxy/cluster.go): it answers the subcommands
	// that read the topology and refuses, saying why, those that would
	// change it; every one Redis 7.0 has is listed so that both kinds pass
	// admission.
	"cluster": {
		{Name: "cluster|addslots", Arity: -3, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Assign new hash slots to receiving node."},
		{Name: "cluster|addslotsrange", Arity: -4, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Assign new hash slots to receiving node."},
		{Name: "cluster|bumpepoch", Arity: 2, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Advance the cluster config epoch."},
		{Name: "cluster|count-failure-reports", Arity: 3, Flags: FlagAdmin | FlagStale, Group: "cluster", Summary: "Return the number of failure reports active for a given node."},
		{Name: "cluster|countkeysinslot", Arity: 3, Flags: FlagStale, Group: "cluster", Summary: "Return the number of local keys in the specified hash slot."},
		{Name: "cluster|delslots", Arity: -3, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Set hash slots as unbound in receiving node."},
		{Name: "cluster|delslotsrange", Arity: -4, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Set hash slots as unbound in receiving node."},
		{Name: "cluster|failover", Arity: -2, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Forces a replica to perform a manual failover of its master."},
		{Name: "cluster|flushslots", Arity: 2, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Delete a node's own slots information."},
		{Name: "cluster|forget", Arity: 3, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Remove a node from the nodes table."},
		{Name: "cluster|getkeysinslot", Arity: 4, Flags: FlagStale, Group: "cluster", Summary: "Return local key names in the specified hash slot."},
		{Name: "cluster|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "cluster", Summary: "Show helpful text about the different subcommands."},
		{Name: "cluster|info", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Provides info about Redis Cluster node state."},
		{Name: "cluster|keyslot", Arity: 3, Flags: FlagStale, Group: "cluster", Summary: "Returns the hash slot of the specified key."},
		{Name: "cluster|links", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Returns a list of all TCP links to and from peer nodes in cluster."},
		{Name: "cluster|meet", Arity: -4, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Force a node cluster to handshake with another node."},
		{Name: "cluster|myid", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Return the node id."},
		{Name: "cluster|nodes", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Get Cluster config for the node."},
		{Name: "cluster|replicas", Arity: 3, Flags: FlagAdmin | FlagStale, Group: "cluster", Summary: "List replica nodes of the specified master node."},
		{Name: "cluster|replicate", Arity: 3, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Reconfigure a node as a replica of the specified master node."},
		{Name: "cluster|reset", Arity: -2, Flags: FlagAdmin | FlagNoScript | FlagStale, Group: "cluster", Summary: "Reset a Redis Cluster node."},
		{Name: "cluster|saveconfig", Arity: 2, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Forces the node to save cluster state on disk."},
		{Name: "cluster|set-config-epoch", Arity: 3, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Set the configuration epoch in a new node."},
		{Name: "cluster|setslot", Arity: -4, Flags: FlagAdmin | FlagStale | FlagNoAsync, Group: "cluster", Summary: "Bind a hash slot to a specific node."},
		{Name: "cluster|shards", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Get array of cluster slots to node mappings."},
		{Name: "cluster|slaves", Arity: 3, Flags: FlagAdmin | FlagStale, Group: "cluster", Summary: "List replica nodes of the specified master node."},
		{Name: "cluster|slots", Arity: 2, Flags: FlagStale, Group: "cluster", Summary: "Get array of Cluster slot to node mappings."},
	},
	"config": {
		{Name: "config|get", Arity: -3, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Returns the effective values of configuration parameters."},
		{Name: "config|help", Arity: 2, Flags: FlagLoading | FlagStale, Group: "server", Summary: "Returns helpful text about the different subcommands."},
		{Name: "config|resetstat", Arity: 2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Resets the server's statistics."},
		{Name: "config|rewrite", Arity: 2, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Persists the effective configuration to file."},
		{Name: "config|set", Arity: -4, Flags: FlagAdmin | FlagNoScript | FlagLoading | FlagStale, Group: "server", Summary: "Sets configuration parameters in-flight."},
	},
}

// The rows get their subcommands here rather than in the table's literal,
// which stays one line per command.
func init() {
	for i := range Commands {
		if subs, ok := subcommands[Commands[i].Name]; ok {
			Commands[i].Subcommands = subs
		}
	}
}

// Side names the server that reads a row: some rows (and subcommands) are
// served by one of them only (RouteNodeOnly, RouteProxyOnly).
type Side uint8

const (
	SideProxy Side = iota
	SideNode
)

// ServedOn reports whether the server on side s serves the row.
func (c *Command) ServedOn(s Side) bool {
	switch c.Route {
	case RouteNodeOnly:
		return s == SideNode
	case RouteProxyOnly:
		return s == SideProxy
	}
	return true
}

// Subcommand finds the subcommand args[1] of a container command that the
// server on side s serves, as Redis's lookupCommand does before any other
// check: sub is nil and known true when c is no container or args has no
// subcommand (the container's own arity then refuses args[0] alone);
// known is false for a subcommand the container does not have, which gets
// ErrUnknownSubcommand(c.Name, args[1]).
func (c *Command) Subcommand(args [][]byte, s Side) (sub *Command, known bool) {
	if c.Subcommands == nil || len(args) < 2 {
		return nil, true
	}
	for i := range c.Subcommands {
		sc := &c.Subcommands[i]
		if bytes.EqualFold(args[1], []byte(sc.Name[len(c.Name)+1:])) && sc.ServedOn(s) {
			return sc, true
		}
	}
	return nil, false
}

// Resolve runs Redis's first two checks on a request for row c: the
// subcommand exists and the arity fits (the subcommand's when there is
// one). It returns the row the arity was checked against (c or its
// subcommand) and, when a check fails, the error to reply.
func (c *Command) Resolve(args [][]byte, s Side) (row *Command, errMsg string) {
	sub, known := c.Subcommand(args, s)
	switch {
	case !known:
		return c, ErrUnknownSubcommand(c.Name, string(args[1]))
	case sub != nil:
		c = sub
	}
	if !c.ArityOK(len(args)) {
		return c, ErrWrongArity(c.Name)
	}
	return c, ""
}
