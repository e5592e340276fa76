package cmdtable

import "strings"

// Flag describes a command the way Redis's command table does; the names are
// the ones COMMAND INFO replies.
type Flag uint16

const (
	FlagWrite    Flag = 1 << iota // modifies data: refused past the size limit, checked for ownership
	FlagReadonly                  // reads data only
	FlagDenyOOM                   // may grow live data: refused with -OOM past the size limit
	FlagAdmin                     // server administration
	FlagFast                      // O(1) or O(log N)
	FlagNoAuth                    // allowed before AUTH
	FlagLoading                   // allowed while loading
	FlagStale                     // allowed on a stale replica
	FlagNoMulti                   // not allowed inside MULTI (refused at queue time)
	FlagNoScript                  // not allowed in scripts
)

var flagNames = []struct {
	f    Flag
	name string
}{
	{FlagWrite, "write"}, {FlagReadonly, "readonly"}, {FlagDenyOOM, "denyoom"}, {FlagAdmin, "admin"},
	{FlagFast, "fast"}, {FlagNoAuth, "no_auth"}, {FlagLoading, "loading"}, {FlagStale, "stale"},
	{FlagNoMulti, "no_multi"}, {FlagNoScript, "noscript"},
}

// Names returns the flag names in COMMAND INFO order.
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

// Command is one row of the command table. Arity, key positions and flags
// follow Redis: Arity counts the command name, a negative arity means "at
// least -Arity", LastKey -1 means the last argument, and Step is the distance
// between keys (2 for MSET's key value pairs).
type Command struct {
	Name     string // lower case, as COMMAND replies it
	Arity    int
	Flags    Flag
	FirstKey int
	LastKey  int
	Step     int
	Route    Route
	Group    string // COMMAND DOCS group: string, generic, connection, server, transactions, shardkv
	Summary  string // COMMAND DOCS summary
}

// Commands is the table. Adding a command is adding a row here and a handler
// in the servers that execute it.
var Commands = []Command{
	// strings
	{"get", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "string", "Returns the string value of a key."},
	{"set", -3, FlagWrite | FlagDenyOOM, 1, 1, 1, RouteKey, "string", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."},
	{"setnx", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Set the string value of a key only when the key doesn't exist."},
	{"setex", 4, FlagWrite | FlagDenyOOM, 1, 1, 1, RouteKey, "string", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."},
	{"psetex", 4, FlagWrite | FlagDenyOOM, 1, 1, 1, RouteKey, "string", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."},
	{"getdel", 2, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "string", "Returns the string value of a key after deleting the key."},
	{"getex", -2, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "string", "Returns the string value of a key after setting its expiration time."},
	{"getset", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Returns the previous string value of a key after setting it to a new value."},
	{"mget", -2, FlagReadonly | FlagFast, 1, -1, 1, RouteSplit, "string", "Atomically returns the string values of one or more keys."},
	{"mset", -3, FlagWrite | FlagDenyOOM, 1, -1, 2, RouteSplit, "string", "Atomically creates or modifies the string values of one or more keys."},
	{"msetnx", -3, FlagWrite | FlagDenyOOM, 1, -1, 2, RouteSameNode, "string", "Atomically modifies the string values of one or more keys only when all keys don't exist."},
	{"append", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."},
	{"strlen", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "string", "Returns the length of a string value."},
	{"getrange", 4, FlagReadonly, 1, 1, 1, RouteKey, "string", "Returns a substring of the string stored at a key."},
	{"setrange", 4, FlagWrite | FlagDenyOOM, 1, 1, 1, RouteKey, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."},
	{"incr", 2, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
	{"decr", 2, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
	{"incrby", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."},
	{"decrby", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."},
	{"incrbyfloat", 3, FlagWrite | FlagDenyOOM | FlagFast, 1, 1, 1, RouteKey, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."},

	// keyspace
	{"del", -2, FlagWrite, 1, -1, 1, RouteSplit, "generic", "Deletes one or more keys."},
	{"unlink", -2, FlagWrite | FlagFast, 1, -1, 1, RouteSplit, "generic", "Asynchronously deletes one or more keys."},
	{"exists", -2, FlagReadonly | FlagFast, 1, -1, 1, RouteSplit, "generic", "Determines whether one or more keys exist."},
	{"touch", -2, FlagReadonly | FlagFast, 1, -1, 1, RouteSplit, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed."},
	{"type", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "generic", "Determines the type of value stored at a key."},
	{"expire", -3, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "generic", "Sets the expiration time of a key in seconds."},
	{"pexpire", -3, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "generic", "Sets the expiration time of a key in milliseconds."},
	{"expireat", -3, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "generic", "Sets the expiration time of a key to a Unix timestamp."},
	{"pexpireat", -3, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp."},
	{"ttl", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "generic", "Returns the expiration time in seconds of a key."},
	{"pttl", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "generic", "Returns the expiration time in milliseconds of a key."},
	{"expiretime", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "generic", "Returns the expiration time of a key as a Unix timestamp."},
	{"pexpiretime", 2, FlagReadonly | FlagFast, 1, 1, 1, RouteKey, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp."},
	{"persist", 2, FlagWrite | FlagFast, 1, 1, 1, RouteKey, "generic", "Removes the expiration time of a key."},
	{"rename", 3, FlagWrite, 1, 2, 1, RouteSameNode, "generic", "Renames a key and overwrites the destination."},
	{"renamenx", 3, FlagWrite | FlagFast, 1, 2, 1, RouteSameNode, "generic", "Renames a key only when the target key name doesn't exist."},
	{"copy", -3, FlagWrite | FlagDenyOOM, 1, 2, 1, RouteSameNode, "generic", "Copies the value of a key to a new key."},
	{"scan", -2, FlagReadonly, 0, 0, 0, RouteFanout, "generic", "Iterates over the key names in the database."},
	{"keys", 2, FlagReadonly, 0, 0, 0, RouteFanout, "generic", "Returns all key names that match a pattern."},
	{"randomkey", 1, FlagReadonly, 0, 0, 0, RouteFanout, "generic", "Returns a random key name from the database."},
	{"dbsize", 1, FlagReadonly | FlagFast, 0, 0, 0, RouteFanout, "server", "Returns the number of keys in the database."},
	{"flushdb", -1, FlagWrite, 0, 0, 0, RouteFanout, "server", "Removes all keys from the current database."},
	{"flushall", -1, FlagWrite, 0, 0, 0, RouteFanout, "server", "Removes all keys from all databases."},
	{"object", -2, FlagReadonly, 2, 2, 1, RouteKey, "generic", "A container for object introspection commands."},

	// connection and server
	{"ping", -1, FlagFast | FlagStale, 0, 0, 0, RouteLocal, "connection", "Returns the server's liveliness response."},
	{"echo", 2, FlagFast | FlagStale, 0, 0, 0, RouteLocal, "connection", "Returns the given string."},
	{"hello", -1, FlagFast | FlagNoAuth | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "Handshakes with the Redis server."},
	{"auth", -2, FlagFast | FlagNoAuth | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "Authenticates the connection."},
	{"select", 2, FlagFast | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "Changes the selected database."},
	{"client", -2, FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "A container for client connection commands."},
	{"command", -1, FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "server", "Returns detailed information about all commands."},
	{"info", -1, FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "server", "Returns information and statistics about the server."},
	{"config", -2, FlagAdmin | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "server", "A container for server configuration commands."},
	{"quit", -1, FlagFast | FlagNoAuth | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "Closes the connection."},
	{"reset", 1, FlagFast | FlagNoAuth | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "connection", "Resets the connection."},
	{"time", 1, FlagFast | FlagStale | FlagLoading, 0, 0, 0, RouteLocal, "server", "Returns the server time."},

	// transactions
	{"multi", 1, FlagFast | FlagNoMulti, 0, 0, 0, RouteTx, "transactions", "Starts a transaction."},
	{"exec", 1, FlagNoMulti, 0, 0, 0, RouteTx, "transactions", "Executes all commands in a transaction."},
	{"discard", 1, FlagFast | FlagNoMulti, 0, 0, 0, RouteTx, "transactions", "Discards a transaction."},
	{"watch", -2, FlagFast | FlagNoMulti, 1, -1, 1, RouteTx, "transactions", "Monitors changes to keys to determine the execution of a transaction."},
	{"unwatch", 1, FlagFast | FlagNoMulti, 0, 0, 0, RouteTx, "transactions", "Forgets about watched keys of a transaction."},

	// shardkv: indexes and shards
	{"index.create", 2, FlagWrite, 0, 0, 0, RouteFanout, "shardkv", "Creates an index (key namespace) on every shard."},
	{"index.drop", 2, FlagWrite, 0, 0, 0, RouteFanout, "shardkv", "Deletes every key of an index on every shard and replies the count."},
	{"index.list", 1, FlagReadonly, 0, 0, 0, RouteFanout, "shardkv", "Lists each index with its key count."},
	{"shard.assign", -5, FlagAdmin | FlagNoMulti, 0, 0, 0, RouteNodeOnly, "shardkv", "Pushes a shard node its assignment: SHARD.ASSIGN name start end size [FORCE] [STRICT 0|1]."},
	{"shard.locate", 2, FlagReadonly | FlagFast, 0, 0, 0, RouteProxyOnly, "shardkv", "Replies the position of a key, the shard that owns it and its address."},
	{"shard.map", 1, FlagReadonly, 0, 0, 0, RouteProxyOnly, "shardkv", "Replies the range map with the reachability of each shard."},
	{"shard.reload", -1, FlagAdmin | FlagNoMulti, 0, 0, 0, RouteProxyOnly, "shardkv", "Reloads the range map file (address and size changes only)."},
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

// KeyIndexes returns the positions in args (args[0] is the command name) of
// the keys the command names, per FirstKey/LastKey/Step. Commands whose keys
// depend on their arguments (SCAN, KEYS) have FirstKey 0 and return nil.
func (c *Command) KeyIndexes(argc int) []int {
	if c.FirstKey <= 0 || argc <= c.FirstKey {
		return nil
	}
	last := c.LastKey
	if last < 0 {
		last = argc + last
	}
	if last >= argc {
		last = argc - 1
	}
	var out []int
	for i := c.FirstKey; i <= last; i += c.Step {
		out = append(out, i)
	}
	return out
}

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
