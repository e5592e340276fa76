package shardnode

import "github.com/shardkv/shardkv/internal/memfree"

// noteBig counts a request, or a value a command read, of n bytes as
// memory released once the batch is settled (memfree): the request
// buffer of a 500 MB SET is dropped then, and Go's scavenger alone gave
// its pages back only minutes later.
func (c *client) noteBig(n int) {
	c.bigBytes += memfree.Big(n)
}
