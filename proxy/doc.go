// Package proxy is shardkv's client-facing server. It speaks Redis 7's
// protocol (RESP2, and RESP3 after HELLO 3) to any Redis client, hashes each
// key to a position in [0,1) and sends the command to the shard node whose
// range in the range map holds that position.
//
// # Shape
//
// A Server is built from a Config (DefaultConfig, Validate) and serves with
// ListenAndServe or Serve(net.Listener) until Shutdown(ctx); Reload applies a
// changed map file. Each client connection has a goroutine with its own read
// loop (conn.go), reading through a resp.RequestReader, the node's request
// reader too: Redis's request limits enforced on the bytes as they arrive
// (redcon has none), the commands sliced in place from the read buffer. The
// loop is the proxy's own, not redcon.Server's, because the profile showed
// what that costs per request: a second read system call that finds
// nothing, and a copy and allocations per command (conn.go says more).
//
// # Backends
//
// The proxy keeps, per shard node, a few long-lived pipelined connections
// (backend.Client, Config.ConnsPerNode) shared by every client. Each new
// connection authenticates (Config.NodePassword) and pushes the shard's
// assignment with SHARD.ASSIGN before it carries a request, so a node that
// restarts or loses its data directory is assigned again; a node that holds
// the same range with another size is given the map's size with FORCE, and
// a node that holds another range keeps it and is reported unavailable with
// its refusal. Nodes that are down are redialed with backoff in the
// background while the others serve.
//
// RESP3: there are two sets of connections per node, one in RESP2 and one
// switched to RESP3 with HELLO 3, and a client's commands use the set of its
// protocol. The node's reply bytes are then forwarded as they are to clients
// of either protocol, never decoded and re-encoded; only replies merged from
// several nodes (MGET across nodes, KEYS, SCAN's last page of a node,
// INDEX.LIST, INFO) are assembled by the proxy, from the nodes' raw
// elements where it can.
//
// # Batches
//
// A client's connection is served one pipelined batch at a time (every
// complete command in the read buffer after a read): each command is
// answered locally or queued for its node; then every node's queue is sent
// (one write per node connection, coalesced with other clients' requests),
// so the whole batch reaches every node before the proxy waits; then the
// replies are written in the client's order, in one write. A client always
// uses the same connection of each node, so its commands run on a node in
// the order it sent them.
//
// # Routing
//
// cmdtable.Commands is the one command table: its Route decides. RouteKey goes
// to the key's owner. RouteSplit (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH) is
// sent as one command per node, in parallel, and merged in the client's key
// order (counts summed); when every key is on one node the command is
// forwarded unchanged. RouteSameNode (MSETNX, RENAME, RENAMENX, COPY) is
// forwarded when its keys share a node and refused with -CROSSSHARD
// otherwise: these commands are atomic in Redis, and across nodes they could
// not be, so the proxy never runs half of one. RouteFanout commands (KEYS,
// DBSIZE, RANDOMKEY, FLUSHDB, FLUSHALL, INDEX.*) go to every node and merge.
//
// SCAN's cursor is a 64-bit key hash, the same on the proxy and the nodes
// (docs/INTERNALS.md): the proxy sends SCAN unchanged to the node that owns
// the cursor and, when that node is done, replies the first hash of the next
// shard instead of 0.
//
// # Transactions
//
// MULTI queues in the proxy, checking each command as Redis does at queue
// time (unknown command or subcommand, arity, commands not allowed in MULTI:
// the error is replied and EXEC aborts with EXECABORT). Commands that span
// every node (KEYS, DBSIZE, ...) and the connection commands whose state the
// proxy keeps (AUTH, HELLO, CLIENT, ...) are refused inside MULTI; PING,
// ECHO, TIME, UNWATCH and SELECT queue as in Redis (SELECT of one of
// Redis's databases 1-15 is refused at once: shardkv has one). EXEC
// sends MULTI, the commands and EXEC to the one node that owns every queued
// key, in one write on one connection (so nothing interleaves), and replies
// the node's EXEC reply; keys on two nodes make EXEC reply -CROSSSHARD and
// nothing runs.
//
// WATCH is state a node keeps per connection, and the proxy's connections
// are shared, so the node keeps each client's watched keys under the
// client's id on the shared connection (SHARD.WATCH <id> key ...). Until
// EXEC, DISCARD, UNWATCH or RESET the client's commands for that node stay
// on that connection, and EXEC runs there as MULTI ... SHARD.EXEC <id>, so
// the node itself checks the watched keys; a WATCH takes no connection of
// its own. Watching keys of two nodes, or a transaction on another node than
// the watched keys, gets -CROSSSHARD.
//
// # Failures
//
// A request to a node that is down, or whose connection has waited longer
// than Config.Timeout for a reply, fails with
// "-TRYAGAIN shard <name> (<addr>) unavailable: <reason>"; the late
// connection is closed and redialed. Only that node's keys are affected. A
// fan-out or split command with a failed part names the first failed shard
// and how many failed. Redis clients retry TRYAGAIN.
package proxy
