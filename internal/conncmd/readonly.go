package conncmd

import "github.com/shardkv/shardkv/resp"

// ReadOnly is READONLY. A Redis Cluster client sends it before it reads
// from a replica: a replica node then serves the connection's reads, and
// the proxy sends its read-only commands to the shards' replicas (proxy's
// replicas.go); CLIENT LIST shows flags=r, as in Redis. Both servers answer
// it so that a connection sees the same reply whichever it reached.
func ReadOnly(h Host, c Conn, out []byte, args [][]byte) []byte {
	c.Session().readonly.Store(true)
	return resp.AppendOK(out)
}

// ReadWrite is READWRITE: the connection leaves READONLY.
func ReadWrite(h Host, c Conn, out []byte, args [][]byte) []byte {
	c.Session().readonly.Store(false)
	return resp.AppendOK(out)
}
