package conncmd

import (
	"bytes"
	"slices"
	"strings"

	"github.com/shardkv/shardkv/internal/cmdtable"
	"github.com/shardkv/shardkv/internal/glob"
	"github.com/shardkv/shardkv/resp"
)

var commandHelp = []string{
	"(no subcommand)", "    Return details about all commands.",
	"COUNT", "    Return the total number of commands in this server.",
	"LIST", "    Return a list of all commands in this server.",
	"INFO [<command-name> ...]", "    Return details about multiple commands.",
	"    If no command names are given, documentation details for all", "    commands are returned.",
	"DOCS [<command-name> ...]", "    Return documentation details about multiple commands.",
	"    If no command names are given, documentation details for all", "    commands are returned.",
	"GETKEYS <full-command>", "    Return the keys from a full command.",
}

// Command is COMMAND [COUNT | LIST [FILTERBY ...] | INFO | DOCS | GETKEYS
// | HELP], answered from the rows of the command table the server serves.
func Command(h Host, c Conn, out []byte, args [][]byte) []byte {
	proto := c.Session().Proto
	if len(args) == 1 {
		return appendInfos(out, proto, h.Commands(), h.Side())
	}
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "count":
		return resp.AppendInt(out, int64(len(h.Commands())))
	case "list":
		cmds, msg := filterCommands(h.Commands(), args[2:])
		if msg != "" {
			return resp.AppendError(out, msg)
		}
		out = resp.AppendArray(out, len(cmds))
		for _, ci := range cmds {
			out = resp.AppendBulkString(out, ci.Name)
		}
		return out
	case "info":
		if len(args) == 2 {
			return appendInfos(out, proto, h.Commands(), h.Side())
		}
		out = resp.AppendArray(out, len(args)-2)
		for _, name := range args[2:] {
			if ci := lookupFull(h, name); ci != nil {
				out = cmdtable.AppendCommandInfo(out, proto, ci, h.Side())
			} else {
				out = resp.AppendNull(out, proto)
			}
		}
		return out
	case "docs":
		list := h.Commands()
		if len(args) > 2 {
			list = nil
			for _, name := range args[2:] {
				if ci := h.Lookup(name); ci != nil {
					list = append(list, ci)
				}
			}
		}
		out = resp.AppendMap(out, proto, len(list))
		for _, ci := range list {
			out = cmdtable.AppendCommandDocs(out, proto, ci)
		}
		return out
	case "getkeys":
		cargs := args[2:]
		ci := h.Lookup(cargs[0])
		switch {
		case ci == nil:
			return resp.AppendError(out, "ERR Invalid command specified")
		case !ci.ArityOK(len(cargs)):
			return resp.AppendError(out, "ERR Invalid number of arguments specified for command")
		}
		idx := ci.KeyIndexes(cargs)
		if len(idx) == 0 {
			return resp.AppendError(out, "ERR The command has no key arguments")
		}
		out = resp.AppendArray(out, len(idx))
		for _, i := range idx {
			out = resp.AppendBulk(out, cargs[i])
		}
		return out
	case "help":
		return AppendHelp(out, "COMMAND", commandHelp)
	}
	return resp.AppendError(out, cmdtable.ErrUnknownSubcommand("command", string(args[1])))
}

func appendInfos(out []byte, proto resp.Proto, cmds []*cmdtable.Command, s cmdtable.Side) []byte {
	out = resp.AppendArray(out, len(cmds))
	for _, ci := range cmds {
		out = cmdtable.AppendCommandInfo(out, proto, ci, s)
	}
	return out
}

// lookupFull finds a command the server serves by its name, or a
// subcommand by Redis's full name ("config|get").
func lookupFull(h Host, name []byte) *cmdtable.Command {
	container, sub, ok := bytes.Cut(name, []byte("|"))
	ci := h.Lookup(container)
	if !ok || ci == nil {
		return ci
	}
	if sc, known := ci.Subcommand([][]byte{container, sub}, h.Side()); known {
		return sc
	}
	return nil
}

// filterCommands is COMMAND LIST's [FILTERBY MODULE name | ACLCAT category
// | PATTERN pattern]. No command comes from a module.
func filterCommands(all []*cmdtable.Command, opts [][]byte) ([]*cmdtable.Command, string) {
	switch {
	case len(opts) == 0:
		return all, ""
	case len(opts) != 3 || !strings.EqualFold(string(opts[0]), "filterby"):
		return nil, ErrSyntax
	}
	val := opts[2]
	var keep func(ci *cmdtable.Command) bool
	switch strings.ToLower(string(opts[1])) {
	case "module":
		return nil, ""
	case "aclcat":
		cat := "@" + strings.ToLower(string(val))
		keep = func(ci *cmdtable.Command) bool { return slices.Contains(ci.ACLCategories(), cat) }
	case "pattern":
		keep = func(ci *cmdtable.Command) bool { return glob.Match(val, []byte(ci.Name), true) }
	default:
		return nil, ErrSyntax
	}
	var out []*cmdtable.Command
	for _, ci := range all {
		if keep(ci) {
			out = append(out, ci)
		}
	}
	return out, ""
}
