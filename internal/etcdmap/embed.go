package etcdmap

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func zapNop() *zap.Logger { return zap.NewNop() }

// Embedded is a single-member etcd run inside a shardkv process.
type Embedded struct {
	etcd *embed.Etcd
	// Endpoint is the client URL (http://127.0.0.1:port).
	Endpoint string
	// The ports it listens on, to restart it on the same ones.
	ClientPort, PeerPort int
}

// StartEmbedded starts a single-member etcd whose data lives in dir/etcd,
// listening on free loopback ports, and waits until it serves. Its own log
// goes to dir/etcd.log.
func StartEmbedded(dir string) (*Embedded, error) { return StartEmbeddedOn(dir, 0, 0) }

// StartEmbeddedOn is StartEmbedded on given loopback ports (0: a free one),
// so that a restarted member is found where its clients look.
func StartEmbeddedOn(dir string, clientPort, peerPort int) (*Embedded, error) {
	cfg := embed.NewConfig()
	cfg.Name = "shardkv"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	var err error
	ports := [2]int{clientPort, peerPort}
	for i := range ports {
		if ports[i] != 0 {
			continue
		}
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A restart on the same data directory finds new ports: the member's
	// advertised peer URL must follow, which a single member may do.
	cfg.ForceNewCluster = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after 60s (see %s)", cfg.LogOutputs[0])
	}
	return &Embedded{etcd: e, Endpoint: client.String(), ClientPort: ports[0], PeerPort: ports[1]}, nil
}

// Close stops the member.
func (e *Embedded) Close() { e.etcd.Close() }

// freePort asks the OS for a free loopback port. The port is free when
// returned; another process could take it before etcd binds, which at
// worst fails the start with a clear error.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
