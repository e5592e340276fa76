package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/shardkv/shardkv/internal/cmdtable"
)

// routeText is how README.md's commands table names each route.
var routeText = map[cmdtable.Route]string{
	cmdtable.RouteKey:       "key's shard",
	cmdtable.RouteSplit:     "split by shard",
	cmdtable.RouteSameNode:  "one shard",
	cmdtable.RouteFanout:    "every shard",
	cmdtable.RouteLocal:     "proxy",
	cmdtable.RouteTx:        "transaction",
	cmdtable.RouteNodeOnly:  "node only",
	cmdtable.RouteProxyOnly: "proxy only",
}

var readmeRow = regexp.MustCompile("^\\| `([A-Z0-9._]+)` \\| ([^|]+) \\|")

// TestReadmeCommandsTable checks that the commands table of README.md lists
// exactly the commands of cmdtable.Commands, once each, with the route the table
// gives them, so the README cannot drift from the code.
func TestReadmeCommandsTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	begin := strings.Index(text, "<!-- commands:begin")
	end := strings.Index(text, "<!-- commands:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no <!-- commands:begin --> ... <!-- commands:end --> block")
	}
	listed := map[string]string{}
	for _, line := range strings.Split(text[begin:end], "\n")[1:] {
		if line == "" || strings.HasPrefix(line, "| command") || strings.HasPrefix(line, "|---") {
			continue
		}
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README commands table: row %q is not | `NAME` | route | notes |", line)
			continue
		}
		name := strings.ToLower(m[1])
		if _, dup := listed[name]; dup {
			t.Errorf("README lists %s twice", m[1])
		}
		listed[name] = strings.TrimSpace(m[2])
	}
	for _, c := range cmdtable.Commands {
		route, ok := listed[c.Name]
		if !ok {
			t.Errorf("README commands table lacks %s", strings.ToUpper(c.Name))
			continue
		}
		if want := routeText[c.Route]; route != want {
			t.Errorf("README says %s runs on %q; cmdtable.Commands routes it %q", strings.ToUpper(c.Name), route, want)
		}
		delete(listed, c.Name)
	}
	for name := range listed {
		t.Errorf("README lists %s, which is not in cmdtable.Commands", strings.ToUpper(name))
	}
}

// TestReadmeQuickStart checks that the two commands a newcomer needs stand
// first in the README, exactly.
func TestReadmeQuickStart(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	run := strings.Index(text, "```sh\nmake run\n```")
	test := strings.Index(text, "```sh\nmake test\n```")
	if run < 0 || test < 0 || run > test {
		t.Fatal("README.md must show ```sh make run``` and then ```sh make test``` as blocks of their own")
	}
	if first := strings.Index(text, "```"); first != run {
		t.Errorf("the first code block of README.md is not `make run`")
	}
	if strings.Count(text[:test], "\n## ") > 0 {
		t.Errorf("`make test` comes after the first section; both commands belong on the first screen")
	}
}
