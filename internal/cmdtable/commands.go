package cmdtable

import "strings"

// Flag describes a command the way Redis's command table does; the names are
// the ones COMMAND INFO replies.
type Flag uint32

const (
	FlagWrite           Flag = 1 << iota // modifies data: refused past the size limit, checked for ownership
	FlagReadonly                         // reads data only
	FlagDenyOOM                          // may grow live data: refused with -OOM past the size limit
	FlagAdmin                            // server administration
	FlagFast                             // O(1) or O(log N)
	FlagNoAuth                           // allowed before AUTH
	FlagLoading                          // allowed while loading
	FlagStale                            // allowed on a stale replica
	FlagNoMulti                          // not allowed inside MULTI (refused at queue time)
	FlagNoScript                         // not allowed in scripts
	FlagNoAsync                          // no_async_loading: refused while the dataset loads asynchronously
	FlagSkipMonitor                      // skip_monitor: not shown by MONITOR (EVAL: its commands are)
	FlagNoMandatoryKeys                  // no_mandatory_keys: may name no key (EVAL with numkeys 0)
	FlagAllowBusy                        // allow_busy: served while a script is past busy-reply-threshold
	FlagBlocking                         // may block the client until a key gets data (BLPOP, BZPOPMIN, ...)
	FlagPubsub                           // a Pub/Sub command
)

var flagNames = []struct {
	f    Flag
	name string
}{
	{FlagWrite, "write"}, {FlagReadonly, "readonly"}, {FlagDenyOOM, "denyoom"}, {FlagAdmin, "admin"},
	{FlagPubsub, "pubsub"}, {FlagNoScript, "noscript"}, {FlagBlocking, "blocking"}, {FlagLoading, "loading"},
	{FlagStale, "stale"}, {FlagSkipMonitor, "skip_monitor"}, {FlagFast, "fast"}, {FlagNoAuth, "no_auth"},
	{FlagNoMandatoryKeys, "no_mandatory_keys"}, {FlagNoAsync, "no_async_loading"}, {FlagNoMulti, "no_multi"},
	{FlagAllowBusy, "allow_busy"},
}

// Names returns the flag names in COMMAND INFO order, which is Redis's
// (server.c addReplyCommandFlags).
func (f Flag) Names() []string {
	var out []string
	for _, fn := range flagNames {
		if f&fn.f != 0 {
			out = append(out, fn.name)
		}
	}
	return out
}

// Route says how the proxy sends a command to the shard nodes.
type Route uint8

const (
	// RouteLocal: answered by whichever server received it (connection and
	// server commands); never forwarded.
	RouteLocal Route = iota
	// RouteKey: the command names one key (FirstKey); it goes to its owner.
	RouteKey
	// RouteSplit: keys are split by owner, sent in parallel and the replies
	// merged back in the client's key order (MGET, MSET, DEL, ...).
	RouteSplit
	// RouteSameNode: several keys that must share a node to be atomic
	// (MSETNX, RENAME, RENAMENX, COPY).
	RouteSameNode
	// RouteFanout: sent to every node and the replies merged (KEYS, DBSIZE,
	// FLUSHALL, INDEX.*, SCAN, ...).
	RouteFanout
	// RouteTx: MULTI/EXEC/DISCARD/WATCH/UNWATCH, queued per connection.
	RouteTx
	// RouteNodeOnly: only meaningful on a shard node (SHARD.ASSIGN); the
	// proxy refuses it as an unknown command.
	RouteNodeOnly
	// RouteProxyOnly: only meaningful on the proxy (SHARD.LOCATE, SHARD.MAP,
	// SHARD.RELOAD); a shard node refuses it as an unknown command.
	RouteProxyOnly
)

// Merge says how the proxy combines the replies of a command it split by key
// owner (RouteSplit) or sent to every shard (RouteFanout).
type Merge uint8

const (
	MergeNone      Merge = iota // one node's reply is the reply
	MergeByKey                  // array elements back in the client's key order (MGET)
	MergeOK                     // +OK when every part said +OK (MSET, FLUSHALL)
	MergeSum                    // integers summed (DEL, EXISTS, DBSIZE)
	MergeConcat                 // arrays concatenated in shard order (KEYS)
	MergeRandom                 // one non-null reply at random (RANDOMKEY)
	MergeIndexList              // counts per name summed (INDEX.LIST)
	MergeScan                   // one node's SCAN page, with the proxy's global cursor
	// The set operations over keys on several shards: the proxy reads
	// each key's members and computes the result (proxy/setops.go).
	MergeSInter
	MergeSUnion
	MergeSDiff
	MergeSInterCard
	MergeScript // SCRIPT: LOAD's digest, EXISTS's AND, FLUSH's OK, KILL's one success (proxy/script.go)
	MergeZSetOp // sorted sets gathered from their shards and combined by the proxy (ZUNION, ...: proxy/zsetops.go)
)

// Multi says what a command does between MULTI and EXEC.
type Multi uint8

const (
	// MultiQueue: queued, and run by EXEC inside the shard node's
	// transaction (data commands, PING, ECHO, TIME, UNWATCH, SELECT).
	MultiQueue Multi = iota
	// MultiNow: never queued, runs at once (MULTI, EXEC, DISCARD, WATCH,
	// QUIT, RESET), as Redis runs them.
	MultiNow
	// MultiProxyState: reads or changes connection state that the proxy
	// keeps and a node's transaction cannot hold: a node queues it, the
	// proxy refuses it while queueing.
	MultiProxyState
)

// Reply is the shape of a reply the proxy builds itself from the nodes'
// replies, where RESP2 and RESP3 differ.
type Reply uint8

const (
	ReplyAsNode Reply = iota // the shape of the nodes' replies
	ReplyMap                 // a map in RESP3, a flat array of pairs in RESP2
	ReplySet                 // a set in RESP3, an array in RESP2
)

// Command is one row of the command table. Arity, key positions and flags
// follow Redis: Arity counts the command name, a negative arity means "at
// least -Arity", LastKey -1 means the last argument, and Step is the distance
// between keys (2 for MSET's key value pairs). The rest tells the servers
// what Redis's dispatch would know from the command's code: how the proxy
// routes it and merges the replies, what MULTI does with it, and the shape
// of a reply the proxy builds.
type Command struct {
	Name     string // lower case, as COMMAND replies it
	Arity    int
	Flags    Flag
	FirstKey int
	LastKey  int
	Step     int
	// KeyNum is the position of the argument that counts the keys after
	// it (SINTERCARD's numkeys), 0 for none: the keys are then FirstKey
	// (KeyNum+1) to the count's last, and LastKey is unused. A row whose
	// FirstKey comes before KeyNum (ZUNIONSTORE's destination) has the
	// keys FirstKey..LastKey and then the counted ones (KeyIndexes).
	// COMMAND INFO says movablekeys, as Redis does.
	KeyNum int
	// MoreKeys, when set, returns the positions of the keys an option
	// names (SORT's STORE destination), after the ones above: COMMAND INFO
	// says movablekeys, as Redis does.
	MoreKeys func(args [][]byte) []int
	Route    Route
	Merge    Merge // RouteSplit and RouteFanout
	Multi    Multi
	Reply    Reply
	Group    string // COMMAND DOCS group: string, generic, connection, server, cluster, transactions, shardkv
	Summary  string // COMMAND DOCS summary
	// Index is the row's position in Commands (set at init): per-command
	// counters are arrays indexed by it.
	Index int
	// Subcommands are a container command's (OBJECT, CLIENT, ...) rows for
	// the subcommands shardkv serves, named "container|sub" as Redis names
	// them (subcommands.go); nil for other commands.
	Subcommands []Command
}

// Commands is the table. Adding a command is adding a row here and a handler
// in the servers that execute it.
var Commands = []Command{
	// strings
	{Name: "get", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns the string value of a key."},
	{Name: "set", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."},
	{Name: "setnx", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Set the string value of a key only when the key doesn't exist."},
	{Name: "setex", Arity: 4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."},
	{Name: "psetex", Arity: 4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."},
	{Name: "getdel", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns the string value of a key after deleting the key."},
	{Name: "getex", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns the string value of a key after setting its expiration time."},
	{Name: "getset", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns the previous string value of a key after setting it to a new value."},
	{Name: "mget", Arity: -2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeByKey, Group: "string", Summary: "Atomically returns the string values of one or more keys."},
	{Name: "mset", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: -1, Step: 2, Route: RouteSplit, Merge: MergeOK, Group: "string", Summary: "Atomically creates or modifies the string values of one or more keys."},
	{Name: "msetnx", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: -1, Step: 2, Route: RouteSameNode, Group: "string", Summary: "Atomically modifies the string values of one or more keys only when all keys don't exist."},
	{Name: "append", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Appends a string to the value of a key. Creates the key if it doesn't exist."},
	{Name: "strlen", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns the length of a string value."},
	{Name: "getrange", Arity: 4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns a substring of the string stored at a key."},
	{Name: "setrange", Arity: 4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."},
	{Name: "incr", Arity: 2, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
	{Name: "decr", Arity: 2, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
	{Name: "incrby", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."},
	{Name: "decrby", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."},
	{Name: "incrbyfloat", Arity: 3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."},
	{Name: "substr", Arity: 4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "string", Summary: "Returns a substring from a string value."},
	{Name: "lcs", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "string", Summary: "Finds the longest common substring."},
	// Bitmaps are strings: the bit commands name one key, but for BITOP's
	// destination and sources, which must share a shard (CROSSSHARD otherwise).
	{Name: "setbit", Arity: 4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."},
	{Name: "getbit", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Returns a bit value by offset."},
	{Name: "bitcount", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Counts the number of set bits (population counting) in a string."},
	{Name: "bitpos", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Finds the first set (1) or clear (0) bit in a string."},
	{Name: "bitop", Arity: -4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 2, LastKey: -1, Step: 1, Route: RouteSameNode, Group: "bitmap", Summary: "Performs bitwise operations on multiple strings, and stores the result."},
	{Name: "bitfield", Arity: -2, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Performs arbitrary bitfield integer operations on strings."},
	{Name: "bitfield_ro", Arity: -2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "bitmap", Summary: "Performs arbitrary read-only bitfield integer operations on strings."},
	// Hashes: one key each, so RouteKey; the node replies HGETALL as a map
	// in RESP3 itself (the proxy forwards RESP3 clients' commands on RESP3
	// connections).
	{Name: "hset", Arity: -4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Creates or modifies the value of a field in a hash."},
	{Name: "hsetnx", Arity: 4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Sets the value of a field in a hash only when the field doesn't exist."},
	{Name: "hmset", Arity: -4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Sets the values of multiple fields."},
	{Name: "hget", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns the value of a field in a hash."},
	{Name: "hmget", Arity: -3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns the values of all fields in a hash."},
	{Name: "hdel", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."},
	{Name: "hexists", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Determines whether a field exists in a hash."},
	{Name: "hlen", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns the number of fields in a hash."},
	{Name: "hstrlen", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns the length of the value of a field."},
	{Name: "hkeys", Arity: 2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns all fields in a hash."},
	{Name: "hvals", Arity: 2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns all values in a hash."},
	{Name: "hgetall", Arity: 2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns all fields and values in a hash."},
	{Name: "hincrby", Arity: 4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."},
	{Name: "hincrbyfloat", Arity: 4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."},
	{Name: "hrandfield", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Returns one or more random fields from a hash."},
	{Name: "hscan", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "hash", Summary: "Iterates over fields and values of a hash."},
	// Sets: one key each, except the multi-key reads (SINTER, SUNION,
	// SDIFF, SINTERCARD: the proxy gathers each key's members when the keys
	// span shards, not one snapshot) and the atomic writes (SMOVE and the
	// *STORE forms: one shard, else CROSSSHARD).
	{Name: "sadd", Arity: -3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Adds one or more members to a set. Creates the key if it doesn't exist."},
	{Name: "srem", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Removes one or more members from a set. Deletes the set if the last member was removed."},
	{Name: "sismember", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Determines whether a member belongs to a set."},
	{Name: "smismember", Arity: -3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Determines whether multiple members belong to a set."},
	{Name: "scard", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Returns the number of members in a set."},
	{Name: "smembers", Arity: 2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Returns all members of a set."},
	{Name: "srandmember", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Get one or multiple random members from a set"},
	{Name: "spop", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."},
	{Name: "smove", Arity: 4, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "set", Summary: "Moves a member from one set to another."},
	{Name: "sinter", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSInter, Reply: ReplySet, Group: "set", Summary: "Returns the intersect of multiple sets."},
	{Name: "sintercard", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSplit, Merge: MergeSInterCard, Group: "set", Summary: "Returns the number of members of the intersect of multiple sets."},
	{Name: "sunion", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSUnion, Reply: ReplySet, Group: "set", Summary: "Returns the union of multiple sets."},
	{Name: "sdiff", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSDiff, Reply: ReplySet, Group: "set", Summary: "Returns the difference of multiple sets."},
	{Name: "sinterstore", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSameNode, Group: "set", Summary: "Stores the intersect of multiple sets in a key."},
	{Name: "sunionstore", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSameNode, Group: "set", Summary: "Stores the union of multiple sets in a key."},
	{Name: "sdiffstore", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSameNode, Group: "set", Summary: "Stores the difference of multiple sets in a key."},
	{Name: "sscan", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "set", Summary: "Iterates over members of a set."},

	// Lists (shardnode/cmd_list.go): one key each, but for the moves
	// (LMOVE, RPOPLPUSH) and LMPOP, whose keys must share a shard
	// (CROSSSHARD otherwise), as Redis Cluster refuses cross-slot keys.
	{Name: "lpush", Arity: -3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Prepend one or multiple elements to a list"},
	{Name: "rpush", Arity: -3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Append one or multiple elements to a list"},
	{Name: "lpushx", Arity: -3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Prepend an element to a list, only if the list exists"},
	{Name: "rpushx", Arity: -3, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Append an element to a list, only if the list exists"},
	{Name: "lpop", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Remove and get the first elements in a list"},
	{Name: "rpop", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Remove and get the last elements in a list"},
	{Name: "llen", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Get the length of a list"},
	{Name: "lrange", Arity: 4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Get a range of elements from a list"},
	{Name: "lindex", Arity: 3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Get an element from a list by its index"},
	{Name: "lset", Arity: 4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Set the value of an element in a list by its index"},
	{Name: "linsert", Arity: 5, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Insert an element before or after another element in a list"},
	{Name: "lrem", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Remove elements from a list"},
	{Name: "ltrim", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Trim a list to the specified range"},
	{Name: "lpos", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "list", Summary: "Return the index of matching elements on a list"},
	{Name: "lmove", Arity: 5, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Pop an element from a list, push it to another list and return it"},
	{Name: "rpoplpush", Arity: 3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Remove the last element in a list, prepend it to another list and return it"},
	// SORT's STORE destination must share its key's shard; its BY and GET
	// patterns read keys of that shard only (the node refuses others with
	// CROSSSHARD: which keys they name depends on the elements).
	{Name: "sort", Arity: -2, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, MoreKeys: SortStoreKey, Route: RouteSameNode, Group: "generic", Summary: "Sort the elements in a list, set or sorted set"},
	{Name: "sort_ro", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, MoreKeys: noMoreKeys, Route: RouteKey, Group: "generic", Summary: "Sort the elements in a list, set or sorted set. Read-only variant of SORT."},
	{Name: "lmpop", Arity: -4, Flags: FlagWrite, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Group: "list", Summary: "Pop elements from a list"},
	// Blocking pops (shardnode/blocking.go): like the pops above, but a
	// client whose keys are all empty waits until a write gives one of them
	// elements or its timeout passes. The proxy sends each on a node
	// connection of its own (proxy/blocking.go); their keys must share a
	// shard.
	{Name: "blpop", Arity: -3, Flags: FlagWrite | FlagNoScript | FlagBlocking, FirstKey: 1, LastKey: -2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Remove and get the first element in a list, or block until one is available"},
	{Name: "brpop", Arity: -3, Flags: FlagWrite | FlagNoScript | FlagBlocking, FirstKey: 1, LastKey: -2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Remove and get the last element in a list, or block until one is available"},
	{Name: "brpoplpush", Arity: 4, Flags: FlagWrite | FlagDenyOOM | FlagNoScript | FlagBlocking, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Pop an element from a list, push it to another list and return it; or block until one is available"},
	{Name: "blmove", Arity: 6, Flags: FlagWrite | FlagDenyOOM | FlagNoScript | FlagBlocking, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "list", Summary: "Pop an element from a list, push it to another list and return it; or block until one is available"},
	{Name: "blmpop", Arity: -5, Flags: FlagWrite | FlagBlocking, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "list", Summary: "Pop elements from a list, or block until one is available"},

	// Sorted sets (cmd_zset.go): one key each, RouteKey; the multi-key ones
	// (numkeys before their keys: KeyNum) must share a shard, except ZUNION,
	// ZINTER, ZDIFF and ZINTERCARD, which the proxy gathers (MergeZSetOp).
	{Name: "zadd", Arity: -4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."},
	{Name: "zincrby", Arity: 4, Flags: FlagWrite | FlagDenyOOM | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Increments the score of a member in a sorted set."},
	{Name: "zrem", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."},
	{Name: "zscore", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the score of a member in a sorted set."},
	{Name: "zmscore", Arity: -3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the score of one or more members in a sorted set."},
	{Name: "zcard", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the number of members in a sorted set."},
	{Name: "zcount", Arity: 4, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the count of members in a sorted set that have scores within a range."},
	{Name: "zlexcount", Arity: 4, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the number of members in a sorted set within a lexicographical range."},
	{Name: "zrange", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a range of indexes."},
	{Name: "zrangebyscore", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a range of scores."},
	{Name: "zrevrangebyscore", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a range of scores in reverse order."},
	{Name: "zrangebylex", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a lexicographical range."},
	{Name: "zrevrangebylex", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a lexicographical range in reverse order."},
	{Name: "zrevrange", Arity: -4, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns members in a sorted set within a range of indexes in reverse order."},
	{Name: "zrank", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the index of a member in a sorted set ordered by ascending scores."},
	{Name: "zrevrank", Arity: 3, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the index of a member in a sorted set ordered by descending scores."},
	{Name: "zpopmin", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."},
	{Name: "zpopmax", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."},
	{Name: "zrandmember", Arity: -2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Returns one or more random members from a sorted set."},
	{Name: "zremrangebyscore", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."},
	{Name: "zremrangebyrank", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."},
	{Name: "zremrangebylex", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."},
	{Name: "zscan", Arity: -3, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "sorted-set", Summary: "Iterates over members and scores of a sorted set."},
	{Name: "zrangestore", Arity: -5, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "sorted-set", Summary: "Stores a range of members from sorted set in a key."},
	{Name: "zunion", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Merge: MergeZSetOp, Group: "sorted-set", Summary: "Returns the union of multiple sorted sets."},
	{Name: "zinter", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Merge: MergeZSetOp, Group: "sorted-set", Summary: "Returns the intersect of multiple sorted sets."},
	{Name: "zdiff", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Merge: MergeZSetOp, Group: "sorted-set", Summary: "Returns the difference between multiple sorted sets."},
	{Name: "zintercard", Arity: -3, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Merge: MergeZSetOp, Group: "sorted-set", Summary: "Returns the number of members of the intersect of multiple sorted sets."},
	{Name: "zunionstore", Arity: -4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "sorted-set", Summary: "Stores the union of multiple sorted sets in a key."},
	{Name: "zinterstore", Arity: -4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "sorted-set", Summary: "Stores the intersect of multiple sorted sets in a key."},
	{Name: "zdiffstore", Arity: -4, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "sorted-set", Summary: "Stores the difference of multiple sorted sets in a key."},
	{Name: "zmpop", Arity: -4, Flags: FlagWrite, FirstKey: 2, LastKey: 2, Step: 1, KeyNum: 1, Route: RouteSameNode, Group: "sorted-set", Summary: "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."},
	{Name: "bzpopmin", Arity: -3, Flags: FlagWrite | FlagNoScript | FlagBlocking | FlagFast, FirstKey: 1, LastKey: -2, Step: 1, Route: RouteSameNode, Group: "sorted-set", Summary: "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."},
	{Name: "bzpopmax", Arity: -3, Flags: FlagWrite | FlagNoScript | FlagBlocking | FlagFast, FirstKey: 1, LastKey: -2, Step: 1, Route: RouteSameNode, Group: "sorted-set", Summary: "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."},
	{Name: "bzmpop", Arity: -5, Flags: FlagWrite | FlagBlocking, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "sorted-set", Summary: "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."},

	// keyspace
	{Name: "del", Arity: -2, Flags: FlagWrite, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSum, Group: "generic", Summary: "Deletes one or more keys."},
	{Name: "unlink", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSum, Group: "generic", Summary: "Asynchronously deletes one or more keys."},
	{Name: "exists", Arity: -2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSum, Group: "generic", Summary: "Determines whether one or more keys exist."},
	{Name: "touch", Arity: -2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteSplit, Merge: MergeSum, Group: "generic", Summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed."},
	{Name: "type", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Determines the type of value stored at a key."},
	{Name: "expire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Sets the expiration time of a key in seconds."},
	{Name: "pexpire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Sets the expiration time of a key in milliseconds."},
	{Name: "expireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Sets the expiration time of a key to a Unix timestamp."},
	{Name: "pexpireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Sets the expiration time of a key to a Unix milliseconds timestamp."},
	{Name: "ttl", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Returns the expiration time in seconds of a key."},
	{Name: "pttl", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Returns the expiration time in milliseconds of a key."},
	{Name: "expiretime", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Returns the expiration time of a key as a Unix timestamp."},
	{Name: "pexpiretime", Arity: 2, Flags: FlagReadonly | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Returns the expiration time of a key as a Unix milliseconds timestamp."},
	{Name: "persist", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Removes the expiration time of a key."},
	{Name: "rename", Arity: 3, Flags: FlagWrite, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "generic", Summary: "Renames a key and overwrites the destination."},
	{Name: "renamenx", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "generic", Summary: "Renames a key only when the target key name doesn't exist."},
	{Name: "move", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteKey, Group: "generic", Summary: "Moves a key to another database."},
	{Name: "copy", Arity: -3, Flags: FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 2, Step: 1, Route: RouteSameNode, Group: "generic", Summary: "Copies the value of a key to a new key."},
	{Name: "scan", Arity: -2, Flags: FlagReadonly, Route: RouteFanout, Merge: MergeScan, Group: "generic", Summary: "Iterates over the key names in the database."},
	{Name: "keys", Arity: 2, Flags: FlagReadonly, Route: RouteFanout, Merge: MergeConcat, Group: "generic", Summary: "Returns all key names that match a pattern."},
	{Name: "randomkey", Arity: 1, Flags: FlagReadonly, Route: RouteFanout, Merge: MergeRandom, Group: "generic", Summary: "Returns a random key name from the database."},
	{Name: "dbsize", Arity: 1, Flags: FlagReadonly | FlagFast, Route: RouteFanout, Merge: MergeSum, Group: "server", Summary: "Returns the number of keys in the database."},
	{Name: "flushdb", Arity: -1, Flags: FlagWrite, Route: RouteFanout, Merge: MergeOK, Group: "server", Summary: "Removes all keys from the current database."},
	{Name: "flushall", Arity: -1, Flags: FlagWrite, Route: RouteFanout, Merge: MergeOK, Group: "server", Summary: "Removes all keys from all databases."},
	{Name: "swapdb", Arity: 3, Flags: FlagWrite | FlagFast, Route: RouteLocal, Group: "server", Summary: "Swaps two Redis databases."},
	{Name: "object", Arity: -2, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Route: RouteKey, Group: "generic", Summary: "A container for object introspection commands."},

	// connection and server
	{Name: "ping", Arity: -1, Flags: FlagFast | FlagStale, Route: RouteLocal, Group: "connection", Summary: "Returns the server's liveliness response."},
	{Name: "echo", Arity: 2, Flags: FlagFast | FlagStale, Route: RouteLocal, Group: "connection", Summary: "Returns the given string."},
	{Name: "hello", Arity: -1, Flags: FlagFast | FlagNoAuth | FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "connection", Summary: "Handshakes with the Redis server."},
	{Name: "auth", Arity: -2, Flags: FlagFast | FlagNoAuth | FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "connection", Summary: "Authenticates the connection."},
	{Name: "select", Arity: 2, Flags: FlagFast | FlagStale | FlagLoading, Route: RouteLocal, Group: "connection", Summary: "Changes the selected database."},
	{Name: "client", Arity: -2, Flags: FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "connection", Summary: "A container for client connection commands."},
	{Name: "command", Arity: -1, Flags: FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "server", Summary: "Returns detailed information about all commands."},
	{Name: "info", Arity: -1, Flags: FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "server", Summary: "Returns information and statistics about the server."},
	{Name: "config", Arity: -2, Flags: FlagAdmin | FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiProxyState, Group: "server", Summary: "A container for server configuration commands."},
	{Name: "quit", Arity: -1, Flags: FlagFast | FlagNoAuth | FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiNow, Group: "connection", Summary: "Closes the connection."},
	{Name: "reset", Arity: 1, Flags: FlagFast | FlagNoAuth | FlagStale | FlagLoading, Route: RouteLocal, Multi: MultiNow, Group: "connection", Summary: "Resets the connection."},
	{Name: "slowlog", Arity: -2, Flags: FlagAdmin | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "server", Summary: "A container for slow log commands."},
	{Name: "latency", Arity: -2, Flags: FlagAdmin | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "server", Summary: "A container for latency diagnostics commands."},
	{Name: "memory", Arity: -2, Flags: FlagReadonly, FirstKey: 2, LastKey: 2, Step: 1, Route: RouteKey, Group: "server", Summary: "A container for memory diagnostics commands."},
	{Name: "monitor", Arity: 1, Flags: FlagAdmin | FlagNoMulti | FlagNoScript | FlagLoading | FlagStale, Route: RouteProxyOnly, Multi: MultiProxyState, Group: "server", Summary: "Listens for all requests received by the server in real-time."},
	{Name: "time", Arity: 1, Flags: FlagFast | FlagStale | FlagLoading, Route: RouteLocal, Group: "server", Summary: "Returns the server time."},

	// Pub/Sub (docs/INTERNALS.md "Pub/Sub"): served by every node as
	// Redis serves it; the proxy subscribes on its clients' behalf on the
	// node that owns a channel's name (a pattern: on every node) and
	// routes PUBLISH and SPUBLISH like a key (proxy/pubsub.go). They are
	// RouteLocal: neither server forwards them as they are. SSUBSCRIBE,
	// SUNSUBSCRIBE and SPUBLISH name their channels as keys, as in Redis,
	// so a node refuses a shard channel outside its range. PUBLISH and
	// SPUBLISH are queued inside MULTI and run in the node's transaction
	// on the channel's node (proxy/tx.go); the subscribes stay refused.
	{Name: "subscribe", Arity: -2, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Listens for messages published to channels."},
	{Name: "unsubscribe", Arity: -1, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Stops listening to messages posted to channels."},
	{Name: "psubscribe", Arity: -2, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Listens for messages published to channels that match one or more patterns."},
	{Name: "punsubscribe", Arity: -1, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Stops listening to messages published to channels that match one or more patterns."},
	{Name: "ssubscribe", Arity: -2, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Listens for messages published to shard channels."},
	{Name: "sunsubscribe", Arity: -1, Flags: FlagPubsub | FlagNoScript | FlagLoading | FlagStale, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "Stops listening to messages posted to shard channels."},
	{Name: "publish", Arity: 3, Flags: FlagPubsub | FlagLoading | FlagStale | FlagFast, Route: RouteLocal, Group: "pubsub", Summary: "Posts a message to a channel."},
	{Name: "spublish", Arity: 3, Flags: FlagPubsub | FlagLoading | FlagStale | FlagFast, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteLocal, Group: "pubsub", Summary: "Post a message to a shard channel"},
	{Name: "pubsub", Arity: -2, Route: RouteLocal, Multi: MultiProxyState, Group: "pubsub", Summary: "A container for Pub/Sub commands."},
	// SHARD.PUBSUB: the proxy's subscriptions on behalf of its clients
	// (proxy/pubsub.go, shardnode/pubsub.go).
	{Name: "shard.pubsub", Arity: -2, Flags: FlagPubsub | FlagLoading | FlagStale, Route: RouteNodeOnly, Group: "shardkv", Summary: "Sets how many of a proxy's clients listen to a channel, pattern or shard channel on this connection, or lists the node's patterns."},

	// cluster: the proxy presents itself to cluster-aware clients as one
	// node owning every slot (proxy/cluster.go). READONLY and READWRITE keep
	// per-connection state, hence MultiProxyState.
	{Name: "cluster", Arity: -2, Route: RouteProxyOnly, Group: "cluster", Summary: "A container for Redis Cluster commands."},
	{Name: "readonly", Arity: 1, Flags: FlagFast | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "cluster", Summary: "Enables read-only queries for a connection to a Redis Cluster replica node."},
	{Name: "readwrite", Arity: 1, Flags: FlagFast | FlagLoading | FlagStale, Route: RouteLocal, Multi: MultiProxyState, Group: "cluster", Summary: "Enables read-write queries for a connection to a Redis Cluster replica node."},

	// scripting (shardnode/cmd_script.go): a script runs on the node that
	// owns its declared keys (numkeys), atomically there; keys on several
	// shards get CROSSSHARD, no key goes to the first shard. SCRIPT goes to
	// every node (proxy/script.go).
	{Name: "eval", Arity: -3, Flags: FlagNoScript | FlagStale | FlagSkipMonitor | FlagNoMandatoryKeys, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "scripting", Summary: "Executes a server-side Lua script."},
	{Name: "evalsha", Arity: -3, Flags: FlagNoScript | FlagStale | FlagSkipMonitor | FlagNoMandatoryKeys, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "scripting", Summary: "Executes a server-side Lua script by SHA1 digest."},
	{Name: "eval_ro", Arity: -3, Flags: FlagReadonly | FlagNoScript | FlagStale | FlagSkipMonitor | FlagNoMandatoryKeys, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "scripting", Summary: "Executes a read-only server-side Lua script."},
	{Name: "evalsha_ro", Arity: -3, Flags: FlagReadonly | FlagNoScript | FlagStale | FlagSkipMonitor | FlagNoMandatoryKeys, FirstKey: 3, LastKey: 3, Step: 1, KeyNum: 2, Route: RouteSameNode, Group: "scripting", Summary: "Executes a read-only server-side Lua script by SHA1 digest."},
	{Name: "script", Arity: -2, Route: RouteFanout, Merge: MergeScript, Multi: MultiProxyState, Group: "scripting", Summary: "A container for Lua scripts management commands."},

	// transactions
	{Name: "multi", Arity: 1, Flags: FlagFast, Route: RouteTx, Multi: MultiNow, Group: "transactions", Summary: "Starts a transaction."},
	{Name: "exec", Arity: 1, Route: RouteTx, Multi: MultiNow, Group: "transactions", Summary: "Executes all commands in a transaction."},
	{Name: "discard", Arity: 1, Flags: FlagFast, Route: RouteTx, Multi: MultiNow, Group: "transactions", Summary: "Discards a transaction."},
	{Name: "watch", Arity: -2, Flags: FlagFast, FirstKey: 1, LastKey: -1, Step: 1, Route: RouteTx, Multi: MultiNow, Group: "transactions", Summary: "Monitors changes to keys to determine the execution of a transaction."},
	{Name: "unwatch", Arity: 1, Flags: FlagFast, Route: RouteTx, Group: "transactions", Summary: "Forgets about watched keys of a transaction."},

	// shardkv: indexes and shards
	{Name: "index.create", Arity: 2, Flags: FlagWrite, Route: RouteFanout, Merge: MergeOK, Group: "shardkv", Summary: "Creates an index (key namespace) on every shard."},
	{Name: "index.drop", Arity: 2, Flags: FlagWrite, Route: RouteFanout, Merge: MergeSum, Group: "shardkv", Summary: "Deletes every key of an index on every shard and replies the count."},
	{Name: "index.list", Arity: 1, Flags: FlagReadonly, Route: RouteFanout, Merge: MergeIndexList, Reply: ReplyMap, Group: "shardkv", Summary: "Lists each index with its key count."},
	{Name: "migrate.start", Arity: -5, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Streams the keys of a range to another node, then its writes: MIGRATE.START id lo hi host:port [RATE MB/s] (docs/RESHARDING.md)."},
	{Name: "migrate.status", Arity: 2, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "A move's stream or drop: phase, records and bytes sent, lag, sent and acknowledged seq: MIGRATE.STATUS id."},
	{Name: "migrate.abort", Arity: 2, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Stops and forgets a move's stream or drop: MIGRATE.ABORT id."},
	{Name: "migrate.recv", Arity: 2, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Marks the connection as a move's stream from a source node: MIGRATE.RECV id."},
	{Name: "migrate.flushrange", Arity: -3, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "On a move's stream: deletes a range's keys (the source's flush): MIGRATE.FLUSHRANGE lo hi [db]."},
	{Name: "migrate.drop", Arity: -4, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Deletes a range's keys in the background: MIGRATE.DROP id lo hi [RATE keys/s] [FORCE]."},
	{Name: "shard.fence", Arity: -3, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Holds writes to a range, then TRYAGAIN; reads go on; persisted: SHARD.FENCE lo hi [TIMEOUT ms] [ID id] [EPOCH n]."},
	{Name: "shard.unfence", Arity: -1, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Lifts fences: SHARD.UNFENCE [lo hi | ID id]."},
	{Name: "shard.unassign", Arity: 3, Flags: FlagAdmin | FlagNoMulti, Route: RouteNodeOnly, Group: "shardkv", Summary: "Takes every range from a shard node at a newer epoch (the map gives it none): SHARD.UNASSIGN EPOCH n."},
	{Name: "shard.assign", Arity: -5, Flags: FlagAdmin | FlagNoMulti, Route: RouteNodeOnly, Group: "shardkv", Summary: "Pushes a shard node its ranges: SHARD.ASSIGN name start end size [RANGE name start end size]... [HASHTAGS 0|1] [EPOCH n] [FORCE] [STRICT 0|1]."},
	// Replication (docs/REPLICATION.md).
	{Name: "replicaof", Arity: 3, Flags: FlagAdmin | FlagNoScript | FlagStale | FlagNoMulti, Route: RouteNodeOnly, Group: "server", Summary: "Makes the node a replica of another, or a primary: REPLICAOF host port | NO ONE."},
	{Name: "slaveof", Arity: 3, Flags: FlagAdmin | FlagNoScript | FlagStale | FlagNoMulti, Route: RouteNodeOnly, Group: "server", Summary: "Makes the node a replica of another, or a primary (REPLICAOF's former name)."},
	{Name: "role", Arity: 1, Flags: FlagNoScript | FlagLoading | FlagStale | FlagFast, Route: RouteNodeOnly, Group: "server", Summary: "Returns the replication role."},
	{Name: "wait", Arity: 3, Flags: FlagNoScript, Route: RouteNodeOnly, Group: "generic", Summary: "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."},
	{Name: "repl.role", Arity: -3, Flags: FlagAdmin | FlagNoMulti | FlagNoScript | FlagStale, Route: RouteNodeOnly, Group: "shardkv", Summary: "The controller's REPLICAOF with the map's epoch: REPL.ROLE PRIMARY epoch [MINACKS n] | REPLICA host:port epoch."},
	{Name: "repl.attach", Arity: 2, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "A replica asks its primary for a stream, dialled back at the given port: REPL.ATTACH port."},
	{Name: "repl.recv", Arity: 3, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "Marks the connection as the stream of the replica's primary: REPL.RECV host:port epoch."},
	{Name: "repl.offset", Arity: 2, Flags: FlagAdmin | FlagNoMulti | FlagNoScript, Route: RouteNodeOnly, Group: "shardkv", Summary: "On a replication stream: every write up to the offset is committed: REPL.OFFSET offset."},
	{Name: "shard.watch", Arity: -3, Flags: FlagFast, FirstKey: 2, LastKey: -1, Step: 1, Route: RouteNodeOnly, Multi: MultiNow, Group: "shardkv", Summary: "WATCH for one of a proxy's clients, on the proxy's shared connection: SHARD.WATCH client-id key [key ...]."},
	{Name: "shard.unwatch", Arity: 2, Flags: FlagFast, Route: RouteNodeOnly, Multi: MultiNow, Group: "shardkv", Summary: "UNWATCH for one of a proxy's clients: SHARD.UNWATCH client-id."},
	{Name: "shard.exec", Arity: 2, Route: RouteNodeOnly, Multi: MultiNow, Group: "shardkv", Summary: "EXEC checking the keys SHARD.WATCH watched for one of a proxy's clients: SHARD.EXEC client-id."},
	{Name: "shard.streamrefs", Arity: 1, Flags: FlagFast, Route: RouteNodeOnly, Group: "shardkv", Summary: "A proxy's connection asks for stream references (+STREAM id length) instead of big GET values, to fetch them on a connection of their own."},
	// Cross-shard transactions (docs/TRANSACTIONS.md): the proxy's messages to the nodes.
	{Name: "tx.prepare", Arity: -7, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Prepares a node's part of a cross-shard transaction: TX.PREPARE txid ts primary lock-ms db [WATCH client-id] [argc arg...]..."},
	{Name: "tx.decide", Arity: 3, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Records the decision of a cross-shard transaction on its primary: TX.DECIDE txid COMMIT|ABORT."},
	{Name: "tx.status", Arity: 2, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Replies the decision of a cross-shard transaction, recording ABORT if it is abandoned: TX.STATUS txid."},
	{Name: "tx.commit", Arity: 2, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Applies a prepared cross-shard transaction: TX.COMMIT txid."},
	{Name: "tx.abort", Arity: 2, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Drops a prepared cross-shard transaction: TX.ABORT txid."},
	{Name: "tx.forget", Arity: 2, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Drops the decision record of a finished cross-shard transaction: TX.FORGET txid."},
	{Name: "tx.list", Arity: 1, Flags: FlagAdmin, Route: RouteNodeOnly, Group: "shardkv", Summary: "Lists the cross-shard transactions this node holds prepared or decided."},
	{Name: "tx.dump", Arity: 2, Flags: FlagReadonly, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteNodeOnly, Group: "shardkv", Summary: "Inside TX.PREPARE: replies a key's whole state (type, contents, expiry) and locks it shared: TX.DUMP key."},
	{Name: "tx.dumpx", Arity: 2, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteNodeOnly, Group: "shardkv", Summary: "Inside TX.PREPARE: TX.DUMP that locks the key exclusively, for a key the transaction writes later: TX.DUMPX key."},
	{Name: "tx.put", Arity: 3, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Step: 1, Route: RouteNodeOnly, Group: "shardkv", Summary: "Inside TX.PREPARE: replaces a key with a state from TX.DUMP: TX.PUT key state."},
	{Name: "tx.load", Arity: 3, Flags: FlagWrite, Route: RouteNodeOnly, Group: "shardkv", Summary: "Inside TX.PREPARE: gives a key of another shard a state from TX.DUMP for the prepare's commands to read, never written: TX.LOAD key state."},
	{Name: "shard.fetch", Arity: 2, Flags: FlagReadonly, Route: RouteNodeOnly, Group: "shardkv", Summary: "Replies the value of a stream reference, streamed: SHARD.FETCH id."},
	{Name: "shard.locate", Arity: 2, Flags: FlagReadonly | FlagFast, Route: RouteProxyOnly, Group: "shardkv", Summary: "Replies the position of a key, the shard that owns it, its address and the part of the key that was hashed."},
	{Name: "shard.map", Arity: 1, Flags: FlagReadonly, Route: RouteProxyOnly, Group: "shardkv", Summary: "Replies the range map with the reachability of each shard."},
	{Name: "shard.reload", Arity: -1, Flags: FlagAdmin | FlagNoMulti, Route: RouteProxyOnly, Group: "shardkv", Summary: "Reloads the range map file (address and size changes only)."},
}

var byName = func() map[string]*Command {
	m := make(map[string]*Command, len(Commands))
	for i := range Commands {
		m[Commands[i].Name] = &Commands[i]
	}
	return m
}()

// Lookup finds a command by name, case-insensitively, without allocating for
// names that are already lower case.
func Lookup(name []byte) *Command {
	if c, ok := byName[string(name)]; ok {
		return c
	}
	var buf [32]byte
	if len(name) > len(buf) {
		return byName[strings.ToLower(string(name))]
	}
	lower := buf[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	return byName[string(lower)]
}

// ArityOK reports whether argc (command name included) fits the arity.
func (c *Command) ArityOK(argc int) bool {
	if c.Arity >= 0 {
		return argc == c.Arity
	}
	return argc >= -c.Arity
}

// LastKeyIndex is the position in args (args[0] is the command name) of
// the command's last key, per LastKey or KeyNum: the one place that reads
// a negative LastKey as counted from the end, and a key count. It is below
// FirstKey when the command names no key in args (a key count that is not
// a positive number within args included).
func (c *Command) LastKeyIndex(args [][]byte) int {
	argc := len(args)
	if c.FirstKey <= 0 {
		return -1
	}
	if c.KeyNum > 0 && c.FirstKey > c.KeyNum {
		if c.KeyNum >= argc {
			return -1
		}
		n, ok := canonicalInt(args[c.KeyNum])
		if !ok || n <= 0 || n > int64(argc-c.FirstKey) {
			return -1
		}
		return c.FirstKey + int(n) - 1
	}
	last := c.LastKey
	if last < 0 {
		last += argc
	}
	return min(last, argc-1)
}

// PairsOK reports whether a command whose keys come in groups of Step
// (MSET's key value pairs) has whole groups: Redis answers a broken group
// with the arity error although the count fits the table's arity.
func (c *Command) PairsOK(argc int) bool {
	return c.Step <= 1 || c.FirstKey <= 0 || (argc-c.FirstKey)%c.Step == 0
}

// KeyIndexes returns the positions in args (args[0] is the command name) of
// the keys the command names, per FirstKey/LastKey/Step or KeyNum.
// Commands whose keys depend on their arguments otherwise (SCAN, KEYS)
// have FirstKey 0 and return nil.
func (c *Command) KeyIndexes(args [][]byte) []int {
	var out []int
	for i, last := c.FirstKey, c.LastKeyIndex(args); i > 0 && i <= last; i += max(c.Step, 1) {
		out = append(out, i)
	}
	if c.MoreKeys != nil {
		out = append(out, c.MoreKeys(args)...)
	}
	if c.KeyNum > 0 && c.FirstKey < c.KeyNum && c.KeyNum < len(args) {
		// The counted keys after the fixed ones (ZUNIONSTORE's sources).
		if n, ok := canonicalInt(args[c.KeyNum]); ok && n > 0 && n <= int64(len(args)-c.KeyNum-1) {
			for i := c.KeyNum + 1; i <= c.KeyNum+int(n); i++ {
				out = append(out, i)
			}
		}
	}
	return out
}

// SortStoreKey is SORT's MoreKeys: the position of the destination of
// its last STORE option, read as Redis's sortGetKeys reads the options.
func SortStoreKey(args [][]byte) []int {
	at := 0
	for i := 2; i < len(args); i++ {
		switch strings.ToLower(string(args[i])) {
		case "limit":
			i += 2
		case "get", "by":
			i++
		case "store":
			if i+1 < len(args) {
				at = i + 1
			}
			i++
		}
	}
	if at == 0 {
		return nil
	}
	return []int{at}
}

func noMoreKeys([][]byte) []int { return nil }

// ErrWrongArity is Redis's text for a wrong number of arguments.
func ErrWrongArity(name string) string {
	return "ERR wrong number of arguments for '" + strings.ToLower(name) + "' command"
}

// ErrUnknownCommand is Redis 7's text for an unknown command, with the
// beginning of its arguments, each quoted.
func ErrUnknownCommand(name []byte, args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(truncate(string(name), 128))
	b.WriteString("', with args beginning with: ")
	for _, a := range args {
		if b.Len() > 400 {
			break
		}
		b.WriteString("'")
		b.WriteString(truncate(string(a), 128))
		b.WriteString("' ")
	}
	return b.String()
}

// ErrUnknownSubcommand is Redis 7's text for an unknown subcommand.
func ErrUnknownSubcommand(cmd, sub string) string {
	return "ERR unknown subcommand '" + truncate(sub, 128) + "'. Try " + strings.ToUpper(cmd) + " HELP."
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
