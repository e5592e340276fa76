package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// nodePasswordFlags are --node-password and --node-password-file, for the
// commands that talk to the nodes themselves.
type nodePasswordFlags struct {
	pw, file string
}

func (f *nodePasswordFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.pw, "node-password", "", "the nodes' password (their -requirepass)")
	fs.StringVar(&f.file, "node-password-file", "", "read the nodes' password from `FILE` (first line)")
}

// password is the flags' password; without either, the local cluster's
// (DIR/node-password) when no etcd was named.
func (f *nodePasswordFlags) password(ef *etcdFlags) (string, error) {
	if f.file != "" {
		data, err := os.ReadFile(f.file)
		if err != nil {
			return "", err
		}
		pw, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		return pw, nil
	}
	if f.pw == "" && ef.endpoints == "" {
		if data, err := os.ReadFile(filepath.Join(ef.data, secretFile)); err == nil {
			return strings.TrimSpace(string(data)), nil
		}
	}
	return f.pw, nil
}

// copyState is one copy of a shard in status's copies table: what the
// node says in INFO replication.
type copyState struct {
	shard, addr string
	mapRole     string // primary or replica, as the map says
	info        map[string]string
	err         error
}

// printCopies lists every copy of each shard of the etcd map that has
// replicas: its role (as the node says it), its link to its primary, its
// offset and how far it is behind the primary (in writes, and the seconds
// since the primary's last acknowledgement from it). A map without
// replicas prints nothing.
func printCopies(ctx context.Context, ef *etcdFlags, pw string, stdout io.Writer) {
	cli, err := ef.dial()
	if err != nil {
		return
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	snap, err := etcdmap.Read(rctx, cli, ef.cluster)
	cancel()
	if err != nil || !hasReplicas(snap.Map) {
		return
	}
	var copies []copyState
	for _, s := range snap.Map.Shards {
		if len(s.Replicas) == 0 {
			continue
		}
		copies = append(copies, copyState{shard: s.Name, addr: s.Addr(), mapRole: "primary"})
		for _, a := range s.ReplicaAddrs() {
			copies = append(copies, copyState{shard: s.Name, addr: a, mapRole: "replica"})
		}
	}
	for i := range copies {
		copies[i].info, copies[i].err = nodeReplInfo(ctx, copies[i].addr, pw)
	}
	fmt.Fprintln(stdout, "copies:")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tADDRESS\tMAP ROLE\tROLE\tLINK\tOFFSET\tLAG WRITES\tLAG SECONDS\tHEALTH")
	var primary copyState
	for _, c := range copies {
		if c.mapRole == "primary" {
			primary = c
		}
		role, link, offset, lagW, lagS, health := "-", "-", "-", "-", "-", "up"
		switch {
		case c.err != nil:
			health = "down: " + c.err.Error()
		case c.info["role"] == "master":
			role, offset = "primary", c.info["master_repl_offset"]
			if c.mapRole != "primary" {
				health = "not the map's role"
			}
		default:
			role, offset = "replica", c.info["slave_repl_offset"]
			link = c.info["master_link_status"]
			if c.info["repl_synced"] != "1" {
				link += ",syncing"
			}
			lagW, lagS = replicaLag(primary, c)
			if c.mapRole != "replica" {
				health = "not the map's role"
			} else if want := primary.addr; c.info["master_host"]+":"+c.info["master_port"] != want {
				health = "follows " + c.info["master_host"] + ":" + c.info["master_port"]
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.shard, c.addr, c.mapRole, role, link, offset, lagW, lagS, health)
	}
	_ = tw.Flush()
}

func hasReplicas(m *rangemap.Map) bool {
	for _, s := range m.Shards {
		if len(s.Replicas) > 0 {
			return true
		}
	}
	return false
}

// replicaLag is how far the replica r is behind primary: the primary's
// offset minus the replica's, and the primary's lag field for it (seconds
// since its last acknowledgement), "-" where the primary did not say.
func replicaLag(primary, r copyState) (writes, seconds string) {
	writes, seconds = "-", "-"
	if primary.err != nil || primary.info["role"] != "master" {
		return
	}
	p, err1 := strconv.ParseInt(primary.info["master_repl_offset"], 10, 64)
	o, err2 := strconv.ParseInt(r.info["slave_repl_offset"], 10, 64)
	if err1 == nil && err2 == nil {
		writes = strconv.FormatInt(p-o, 10)
	}
	host, port, _ := strings.Cut(r.addr, ":")
	for k, v := range primary.info {
		if !strings.HasPrefix(k, "slave") || !strings.Contains(v, "ip="+host+",port="+port+",") {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if s, ok := strings.CutPrefix(kv, "lag="); ok {
				seconds = s
			}
		}
	}
	return
}

// nodeReplInfo reads the INFO replication fields of the node at addr.
func nodeReplInfo(ctx context.Context, addr, pw string) (map[string]string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: pw, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer rdb.Close()
	text, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	return parseInfoSections(text)["replication"], nil
}
