// Package resp is the Redis protocol (RESP2 and RESP3) and nothing else:
// appending replies and commands to a caller's buffer in redcon's append
// style (encode.go), following a request stream's framing under Redis's
// limits before anything is buffered for it (framing.go), and finding,
// parsing and reading replies (reply.go).
//
// It holds no server state and does no I/O of its own beyond the
// io.Reader a ReplyReader is given; the command table, socket tricks and
// the proxy's backend client live in internal/cmdtable, internal/sockio and
// proxy/backend.
package resp
