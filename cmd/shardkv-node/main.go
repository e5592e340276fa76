// Command shardkv-node runs one shard node: it parses its flags (and the
// file of -config, in redis.conf syntax, which the flags override) into a
// shardnode.Config and serves until SIGTERM or SIGINT, then stops accepting,
// lets in-flight commands finish, fsyncs, closes the database and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/config"
	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/internal/metrics"
	"github.com/shardkv/shardkv/internal/version"
	"github.com/shardkv/shardkv/shardnode"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// shutdownTimeout bounds how long in-flight commands may take after a
// signal before the remaining connections are cut.
const shutdownTimeout = 30 * time.Second

func run(args []string, stdout, stderr io.Writer) int {
	def := shardnode.DefaultConfig()
	fs := flag.NewFlagSet("shardkv-node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", def.Addr, "listen address (host:port); 127.0.0.1 keeps the node local")
	dir := fs.String("dir", def.Dir, "data directory")
	fsync := fs.String("appendfsync", def.Sync.String(), "fsync policy: always, everysec or no")
	pass := fs.String("requirepass", "", "password clients must AUTH with (empty: none)")
	maxClients := fs.Int("maxclients", def.MaxClients, "maximum connected clients, not counting proxies' connections")
	reserve := fs.Int("proxy-reserve", def.ProxyReserve, "connections admitted past -maxclients at a time for a proxy's handshake (0: none)")
	strict := fs.Bool("strict-indexes", false, "refuse writes to indexes INDEX.CREATE never created")
	maxFile := fs.Int64("max-file-size", 0, "data file size that starts a new file, in bytes (0: Bitcask's default)")
	level := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (empty: off)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address at /metrics, e.g. 127.0.0.1:9121 (empty: off)")
	loops := fs.Int("event-loops", 0, "event loops serving the connections (0: one per 4 CPUs; -1: a goroutine per connection)")
	batch := fs.Bool("sched-batch", true, "run the node's threads under SCHED_BATCH: woken by a request, they do not preempt the thread that sent it")
	configFile := fs.String("config", "", "read settings from `FILE` in redis.conf syntax (port, bind, dir, appendfsync, requirepass, maxclients, loglevel, client-output-buffer-limit, or these flags' names); flags given here override it")
	obuf := fs.String("client-output-buffer-limit", "", "output buffer limits at start, as CONFIG SET takes them (\"normal 0 0 0 pubsub 32mb 8mb 60\"); empty: Redis's defaults")
	etcdEndpoints := fs.String("etcd", "", "etcd `ENDPOINTS` (comma-separated): a move's fence that outlived its timeout reads the move's outcome there (/shardkv/NAME/moves/ID; without -etcd such a fence stays until SHARD.UNFENCE or an assignment without the range), and with -failover the node keeps a lease there")
	clusterName := fs.String("cluster", etcdmap.DefaultCluster, "cluster `NAME` in etcd, with -etcd")
	failover := fs.Bool("failover", false, "with -etcd: keep an etcd lease and take writes only while holding it and once the controller confirmed the node's role (automatic failover, docs/REPLICATION.md)")
	leaseTTL := fs.Int64("lease-ttl", 2, "the etcd lease's TTL in seconds, with -failover")
	replicaOf := fs.String("replicaof", "", "start as a replica of the primary at `HOST:PORT` (docs/REPLICATION.md)")
	minAcks := fs.Int("min-acks", 0, "replicas that must hold a write before its reply (0: asynchronous, as Redis)")
	minAcksTimeout := fs.Duration("min-acks-timeout", time.Second, "how long a write's reply waits for -min-acks replicas before it becomes NOREPLICAS")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("shardkv-node"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shardkv-node: unexpected arguments: %v (a config file is given with -config FILE)\n", fs.Args())
		return 2
	}
	if *configFile != "" {
		if err := config.Load(fs, *configFile, config.Redis, "config", "version"); err != nil {
			fmt.Fprintf(stderr, "shardkv-node: -config: %v\n", err)
			return 2
		}
	}
	lvl := hclog.LevelFromString(*level)
	if lvl == hclog.NoLevel {
		fmt.Fprintf(stderr, "shardkv-node: unknown -log-level %q\n", *level)
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "shardkv-node: -log-format must be text or json, not %q\n", *format)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "shardkv-node",
		Level:      lvl,
		Output:     stderr,
		JSONFormat: *format == "json",
	})
	if *batch {
		if err := batchScheduling(); err != nil {
			// A sandbox may forbid sched_setattr; the node works without.
			log.Warn("cannot switch to SCHED_BATCH; running under the default policy", "error", err)
		}
	}
	policy, err := bitcask.ParseSyncPolicy(*fsync)
	if err != nil {
		log.Error("bad -appendfsync", "error", err)
		return 2
	}
	cfg := def
	cfg.Addr, cfg.Dir, cfg.Sync = *addr, *dir, policy
	cfg.RequirePass, cfg.MaxClients, cfg.StrictIndexes = *pass, *maxClients, *strict
	cfg.MaxFileSize, cfg.Logger, cfg.EventLoops = *maxFile, log, *loops
	cfg.ProxyReserve, cfg.OutputBufferLimit = *reserve, *obuf
	// One etcd client for the fences' move states and the failover lease.
	var etcdCli *clientv3.Client
	if *etcdEndpoints != "" {
		// The client dials lazily and reconnects by itself: a node whose
		// etcd is down serves, and its fences wait for an answer.
		cli, err := etcdmap.Dial(*etcdEndpoints)
		if err != nil {
			log.Error("bad -etcd", "error", err)
			return 2
		}
		defer cli.Close()
		etcdCli = cli
		cluster := *clusterName
		cfg.MoveState = func(ctx context.Context, id string) (string, bool, error) {
			return etcdmap.ReadMoveState(ctx, cli, cluster, id)
		}
	}
	cfg.ReplicaOf, cfg.MinAcks, cfg.MinAcksTimeout = *replicaOf, *minAcks, *minAcksTimeout
	if *failover && *etcdEndpoints == "" {
		log.Error("-failover needs -etcd")
		return 2
	}
	cfg.RoleGate = *failover

	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			log.Error("pprof", "error", err)
			return 2
		}
	}
	srv, err := shardnode.New(cfg)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if *metricsAddr != "" {
		_, stopMetrics, err := metrics.Serve(*metricsAddr, log, srv.Collector())
		if err != nil {
			log.Error("metrics", "error", err)
			_ = srv.Close()
			return 2
		}
		defer stopMetrics()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "error", err)
		_ = srv.Close()
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *failover {
		lctx, stopLease := context.WithCancel(ctx)
		defer stopLease()
		go etcdmap.KeepLease(lctx, etcdCli, *clusterName, cfg.Addr, *leaseTTL, log.Named("lease"), srv.SetLeaseDeadline)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("server stopped", "error", err)
		_ = srv.Close()
		return 1
	case <-ctx.Done():
	}
	log.Info("signal received: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "error", err)
		return 1
	}
	if err := <-served; err != nil && !errors.Is(err, shardnode.ErrServerClosed) {
		log.Error("server stopped", "error", err)
		return 1
	}
	log.Info("bye")
	return 0
}

// servePprof serves the profiler on a loopback address only: profiles show
// keys and values.
func servePprof(addr string, log hclog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-pprof %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pprof %q: only a loopback address is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", ln.Addr().String())
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.Serve(ln); err != nil {
			log.Error("pprof stopped", "error", err)
		}
	}()
	return nil
}
