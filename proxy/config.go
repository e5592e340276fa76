package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/internal/conncmd"
	"github.com/shardkv/shardkv/rangemap"
)

// Config holds the settings of a proxy. Start from DefaultConfig and change
// what you need; New validates it.
type Config struct {
	// Addr is the host:port ListenAndServe listens on. The default binds the
	// loopback interface only.
	Addr string
	// Map is the range map. When nil, MapFile is loaded; when both are
	// empty the embedded default map (three nodes on 127.0.0.1:7001-7003)
	// is used. Setting both is an error.
	Map *rangemap.Map
	// MapFile is the range map's JSON file. Reload (SIGHUP, SHARD.RELOAD)
	// reads it again; a proxy without one has nothing to reload.
	MapFile string
	// MapSource, when set, is where the map lives (etcd): Reload reads it
	// from there and applies it when its epoch is newer (ApplyMap). Map
	// holds the map read at start.
	MapSource func(ctx context.Context) (*rangemap.Map, error)
	// RequirePass, when not empty, makes clients AUTH (or HELLO ... AUTH)
	// with this password, user "default", before any other command.
	RequirePass string
	// NodePassword is sent with AUTH to every shard node on connect.
	NodePassword string
	// Timeout bounds dialing a node and each request to it: a node that
	// does not answer in time is reported unavailable and its connection
	// is replaced.
	Timeout time.Duration
	// ConnsPerNode is the number of pipelined connections per node and
	// protocol version, shared by all clients. One is the default: every
	// client's requests to a node then share one stream, so they leave and
	// come back in the largest batches, which costs the node and the proxy
	// the fewest system calls and wake-ups per request (twemproxy's
	// server_connections is 1 by default too). More connections let a node
	// use more cores for the proxy's traffic.
	ConnsPerNode int
	// MaxClients caps connected clients; one more gets Redis's "max number
	// of clients reached" and is disconnected.
	MaxClients int
	// OutputBufferLimit is client-output-buffer-limit at start, in CONFIG
	// SET's syntax ("normal 0 0 0 pubsub 32mb 8mb 60"): the classes it names
	// replace Redis's defaults. Empty keeps the defaults.
	OutputBufferLimit string
	// ReadFromReplicas serves the single-key read-only commands of every
	// client from the shard's replicas, as READONLY does for one client
	// (replicas.go).
	ReadFromReplicas bool
	// ReplicaMaxLag is how many writes (offset units) a replica may be
	// behind its primary and still serve reads.
	ReplicaMaxLag int64
	// Logger receives the proxy's logs; nil discards them.
	Logger hclog.Logger
}

// Defaults, as documented in docs/INTERNALS.md.
const (
	DefaultAddr         = "127.0.0.1:6380"
	DefaultTimeout      = 5 * time.Second
	DefaultConnsPerNode = 1
	DefaultMaxClients   = 10000
	// DefaultReplicaMaxLag: a replica this many writes behind its primary
	// (a few milliseconds of a busy shard) still serves reads.
	DefaultReplicaMaxLag = 1000
)

// DefaultConfig returns the documented defaults: 127.0.0.1:6380, the
// embedded map, no passwords, a 5s timeout, 1 connection per node and
// protocol, and 10000 clients.
func DefaultConfig() Config {
	return Config{
		Addr:          DefaultAddr,
		Timeout:       DefaultTimeout,
		ConnsPerNode:  DefaultConnsPerNode,
		MaxClients:    DefaultMaxClients,
		ReplicaMaxLag: DefaultReplicaMaxLag,
	}
}

// Validate explains, in one error, what is wrong with the configuration. It
// does not read the map file; New does.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if c.Map != nil && c.MapFile != "" {
		errs = append(errs, errors.New("both a map and a map file are set; use one"))
	}
	if c.Map != nil {
		if err := c.Map.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v must be positive", c.Timeout))
	}
	if c.ConnsPerNode < 1 || c.ConnsPerNode > 64 {
		errs = append(errs, fmt.Errorf("conns per node %d must be in 1..64", c.ConnsPerNode))
	}
	if c.MaxClients < 1 {
		errs = append(errs, fmt.Errorf("maxclients %d must be at least 1", c.MaxClients))
	}
	if c.OutputBufferLimit != "" {
		if reason := conncmd.NewOutputLimits().Set([]byte(c.OutputBufferLimit)); reason != "" {
			errs = append(errs, fmt.Errorf("client-output-buffer-limit %q: %s", c.OutputBufferLimit, reason))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("proxy: invalid config: %w", errors.Join(errs...))
}

// loadMap returns the map the configuration names.
func (c Config) loadMap() (*rangemap.Map, error) {
	switch {
	case c.Map != nil:
		m := *c.Map
		m.Shards = append([]rangemap.Shard(nil), c.Map.Shards...)
		return &m, nil
	case c.MapFile != "":
		return rangemap.Load(c.MapFile)
	default:
		return rangemap.Default(), nil
	}
}
