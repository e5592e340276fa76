package etcdmap

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardkv/shardkv/rangemap"
)

// The states of a node in the node list (docs/RESHARDING.md, "The nodes").
const (
	NodeActive   = "active"
	NodeDraining = "draining"
	NodeRemoved  = "removed"
)

// Node is one entry of the node list at /shardkv/<cluster>/nodes/<name>.
type Node struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"` // host:port, as the map names it
	State string `json:"state"`
}

// NodesPrefix holds the node list, one key per node.
func NodesPrefix(cluster string) string { return Prefix(cluster) + "nodes/" }

// ReadNodes reads the node list.
func ReadNodes(ctx context.Context, cli *clientv3.Client, cluster string) ([]Node, error) {
	r, err := cli.Get(ctx, NodesPrefix(cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", kv.Key, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// nodesFromMap is the node list a map implies: one node per address,
// named after its first shard entry.
func nodesFromMap(m *rangemap.Map) []Node {
	var out []Node
	seen := map[string]bool{}
	for _, s := range m.Shards {
		if !seen[s.Addr()] {
			seen[s.Addr()] = true
			out = append(out, Node{Name: s.Name, Addr: s.Addr(), State: NodeActive})
		}
	}
	return out
}

// nodes returns the node list, recording the one the map implies when
// the list is empty, and adding any address of the map the list lacks.
func (l *Leader) nodes(ctx context.Context, m *rangemap.Map) ([]Node, error) {
	list, err := ReadNodes(ctx, l.cli, l.cluster)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	names := map[string]bool{}
	for _, n := range list {
		have[n.Addr] = true
		names[n.Name] = true
	}
	var ops []clientv3.Op
	for _, n := range nodesFromMap(m) {
		if have[n.Addr] {
			continue
		}
		for names[n.Name] {
			n.Name += "-n"
		}
		names[n.Name] = true
		list = append(list, n)
		data, _ := json.Marshal(n)
		ops = append(ops, clientv3.OpPut(NodesPrefix(l.cluster)+n.Name, string(data)))
	}
	if len(ops) > 0 {
		if err := l.record(ctx, ops...); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// putNode is the operation that records n.
func (l *Leader) putNode(n Node) clientv3.Op {
	data, _ := json.Marshal(n)
	return clientv3.OpPut(NodesPrefix(l.cluster)+n.Name, string(data))
}

// findNode returns the node named name, or whose address is name.
func findNode(list []Node, name string) (Node, bool) {
	for _, n := range list {
		if n.Name == name || n.Addr == name {
			return n, true
		}
	}
	return Node{}, false
}

// hostPort splits an address into the map's host and port.
func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: port is not in 1..65535", addr)
	}
	return h, port, nil
}

// nodeRanges returns the [start,end) spans of the map's entries on addr,
// adjacent entries joined, in order.
func nodeRanges(m *rangemap.Map, addr string) [][2]float64 {
	var out [][2]float64
	for _, s := range m.Shards {
		if s.Addr() != addr {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == s.Start {
			out[n-1][1] = s.End
			continue
		}
		out = append(out, [2]float64{s.Start, s.End})
	}
	return out
}
