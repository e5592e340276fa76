// Package cmdtable is shardkv's one command table, Redis's commands.def in
// Go: a row per command with its arity, flags and key positions, and what the
// proxy must know to route it. Both servers read it: arity errors, COMMAND
// INFO/DOCS/GETKEYS, key extraction, the node's dispatch and the proxy's
// routing all come from the same row, so adding a command is adding a row
// here and a handler in the server that runs it.
package cmdtable
