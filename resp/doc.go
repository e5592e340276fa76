// Package resp is the Redis protocol (RESP2 and RESP3) and nothing else:
// appending replies and commands to a caller's buffer in redcon's append
// style (encode.go); reading a client's requests (request.go), the one
// request reader both servers use, whose frame scanner (framing.go) checks
// the stream's framing under Redis's limits before anything is buffered for
// it, and which slices complete commands out of its buffer in place as
// redcon.Command values, the type both servers' handlers take; and finding,
// parsing and reading replies (reply.go).
//
// It holds no server state and does no I/O of its own beyond the
// io.Reader a ReplyReader is given (a RequestReader is filled by its
// caller, with the system call the caller prefers); the command table,
// socket tricks and the proxy's backend client live in internal/cmdtable,
// internal/sockio and proxy/backend.
package resp
