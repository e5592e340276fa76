package proxy

import (
	"github.com/tidwall/redcon"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
	"github.com/shardkv/shardkv/resp"
)

// local answers the commands the proxy runs itself: the connection and server
// commands both servers share (internal/conncmd), INFO (which gathers the
// nodes' figures), CLUSTER (cluster.go) and the proxy's own SHARD.* commands.
func (c *client) local(ci *cmdtable.Command, cmd redcon.Command) {
	args := cmd.Args
	if ci.Group == "pubsub" {
		c.psCmd(ci, cmd)
		return
	}
	if ci.Name == "select" {
		c.beforeSelect(args)
	}
	if ci.Name == "ping" && c.ps != nil && c.sess.Subscribed() {
		c.s.ps.psSync()
	}
	if h := conncmd.Handlers[ci.Name]; h != nil {
		mark := len(c.out)
		c.out = h(proxyHost{c.s}, c, c.out, args)
		c.reply(mark)
		if c.sess.Quit && c.ps != nil {
			c.psReset(false) // as Redis frees a client at QUIT
		}
		return
	}
	switch ci.Name {
	case "info":
		c.infoCmd(args)
	case "cluster":
		c.clusterCmd(args)
	case "monitor":
		c.monitorCmd()
	case "shard.locate":
		// The fourth element is the part of the key that was hashed: its
		// tag under hash tags, else the whole key.
		p := c.tbl.m.Position(args[1])
		i := c.tbl.m.Find(p)
		sh := c.tbl.shards[i]
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, 4)
		c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(p))
		c.out = resp.AppendBulkString(c.out, c.tbl.m.Shards[i].Name)
		c.out = resp.AppendBulkString(c.out, sh.addr)
		c.out = resp.AppendBulk(c.out, c.tbl.m.Hashed(args[1]))
		c.reply(mark)
	case "shard.map":
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(c.tbl.shards))
		for i, sh := range c.tbl.shards {
			e := c.tbl.m.Shards[i]
			c.out = resp.AppendArray(c.out, 6)
			c.out = resp.AppendBulkString(c.out, e.Name)
			c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(e.Start))
			c.out = resp.AppendBulkString(c.out, rangemap.FormatPosition(e.End))
			c.out = resp.AppendBulkString(c.out, sh.addr)
			if sh.healthy() {
				c.out = resp.AppendInt(c.out, 1)
			} else {
				c.out = resp.AppendInt(c.out, 0)
			}
			c.out = resp.AppendBulkString(c.out, sh.health())
		}
		c.reply(mark)
	case "shard.reload":
		if len(args) > 1 {
			c.errorReply("ERR syntax error")
			return
		}
		c.barrier()
		if err := c.s.Reload(); err != nil {
			c.s.log.Warn("map reload failed", "error", err)
			c.errorReply("ERR " + err.Error())
			return
		}
		c.s.log.Info("map reloaded", "by", "SHARD.RELOAD")
		c.tbl = c.s.table.Load()
		c.ok()
	default:
		c.errorReply(cmdtable.ErrUnknownCommand(args[0], args[1:]))
	}
}
