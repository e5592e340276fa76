// Command shardkv-proxy is the client-facing server of shardkv: it speaks
// the Redis protocol and routes every key to the shard node of its range
// map. Flags are documented in docs/INTERNALS.md; -config FILE reads them
// from a file in redis.conf syntax, which the flags given override.
//
// SIGHUP reloads the map file (address and size changes only), or with
// -etcd reads the map from etcd; SIGTERM and
// SIGINT stop it gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/internal/config"
	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/internal/metrics"
	"github.com/shardkv/shardkv/internal/version"
	"github.com/shardkv/shardkv/proxy"
	"github.com/shardkv/shardkv/rangemap"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "shardkv-proxy:", err)
		os.Exit(1)
	}
}

// aliases are the proxy's directives of a config file beyond config.Redis.
var aliases = append([]config.Alias{
	// redis.conf's timeout is the idle time in seconds after which Redis
	// closes a client, 0 for never; the proxy's is the bound on each request
	// to a node. A Redis line copied over must not become a request
	// timeout of 0 or 300 ns.
	{Name: "timeout", Flag: "timeout", Value: func(arg, _ string) (string, error) {
		if _, err := strconv.Atoi(arg); err == nil {
			return "", fmt.Errorf("timeout %q: the proxy's timeout bounds each request to a shard node and needs a unit (5s, 500ms); Redis's client idle timeout has no counterpart", arg)
		}
		return arg, nil
	}},
}, config.Redis...)

func run(args []string) error {
	cfg := proxy.DefaultConfig()
	fs := flag.NewFlagSet("shardkv-proxy", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	fs.StringVar(&cfg.MapFile, "map", "", "range map JSON file (the embedded default map when empty)")
	etcdEndpoints := fs.String("etcd", "", "read the range map from etcd at these comma-separated `ENDPOINTS` and follow its changes (instead of -map)")
	etcdWatch := fs.Bool("etcd-watch", true, "with -etcd, follow the map's changes with a watch; when false the map is read at start and again only when a node answers with a newer epoch (or on SIGHUP)")
	clusterName := fs.String("cluster", etcdmap.DefaultCluster, "cluster `NAME` whose map is read from etcd (/shardkv/NAME/map)")
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with")
	fs.StringVar(&cfg.NodePassword, "node-password", "", "password sent to the shard nodes")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout to a shard node")
	fs.IntVar(&cfg.ConnsPerNode, "conns-per-node", cfg.ConnsPerNode, "pipelined connections per node and protocol")
	fs.BoolVar(&cfg.ReadFromReplicas, "read-from-replicas", false, "serve every client's single-key read-only commands from the shard's replicas, as READONLY does for one client; a replica that is down, not synced or behind by more than -replica-max-lag writes leaves the read to the primary")
	fs.Int64Var(&cfg.ReplicaMaxLag, "replica-max-lag", cfg.ReplicaMaxLag, "how many writes a replica may be behind its primary and still serve reads")
	fs.IntVar(&cfg.MaxClients, "maxclients", cfg.MaxClients, "maximum connected clients")
	fs.StringVar(&cfg.OutputBufferLimit, "client-output-buffer-limit", "", "output buffer limits at start, as CONFIG SET takes them (\"normal 0 0 0 pubsub 32mb 8mb 60\"); empty: Redis's defaults")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (off when empty)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this address at /metrics, e.g. 127.0.0.1:9120 (off when empty)")
	procs := fs.Int("procs", 0, "threads running Go code at once (GOMAXPROCS); 0: half of the CPUs, at least 1")
	configFile := fs.String("config", "", "read settings from `FILE` in redis.conf syntax (port, bind, requirepass, maxclients, loglevel, client-output-buffer-limit, or these flags' names); flags given here override it")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("shardkv-proxy"))
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v (a config file is given with -config FILE)", fs.Args())
	}
	if *configFile != "" {
		if err := config.Load(fs, *configFile, aliases, "config", "version"); err != nil {
			return fmt.Errorf("-config: %w", err)
		}
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", *logLevel)
	}
	if *logFormat != "text" && *logFormat != "json" {
		return fmt.Errorf("-log-format %q: want text or json", *logFormat)
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "shardkv-proxy",
		Level:      level,
		JSONFormat: *logFormat == "json",
		Output:     os.Stderr,
	})
	cfg.Logger = log
	if *procs < 0 {
		return fmt.Errorf("-procs %d: want 0 (half of the CPUs) or a count", *procs)
	}
	runtime.GOMAXPROCS(proxyProcs(*procs, os.Getenv("GOMAXPROCS") != "", runtime.GOMAXPROCS(0)))
	log.Debug("threads", "procs", runtime.GOMAXPROCS(0))

	if *pprofAddr != "" {
		if err := checkLoopback(*pprofAddr); err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
		log.Info("pprof listening", "addr", ln.Addr().String())
		go http.Serve(ln, http.DefaultServeMux)
	}

	var srv *proxy.Server
	var follow func() // the etcd watch, started once srv runs
	if *etcdEndpoints != "" {
		if cfg.MapFile != "" {
			return errors.New("-etcd and -map both name the map; use one")
		}
		cli, err := etcdmap.Dial(*etcdEndpoints)
		if err != nil {
			return fmt.Errorf("-etcd: %w", err)
		}
		defer cli.Close()
		m, err := firstMap(cli, *clusterName, log)
		if err != nil {
			return err
		}
		cfg.Map = m
		cfg.MapSource = func(ctx context.Context) (*rangemap.Map, error) {
			m, err := etcdmap.Get(ctx, cli, *clusterName)
			return m, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		follow = func() {
			etcdmap.Watch(ctx, cli, *clusterName, m.Epoch, log.Named("etcd"), func(m *rangemap.Map) {
				if err := srv.ApplyMap(m); err != nil {
					log.Error("new map from etcd refused; keeping the current map", "epoch", m.Epoch, "error", err)
				}
			})
		}
		log.Info("range map read from etcd", "cluster", *clusterName, "epoch", m.Epoch)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	if follow != nil && *etcdWatch {
		go follow()
	}
	if *metricsAddr != "" {
		_, stopMetrics, err := metrics.Serve(*metricsAddr, log, srv.Collector())
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, proxy.ErrServerClosed) {
				return nil
			}
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := srv.Reload(); err != nil {
					log.Error("map reload failed; keeping the current map", "error", err)
				} else {
					log.Info("map reloaded", "by", "SIGHUP")
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(ctx)
			cancel()
			<-errc
			return err
		}
	}
}

// firstMap reads the map from etcd at start, retrying for a while: the
// proxy cannot serve without one.
func firstMap(cli *clientv3.Client, cluster string, log hclog.Logger) (*rangemap.Map, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := etcdmap.Get(ctx, cli, cluster)
		cancel()
		if err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("-etcd: %w", err)
		}
		log.Warn("no range map from etcd yet; retrying", "error", err)
		time.Sleep(time.Second)
	}
}

// proxyProcs is the GOMAXPROCS the proxy runs with: the -procs flag, else
// the GOMAXPROCS environment variable's, else half of the available CPUs.
//
// Why not all of them: the proxy's work is system calls on sockets, with
// many goroutines that each wake, do a few µs of work and park. With an
// idle P the runtime wakes another thread to look for work every time a
// goroutine becomes ready, and that thread mostly finds none and sleeps
// again: on 2 CPUs at redis-benchmark -c 50 -P 1, GOMAXPROCS 1 instead of
// 2 took the proxy's CPU per request from 12.3 to 10.7 µs and raised
// throughput at -P 1 by 3-18% in six paired runs, and at -P 16 in three
// of four (docs/BENCHMARKS.md). The cores left over serve the kernel's
// network work, the shard nodes and the clients, which on a shared
// machine compete with it.
func proxyProcs(flag int, fromEnv bool, current int) int {
	switch {
	case flag > 0:
		return flag
	case fromEnv:
		return current
	}
	return max(1, current/2)
}

// checkLoopback refuses to expose pprof beyond the machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address; pprof is served on 127.0.0.1 only", addr)
	}
	return nil
}
