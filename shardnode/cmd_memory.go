package shardnode

import (
	"strconv"

	"github.com/shardkv/shardkv/internal/cmdtable"
)

// Per-key bytes MEMORY USAGE adds to the key and the value: what a key
// costs the node beyond its own bytes. The key directory's entry is 40
// bytes and its key arena's length prefix one or two;
// BenchmarkKeydirBytesPerKey measured 47 bytes per key beyond the key with
// the slack of the directory's chunks, rounded here to 48. The record on
// disk adds its 40-byte header (bitcask's headerSize) and the key again.
const (
	keydirEntryBytes = 48
	recordHeaderSize = 40
)

var memoryHelp = []string{
	"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"USAGE <key> [SAMPLES <count>]",
	"    Return memory in bytes used by <key> and its value. Nested values are",
	"    sampled up to <count> times (default: 5, 0 means sample all).",
	"HELP",
	"    Prints this help.",
}

// cmdMemory is MEMORY USAGE key [SAMPLES count] and MEMORY HELP. A string
// has nothing to sample: SAMPLES is checked as Redis checks it and
// otherwise ignored.
func cmdMemory(c *client, args [][]byte) {
	sub := args[1]
	switch {
	case eqFold(sub, "usage"):
		if len(args) < 3 {
			c.arityErr("memory|usage")
			return
		}
		for j := 3; j < len(args); j++ {
			if !eqFold(args[j], "samples") || j+1 >= len(args) {
				c.errReply(errSyntax)
				return
			}
			n, err := strconv.ParseInt(string(args[j+1]), 10, 64)
			if err != nil {
				c.errReply(errNotInteger)
				return
			}
			if n < 0 {
				c.errReply(errSyntax)
				return
			}
			j++
		}
		key := args[2]
		m, ok := c.st.meta(key)
		if !ok {
			c.null()
			return
		}
		c.intReply(memoryUsage(len(key), m.Len))
	case eqFold(sub, "help"):
		if len(args) != 2 {
			c.arityErr("memory|help")
			return
		}
		c.helpReply(memoryHelp)
	default:
		c.errReply(cmdtable.ErrUnknownSubcommand("memory", string(sub)))
	}
}

// memoryUsage is what a key of klen bytes with a value of vlen bytes costs
// the node: its key directory entry in memory and its record on disk.
func memoryUsage(klen int, vlen int64) int64 {
	return keydirEntryBytes + int64(klen) + recordHeaderSize + int64(klen) + vlen
}
