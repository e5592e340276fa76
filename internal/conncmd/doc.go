// Package conncmd holds the connection and server commands that the proxy
// and the shard node answer the same way: PING, ECHO, QUIT, RESET, SELECT,
// AUTH, HELLO, TIME, CLIENT, COMMAND, CONFIG, SLOWLOG, LATENCY, READONLY
// and READWRITE, and the parts of INFO both write (the request's sections;
// the Server, Clients, Memory, Persistence, Stats and Commandstats
// sections). Each server records the commands it serves in an Observer
// (observe.go): per-command counts and latencies, the slow log, the latency
// monitor, Redis's instantaneous rates.
//
// Each server keeps, per connection, a Session (embedded in its own client
// state) and gives the commands a Host (what the server knows: its password,
// its connections, the commands it serves, its settings) and a Conn (the
// connection the command came from, for the effects only that server can
// carry out: switching a proxy connection's node connections to another
// protocol, leaving MULTI). A Handler appends its reply to the caller's
// buffer, so both servers' reply paths stay their own.
//
// What one server has and the other does not is an optional interface, not a
// copy: a Host that is a Killer answers CLIENT KILL, a Conn that is a
// ReplyController answers CLIENT REPLY; on a server without them the
// subcommand gets Redis's unknown-subcommand error.
package conncmd
