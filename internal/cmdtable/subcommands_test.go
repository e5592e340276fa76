package cmdtable

import (
	"strings"
	"testing"
)

func TestSubcommandRows(t *testing.T) {
	for name := range subcommands {
		if c := Lookup([]byte(name)); c == nil || c.Subcommands == nil {
			t.Errorf("%s: subcommands of a row that does not exist", name)
		}
	}
	for _, c := range Commands {
		seen := map[string]bool{}
		for _, sub := range c.Subcommands {
			if !strings.HasPrefix(sub.Name, c.Name+"|") || strings.ToLower(sub.Name) != sub.Name || seen[sub.Name] {
				t.Errorf("%s: subcommand %q", c.Name, sub.Name)
			}
			seen[sub.Name] = true
			if sub.Subcommands != nil || sub.FirstKey > 0 && sub.Step <= 0 {
				t.Errorf("%s: row", sub.Name)
			}
		}
	}
}

func TestResolve(t *testing.T) {
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	for _, tc := range []struct {
		side Side
		args [][]byte
		row  string
		err  string
	}{
		{SideProxy, args("OBJECT", "Encoding", "k"), "object|encoding", ""},
		{SideProxy, args("OBJECT", "ENCODING"), "object|encoding", "ERR wrong number of arguments for 'object|encoding' command"},
		{SideProxy, args("OBJECT"), "object", "ERR wrong number of arguments for 'object' command"},
		{SideProxy, args("object", "foo", "k"), "object", "ERR unknown subcommand 'foo'. Try OBJECT HELP."},
		{SideProxy, args("CLIENT", "KILL", "a:1"), "client|kill", ""},
		{SideNode, args("CLIENT", "KILL", "a:1"), "client", "ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
		{SideNode, args("COMMAND"), "command", ""},
		{SideNode, args("COMMAND", "GETKEYS", "GET"), "command|getkeys", "ERR wrong number of arguments for 'command|getkeys' command"},
		{SideNode, args("GET", "k"), "get", ""},
		{SideNode, args("GET"), "get", "ERR wrong number of arguments for 'get' command"},
	} {
		row, err := Lookup(tc.args[0]).Resolve(tc.args, tc.side)
		if row.Name != tc.row || err != tc.err {
			t.Errorf("%q on side %d: %s %q, want %s %q", tc.args, tc.side, row.Name, err, tc.row, tc.err)
		}
	}
}
