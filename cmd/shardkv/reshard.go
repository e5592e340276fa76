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

// requestFlags is the flag set of a command that submits a request to the
// controller: etcd's flags, --name (nameUsage) and --wait.
func requestFlags(cmd, nameUsage string, wait time.Duration, stderr io.Writer) (*flag.FlagSet, *etcdFlags, *string, *time.Duration) {
	fs := subFlags(cmd, nil, stderr)
	ef := &etcdFlags{}
	ef.register(fs.StringVar)
	name := fs.String("name", "", nameUsage)
	w := fs.Duration("wait", wait, "how long to wait for the outcome")
	return fs, ef, name, w
}

// parsePositional parses fs over args and returns the positional
// arguments; -h is exit 0, a bad flag exit 2.
func parsePositional(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitError{code: 0}
		}
		return nil, &exitError{code: 2}
	}
	return pos, nil
}

// cmdSplit asks the controller to split a shard's range at a position and
// waits for the outcome.
func cmdSplit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, ef, name, wait := requestFlags("split", "the new shard's `NAME` (default: SHARD-2, SHARD-3, ...)", 30*time.Second, stderr)
	pos, err := parsePositional(fs, args)
	if err != nil {
		return err
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
	ch, err := submit(ctx, ef, *wait, etcdmap.Request{Kind: "split", Shard: pos[0], At: at, Name: *name},
		"split "+pos[0]+" at "+pos[1], stdout, stderr)
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
	failover := fs.Bool("failover", false, "also promote a replica when a primary dies and tell the nodes their roles (docs/REPLICATION.md)")
	var cfg etcdmap.Config
	var npf nodePasswordFlags
	npf.register(fs)
	fs.IntVar(&cfg.Lease, "lease", 5, "election lease in `SECONDS`: a dead leader is replaced that long after")
	fs.Int64Var(&cfg.FenceLag, "fence-lag", 100, "a move fences its range when its lag is below `N` records")
	fs.DurationVar(&cfg.FenceTimeout, "fence-timeout", 100*time.Millisecond, "how long a write to a fenced range waits before TRYAGAIN")
	fs.Float64Var(&cfg.RateMB, "rate", 0, "limit of a move's copy in `MB/s` (0: none)")
	fs.DurationVar(&cfg.AbortWait, "abort-wait", 30*time.Second, "how long an abort waits for a target that does not answer (its copy is dropped when it is back)")
	hold := fs.String("hold", "", "fault tests: wait in move states, `STATE=DURATION,...` (in fence: once fenced)")
	if _, err := parseSub(fs, args, 0, "[--etcd ENDPOINTS | --data DIR] [--cluster NAME] [--id ID] [--node-password PW | --node-password-file FILE] [--failover]", stderr); err != nil {
		return err
	}
	pw, err := npf.password(&ef)
	if err != nil {
		return err
	}
	cfg.NodePassword = pw
	if *hold != "" {
		cfg.Hold = map[string]time.Duration{}
		for _, kv := range strings.Split(*hold, ",") {
			k, v, ok := strings.Cut(kv, "=")
			d, err := time.ParseDuration(v)
			if !ok || err != nil {
				return &exitError{code: 2, msg: fmt.Sprintf("--hold %q: want STATE=DURATION", kv)}
			}
			cfg.Hold[k] = d
		}
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = host + "-" + strconv.Itoa(os.Getpid())
	}
	cfg.Cluster, cfg.ID = ef.cluster, *id
	cli, err := ef.dial()
	if err != nil {
		return err
	}
	defer cli.Close()
	log := hclog.New(&hclog.LoggerOptions{Name: "shardkv-controller", Level: hclog.LevelFromString(*logLevel), Output: stderr})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *failover {
		cfg.Failover = &etcdmap.FailoverOptions{NodePassword: cfg.NodePassword}
	}
	etcdmap.RunController(ctx, cli, cfg, log)
	return nil
}

// printChanges lists the requests and moves in flight for status, and
// the last finished moves.
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
	}
	for _, r := range reqs {
		switch r.Kind {
		case "split":
			fmt.Fprintf(stdout, "change in flight: %s split %s at %s\n", r.ID, r.Shard, strconv.FormatFloat(r.At, 'g', -1, 64))
		default:
			fmt.Fprintf(stdout, "change in flight: %s %s %s\n", r.ID, r.Kind, strings.TrimSpace(r.Addr+" "+r.Name+" "+r.Shard+" "+r.Node))
		}
	}
	moves, err := etcdmap.ReadMoves(ctx, cli, ef.cluster, "")
	if err != nil {
		return
	}
	var finished []etcdmap.MoveRecord
	for _, m := range moves {
		if m.Terminal() {
			finished = append(finished, m)
			continue
		}
		fmt.Fprintln(stdout, "in flight: "+moveLine(m))
	}
	for _, m := range finished[max(0, len(finished)-5):] {
		fmt.Fprintln(stdout, "finished: "+moveLine(m))
	}
}
