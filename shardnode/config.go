package shardnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/shardkv/shardkv/bitcask"
	"github.com/shardkv/shardkv/internal/conncmd"
)

// Config holds the settings of a shard node. Start from DefaultConfig and
// change what you need; New validates it.
type Config struct {
	// Addr is the host:port ListenAndServe listens on. The default binds the
	// loopback interface only: exposing a node is an explicit choice.
	Addr string
	// Dir is the data directory: the Bitcask files, assignment.json and
	// indexes.json. It is created if missing.
	Dir string
	// Sync is the appendfsync policy; CONFIG SET appendfsync changes it at
	// runtime.
	Sync bitcask.SyncPolicy
	// RequirePass, when not empty, makes every command but AUTH, HELLO,
	// QUIT and RESET wait for AUTH with this password (user "default").
	RequirePass string
	// MaxClients caps the connected clients; one more gets Redis's
	// "max number of clients reached" and is disconnected. A proxy's
	// connections (a SHARD.ASSIGN accepted) do not count: they have a
	// limit of MaxClients of their own (admission.go).
	MaxClients int
	// ProxyReserve is how many connections may be admitted past MaxClients
	// at a time, on probation, for a proxy's handshake: they may send only
	// AUTH, HELLO and SHARD.ASSIGN, within 10 s, so that other clients
	// filling MaxClients cannot lock the proxies out. 0 refuses every
	// connection past MaxClients at accept, as Redis does.
	ProxyReserve int
	// StrictIndexes refuses writes to an index that INDEX.CREATE never
	// created. SHARD.ASSIGN ... STRICT 0|1 overrides it at runtime.
	StrictIndexes bool
	// MaxFileSize is the size at which Bitcask starts a new data file; 0
	// keeps Bitcask's default.
	MaxFileSize int64
	// ReadCacheBytes is memory for recently read values, checked by
	// sequence number; 0 (the default) turns the cache off. Bitcask serves
	// reads from its files' read-only mappings, which reach the page cache
	// without a system call, and measured faster than this cache (a map
	// lookup and a copy per GET) and without its memory; the cache can
	// still help where the data files do not fit in the page cache.
	ReadCacheBytes int64
	// EventLoops is how many event loops serve the connections (see
	// loop_linux.go): 0 picks one per four CPUs, at least one; -1 serves
	// each connection with a goroutine of its own instead.
	EventLoops int
	// OutputBufferLimit is client-output-buffer-limit at start, in CONFIG
	// SET's syntax ("normal 0 0 0 pubsub 32mb 8mb 60"): the classes it names
	// replace Redis's defaults. Empty keeps the defaults.
	OutputBufferLimit string
	// MoveState, when not nil, reads the recorded state of move id (the
	// "state" field of /shardkv/<cluster>/moves/<id> in etcd; found is
	// false when there is no such move): a fence of a move held past its
	// timeout asks it whether the move was aborted (fence.go). Nil (no
	// etcd): such a fence stays until SHARD.UNFENCE or an assignment
	// without the range.
	MoveState func(ctx context.Context, id string) (state string, found bool, err error)
	// ReplicaOf, when not empty, starts the node as a replica of the
	// primary at this host:port (docs/REPLICATION.md).
	ReplicaOf string
	// MinAcks is how many replicas must hold a write before its reply
	// goes out (0: asynchronous, as Redis). REPL.ROLE ... MINACKS changes it.
	MinAcks int
	// MinAcksTimeout is how long a write's reply waits for MinAcks
	// acknowledgements before it becomes NOREPLICAS; 0 is 1 s.
	MinAcksTimeout time.Duration
	// ReplMaxLag is how recent a replica's last acknowledgement must be
	// for it to count as good (Redis's min-replicas-max-lag); 0 is 10 s.
	ReplMaxLag time.Duration
	// RoleGate: the node takes writes only once the controller confirmed
	// its role (REPL.ROLE) and while the lease deadline set by
	// SetLeaseDeadline is ahead: a node of a cluster with failover.
	RoleGate bool
	// Logger receives the node's logs; nil discards them.
	Logger hclog.Logger
	// Storage, when not nil, adjusts the Bitcask options after the fields
	// above were applied (tests shorten merge and sweep intervals with it).
	Storage func(*bitcask.Options)
}

// Defaults, as documented in docs/INTERNALS.md.
const (
	DefaultAddr         = "127.0.0.1:7001"
	DefaultDir          = "data/node"
	DefaultMaxClients   = 10000
	DefaultProxyReserve = 64
	DefaultReadCache    = 0
)

// DefaultConfig returns the documented defaults: 127.0.0.1:7001, data/node,
// appendfsync everysec, no password, 10000 clients and 64 more for proxies'
// handshakes, indexes created on first write, no read cache.
func DefaultConfig() Config {
	return Config{
		Addr:           DefaultAddr,
		Dir:            DefaultDir,
		Sync:           bitcask.SyncEverySec,
		MaxClients:     DefaultMaxClients,
		ProxyReserve:   DefaultProxyReserve,
		ReadCacheBytes: DefaultReadCache,
	}
}

// Validate explains, in one error, what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is empty"))
	}
	switch c.Sync {
	case bitcask.SyncAlways, bitcask.SyncEverySec, bitcask.SyncNo:
	default:
		errs = append(errs, fmt.Errorf("appendfsync policy %d is unknown", int(c.Sync)))
	}
	if c.MaxClients < 1 {
		errs = append(errs, fmt.Errorf("maxclients %d must be at least 1", c.MaxClients))
	}
	if c.ProxyReserve < 0 {
		errs = append(errs, fmt.Errorf("proxy reserve %d is negative", c.ProxyReserve))
	}
	if c.ReadCacheBytes < 0 {
		errs = append(errs, fmt.Errorf("read cache size %d is negative", c.ReadCacheBytes))
	}
	if c.EventLoops < -1 {
		errs = append(errs, fmt.Errorf("event loops %d: want -1, 0 (automatic) or a count", c.EventLoops))
	}
	if c.OutputBufferLimit != "" {
		if reason := conncmd.NewOutputLimits().Set([]byte(c.OutputBufferLimit)); reason != "" {
			errs = append(errs, fmt.Errorf("client-output-buffer-limit %q: %s", c.OutputBufferLimit, reason))
		}
	}
	if c.MaxFileSize < 0 {
		errs = append(errs, fmt.Errorf("max file size %d is negative", c.MaxFileSize))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("shardnode: invalid config: %w", errors.Join(errs...))
}

// eventLoops is the number of event loops the configuration asks for; 0
// when connections get goroutines of their own.
func (c Config) eventLoops() int {
	switch {
	case c.EventLoops < 0:
		return 0
	case c.EventLoops > 0:
		return c.EventLoops
	}
	return (runtime.GOMAXPROCS(0) + 3) / 4
}
