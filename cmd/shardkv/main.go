// Command shardkv is the console tool for a shardkv cluster: it loads rows
// into an index, prints an index back, locates a key, shows the state of the
// shards, and runs a local cluster for development (`make run`).
//
// Every subcommand except cluster talks only to the proxy, as any Redis
// client does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/version"
)

const usage = `shardkv: console tool for a shardkv cluster

Usage:
  shardkv [-addr HOST:PORT] [-password PW] COMMAND [ARGS]

Commands:
  load INDEX [--create] [--raw] [--batch N]
        Read rows "key|value" from stdin and store each as INDEX:key, pipelined
        in batches of N (default 1000). --create runs INDEX.CREATE INDEX first
        (needed when the nodes run with -strict-indexes). Prints the number of
        rows stored; every rejected row is reported on stderr with its line
        number; exits 1 if any row failed.
  cat INDEX
        Print every key of INDEX once, as "key|value" without the "INDEX:"
        prefix, in the escaped row format below (load reads it back).
  locate KEY
        Print the position of KEY in [0,1), its index and the shard that owns it.
  status
        Print the range map with each shard's health, keys, live bytes and size
        limit, as the proxy sees them (SHARD.MAP, INFO shards); exits 1 if a
        shard is down or its node's assignment differs from the map. With an
        etcd map: its epoch, and the changes in flight (--etcd, --data as
        for split); when it lists replicas, each copy's role, link, offset
        and lag, read from the nodes (--node-password PW |
        --node-password-file FILE, default the local cluster's).
  split SHARD [AT] POSITION [--name NEW] [--etcd ENDPOINTS | --data DIR]
        Ask the controller to cut SHARD's range at POSITION: SHARD keeps the
        part below, a new shard on the same node (NEW, default SHARD-2) the
        rest; no data moves, the map's epoch grows by one. Waits for the
        outcome. The etcd is the local cluster's (DIR/etcd-endpoint, DIR
        "data") unless --etcd is given; --cluster NAME picks the cluster.
  add-node ADDR [--name NAME]
        Ask the controller to add the shard node at ADDR (host:port, running,
        with the cluster's node password) to the node list; it owns nothing
        until a move or rebalance gives it a range. --etcd, --data and
        --cluster as for split, for this and the three commands below.
  remove-node NAME
        Move every range of node NAME to a neighbour, then mark it removed.
  move RANGE TO NODE
        Move RANGE (LO-HI, or a shard's name) online to NODE (a name in the
        node list, or its address): copy, catch up, a short write fence of
        the range only, the map's epoch+1, the source deletes the keys.
        A node may end up with ranges that are not adjacent.
  rebalance
        Even out live bytes across the active nodes: one move at a time,
        part of a range of the most loaded node to the least loaded.
        These four print each state of each move and wait for the outcome
        (--wait, default 10m); the controller goes on if they are stopped.
  abort REQUEST|MOVE [--reason TEXT]
        Ask the controller to abort the request's move in flight (unless it
        switched already: the switch and the abort exclude each other) and
        plan no more; the source keeps the range, the target's copy is
        deleted. Exits 1 if the request completed instead.
  controller [--etcd ENDPOINTS | --data DIR] [--cluster NAME] [--id ID]
             [--node-password PW | --node-password-file FILE] [--lease S]
             [--fence-lag N] [--fence-timeout D] [--rate MB/s] [--abort-wait D]
             [--failover]
        Run a controller: several may run, one leads (an etcd election) and
        carries out requests (split, add-node, remove-node, move,
        rebalance). shardkv cluster runs one itself. An abort waits
        --abort-wait (30s) for a target that does not answer, then records
        the move aborted and drops the target's copy once it is back. With
        --failover it also promotes a replica when a primary dies
        (docs/REPLICATION.md).
  cluster [--data DIR] [--map FILE] [--proxy-addr HOST:PORT] [--bin DIR]
          [--appendfsync always|everysec|no] [--log-level LEVEL]
          [--strict-indexes] [--static-map] [--metrics-addr HOST:PORT]
        Run a local cluster in the foreground: one shardkv-node per shard of
        the range map (the embedded default map: three nodes on
        127.0.0.1:7001-7003) with its data in DIR/<shard name> (default
        "data"), and a shardkv-proxy on 127.0.0.1:6380. The nodes require a
        password, made on the first run and kept in DIR/node-password; the
        proxy is given it. A process that exits is restarted (after 0.25 s,
        doubled by each failed start in a row); after 5 failed starts in a
        row a node is given up and the other shards keep serving (a proxy
        given up stops the cluster). Ctrl-C or SIGTERM stops the proxy, then
        the nodes, and waits for them; the data stays in DIR. With
        --metrics-addr HOST:PORT the proxy serves Prometheus metrics on
        HOST:PORT/metrics and the nodes, in map order, on the next ports.
        The map lives in an etcd embedded in this process (DIR/etcd), seeded
        from the map at the first run, and a controller runs with it;
        --static-map runs without them (the proxy reads the map file).
  version
        Print the version (also -version, --version).
  help
        Print this text.

Flags before or after the command:
  -addr HOST:PORT   the proxy (default 127.0.0.1:6380)
  -password PW      the proxy's password (its -requirepass), if any

Row format (load and cat):
  One row per line: key|value. The key ends at the first "|" that is not
  escaped, so a value keeps every further "|" whole. Four escapes make any
  bytes safe:
      \\   backslash
      \n   line feed
      \r   carriage return
      \|   "|" (only needed in a key)
  Any other character after a backslash is a bad escape and rejects the row.
  load accepts LF or CRLF line ends. load --raw turns escapes off: the key ends
  at the first "|", the rest of the line (without its LF) is the value, byte
  for byte. cat always escapes, so "shardkv cat a | shardkv load b" copies
  index a to index b exactly.
`

// exitError carries a process exit code out of a subcommand; its message, if
// any, has already been printed or is printed by main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// quietLogger drops go-redis's own log lines: every failure reaches the
// user once, through the error a command returns.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietLogger{})
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "shardkv:", ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "shardkv:", err)
	os.Exit(1)
}

// globals are the flags every subcommand accepts.
type globals struct {
	addr     string
	password string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", "127.0.0.1:6380", "proxy address `HOST:PORT`")
	fs.StringVar(&g.password, "password", "", "proxy password")
}

// client opens a go-redis client for the proxy.
func (g *globals) client() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:          g.addr,
		Password:      g.password,
		DialTimeout:   5 * time.Second,
		DialerRetries: 1, // MaxRetries already retries a failed dial
		ReadTimeout:   30 * time.Second,
		WriteTimeout:  30 * time.Second,
		PoolSize:      4,
	})
}

// connect opens a client for the proxy and checks that it answers, so that
// a wrong address or a missing password is one line naming the address
// rather than an error for every row.
func (g *globals) connect(ctx context.Context) (*redis.Client, error) {
	rdb := g.client()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, g.connectError(err)
	}
	return rdb, nil
}

// connectError says what a failed first contact with the proxy means, and
// which address was tried.
func (g *globals) connectError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "NOAUTH"):
		return &exitError{code: 1, msg: fmt.Sprintf("the proxy at %s requires a password: give it with -password (%s)", g.addr, msg)}
	case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "AUTH <password> called without any password"):
		return &exitError{code: 1, msg: fmt.Sprintf("the proxy at %s refused the -password given: %s", g.addr, msg)}
	case isServerError(err):
		return fmt.Errorf("the proxy at %s: %w", g.addr, err)
	}
	reason := msg
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		reason = op.Err.Error() // without the address, which the message names once
	}
	hint := ""
	if errors.Is(err, syscall.ECONNREFUSED) {
		hint = " (is it running? `make run` starts a local cluster; -addr HOST:PORT points elsewhere)"
	}
	return &exitError{code: 1, msg: fmt.Sprintf("cannot connect to the proxy at %s: %s%s", g.addr, reason, hint)}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var g globals
	top := flag.NewFlagSet("shardkv", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() { fmt.Fprint(stderr, usage) }
	g.register(top)
	showVersion := top.Bool("version", false, "print the version and exit")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	rest := top.Args()
	if *showVersion {
		fmt.Fprintln(stdout, version.String("shardkv"))
		return nil
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := rest[0], rest[1:]
	ctx := context.Background()
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version":
		fmt.Fprintln(stdout, version.String("shardkv"))
		return nil
	case "load":
		return cmdLoad(ctx, &g, rest, stdin, stdout, stderr)
	case "cat":
		return cmdCat(ctx, &g, rest, stdout, stderr)
	case "locate":
		return cmdLocate(ctx, &g, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, &g, rest, stdout, stderr)
	case "cluster":
		return cmdCluster(rest, stdout, stderr)
	case "split":
		return cmdSplit(ctx, rest, stdout, stderr)
	case "controller":
		return cmdController(rest, stderr)
	case "add-node", "remove-node", "move", "rebalance":
		return cmdRequest(ctx, cmd, rest, stdout, stderr)
	case "abort":
		return cmdAbort(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "shardkv: unknown command %q\n\n%s", cmd, usage)
		return &exitError{code: 2}
	}
}

// parseInterspersed parses fs over args, allowing flags after positional
// arguments ("load idx --create"), and returns the positional arguments. A
// lone "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag, or consumes a "--".
		consumedDashDash := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"
		if consumedDashDash {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// subFlags makes the flag set of a subcommand; it accepts the global flags
// too, so they may come after the command.
func subFlags(name string, g *globals, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shardkv "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if g != nil {
		fs.StringVar(&g.addr, "addr", g.addr, "proxy address `HOST:PORT`")
		fs.StringVar(&g.password, "password", g.password, "proxy password")
	}
	return fs
}

// parseSub parses a subcommand's arguments and checks the count of
// positional arguments.
func parseSub(fs *flag.FlagSet, args []string, want int, what string, stderr io.Writer) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitError{code: 0}
		}
		return nil, &exitError{code: 2}
	}
	if len(pos) != want {
		fmt.Fprintf(stderr, "usage: %s %s\n", fs.Name(), what)
		return nil, &exitError{code: 2}
	}
	return pos, nil
}

// checkIndexName refuses names that cannot be an index: the index of a key
// is the bytes before its first ':', so a name with ':' would write keys into
// another index, and "" is the unnamed index of keys without ':'.
func checkIndexName(name string) error {
	if name == "" {
		return &exitError{code: 2, msg: "index name must not be empty"}
	}
	if strings.Contains(name, ":") {
		return &exitError{code: 2, msg: fmt.Sprintf("index name %q must not contain ':' (the index of a key is the part before its first ':')", name)}
	}
	return nil
}
