// Package backend is the proxy's client for shard nodes: long-lived,
// pipelined connections (Conn) that keep requests in order and hand each
// reply back as raw bytes, and Client, which redials a node and runs the
// connection handshake (AUTH, HELLO 3, SHARD.ASSIGN) on every new
// connection. Only the proxy uses it; the node never dials anyone.
package backend
