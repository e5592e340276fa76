package proxy

import (
	"strings"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/resp"
)

// The commands the proxy accepts: every row of cmdtable.Commands but the ones
// only a shard node runs.
func proxyCommand(name []byte) *cmdtable.Command {
	ci := cmdtable.Lookup(name)
	if ci == nil || ci.Route == cmdtable.RouteNodeOnly {
		return nil
	}
	return ci
}

func proxyCommands() []*cmdtable.Command {
	var out []*cmdtable.Command
	for i := range cmdtable.Commands {
		if cmdtable.Commands[i].Route != cmdtable.RouteNodeOnly {
			out = append(out, &cmdtable.Commands[i])
		}
	}
	return out
}

// command answers COMMAND, COMMAND COUNT|INFO|DOCS|LIST|GETKEYS from the
// command table.
func (c *client) command(args [][]byte) {
	if len(args) == 1 {
		cmds := proxyCommands()
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(cmds))
		for _, ci := range cmds {
			c.out = cmdtable.AppendCommandInfo(c.out, c.proto, ci)
		}
		c.reply(mark)
		return
	}
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "count":
		if len(args) != 2 {
			c.errorReply(cmdtable.ErrWrongArity("command|count"))
			return
		}
		c.integer(int64(len(proxyCommands())))
	case "list":
		cmds := proxyCommands()
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(cmds))
		for _, ci := range cmds {
			c.out = resp.AppendBulkString(c.out, ci.Name)
		}
		c.reply(mark)
	case "info":
		var cmds []*cmdtable.Command
		if len(args) == 2 {
			cmds = proxyCommands()
		} else {
			for _, a := range args[2:] {
				cmds = append(cmds, proxyCommand(a))
			}
		}
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(cmds))
		for _, ci := range cmds {
			if ci == nil {
				c.out = resp.AppendNullArray(c.out, c.proto)
				continue
			}
			c.out = cmdtable.AppendCommandInfo(c.out, c.proto, ci)
		}
		c.reply(mark)
	case "docs":
		var cmds []*cmdtable.Command
		if len(args) == 2 {
			cmds = proxyCommands()
		} else {
			for _, a := range args[2:] {
				if ci := proxyCommand(a); ci != nil {
					cmds = append(cmds, ci)
				}
			}
		}
		mark := len(c.out)
		c.out = resp.AppendMap(c.out, c.proto, len(cmds))
		for _, ci := range cmds {
			c.out = cmdtable.AppendCommandDocs(c.out, c.proto, ci)
		}
		c.reply(mark)
	case "getkeys":
		if len(args) < 3 {
			c.errorReply(cmdtable.ErrWrongArity("command|getkeys"))
			return
		}
		ci := proxyCommand(args[2])
		if ci == nil {
			c.errorReply("ERR Invalid command specified")
			return
		}
		if !ci.ArityOK(len(args) - 2) {
			c.errorReply("ERR Invalid number of arguments specified for command")
			return
		}
		idx := ci.KeyIndexes(len(args) - 2)
		if len(idx) == 0 {
			c.errorReply("ERR The command has no key arguments")
			return
		}
		mark := len(c.out)
		c.out = resp.AppendArray(c.out, len(idx))
		for _, i := range idx {
			c.out = resp.AppendBulk(c.out, args[2+i])
		}
		c.reply(mark)
	case "help":
		c.help("COMMAND", []string{
			"(no subcommand)", "    Return details about all commands.",
			"COUNT", "    Return the total number of commands.",
			"DOCS [<command-name> ...]", "    Return documentation details about multiple commands.",
			"GETKEYS <full-command>", "    Return the keys from a full command.",
			"INFO [<command-name> ...]", "    Return details about multiple commands.",
			"LIST", "    Return a list of all commands.",
		})
	default:
		c.errorReply(cmdtable.ErrUnknownSubcommand("command", string(args[1])))
	}
}
