package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/internal/etcdmap"
)

// etcdFlags are the flags of the commands that talk to etcd: the
// endpoints (else the local cluster's, found in DIR/etcd-endpoint) and the
// cluster name.
type etcdFlags struct {
	endpoints, data, cluster string
}

func (f *etcdFlags) register(fsAdd func(p *string, name, value, usage string)) {
	fsAdd(&f.endpoints, "etcd", "", "etcd `ENDPOINTS`, comma-separated (default: the local cluster's, from DIR/etcd-endpoint)")
	fsAdd(&f.data, "data", "data", "the local cluster's data `DIR`, to find its etcd")
	fsAdd(&f.cluster, "cluster", etcdmap.DefaultCluster, "cluster `NAME` in etcd")
}

func (f *etcdFlags) dial() (*clientv3.Client, error) {
	eps := f.endpoints
	if eps == "" {
		data, err := os.ReadFile(filepath.Join(f.data, etcdEndpointFile))
		if err != nil {
			return nil, fmt.Errorf("no etcd given (--etcd ENDPOINTS) and no local cluster's in %s: %w", f.data, err)
		}
		eps = strings.TrimSpace(string(data))
	}
	return etcdmap.Dial(eps)
}

// cmdSplit asks the controller to split a shard's range at a position and
// waits for the outcome.
func cmdSplit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("split", nil, stderr)
	var ef etcdFlags
	ef.register(fs.StringVar)
	name := fs.String("name", "", "the new shard's `NAME` (default: SHARD-2, SHARD-3, ...)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the controller")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	if len(pos) == 3 && strings.EqualFold(pos[1], "at") {
		pos = []string{pos[0], pos[2]}
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: shardkv split SHARD [AT] POSITION [--name NEW] [--etcd ENDPOINTS | --data DIR] [--cluster NAME]")
		return &exitError{code: 2}
	}
	at, err := strconv.ParseFloat(pos[1], 64)
	if err != nil || at <= 0 || at >= 1 {
		return &exitError{code: 2, msg: fmt.Sprintf("position %q: want a number in (0,1)", pos[1])}
	}
	cli, err := ef.dial()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	id, err := etcdmap.SubmitSplit(ctx, cli, ef.cluster, pos[0], at, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "request %s: split %s at %s; waiting for the controller\n", id, pos[0], pos[1])
	ch, err := etcdmap.WaitChange(ctx, cli, ef.cluster, id)
	if err != nil {
		return err
	}
	if ch.State != "done" {
		return &exitError{code: 1, msg: fmt.Sprintf("split refused: %s", ch.Error)}
	}
	fmt.Fprintf(stdout, "done: %s now ends at %s, %s starts there (same node), map epoch %d\n", ch.Shard, pos[1], ch.Name, ch.Epoch)
	return nil
}

// cmdController runs a controller until SIGINT or SIGTERM; several may
// run, one leads.
func cmdController(args []string, stderr io.Writer) error {
	fs := subFlags("controller", nil, stderr)
	var ef etcdFlags
	ef.register(fs.StringVar)
	id := fs.String("id", "", "this controller's `ID` in the election (default: host name and pid)")
	logLevel := fs.String("log-level", "info", "log level")
	failover := fs.Bool("failover", false, "promote a replica when a primary dies and tell the nodes their roles (docs/REPLICATION.md)")
	nodePass := fs.String("node-password", "", "the nodes' -requirepass, for -failover")
	if _, err := parseSub(fs, args, 0, "[--etcd ENDPOINTS | --data DIR] [--cluster NAME] [--id ID] [--failover [--node-password PW]]", stderr); err != nil {
		return err
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = host + "-" + strconv.Itoa(os.Getpid())
	}
	cli, err := ef.dial()
	if err != nil {
		return err
	}
	defer cli.Close()
	log := hclog.New(&hclog.LoggerOptions{Name: "shardkv-controller", Level: hclog.LevelFromString(*logLevel), Output: stderr})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var fo []etcdmap.FailoverOptions
	if *failover {
		fo = append(fo, etcdmap.FailoverOptions{NodePassword: *nodePass})
	}
	etcdmap.RunController(ctx, cli, ef.cluster, *id, log, fo...)
	return nil
}

// printChanges lists the requests in flight for status.
func printChanges(ctx context.Context, ef *etcdFlags, stdout io.Writer) {
	cli, err := ef.dial()
	if err != nil {
		return // no etcd known: a static map, or a cluster elsewhere
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reqs, err := etcdmap.Pending(ctx, cli, ef.cluster)
	if err != nil {
		fmt.Fprintf(stdout, "changes in flight: unknown (etcd: %v)\n", err)
		return
	}
	if len(reqs) == 0 {
		fmt.Fprintln(stdout, "changes in flight: none")
		return
	}
	for _, r := range reqs {
		fmt.Fprintf(stdout, "change in flight: %s %s %s at %s\n", r.ID, r.Kind, r.Shard, strconv.FormatFloat(r.At, 'g', -1, 64))
	}
}
