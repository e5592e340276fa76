// Command shardkv-proxy is the client-facing server of shardkv: it speaks
// the Redis protocol and routes every key to the shard node of its range
// map. Flags are documented in docs/INTERNALS.md.
//
// SIGHUP reloads the map file (address and size changes only); SIGTERM and
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
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/proxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shardkv-proxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := proxy.DefaultConfig()
	fs := flag.NewFlagSet("shardkv-proxy", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	fs.StringVar(&cfg.MapFile, "map", "", "range map JSON file (the embedded default map when empty)")
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with")
	fs.StringVar(&cfg.NodePassword, "node-password", "", "password sent to the shard nodes")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout to a shard node")
	fs.IntVar(&cfg.ConnsPerNode, "conns-per-node", cfg.ConnsPerNode, "pipelined connections per node and protocol")
	fs.IntVar(&cfg.MaxClients, "maxclients", cfg.MaxClients, "maximum connected clients")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (off when empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
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

	srv, err := proxy.New(cfg)
	if err != nil {
		return err
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
