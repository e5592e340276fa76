package etcdmap

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReadMoveState reads the "state" field of the move record at
// /shardkv/<cluster>/moves/<id>: what a source node whose fence of move id
// outlived its timeout decides by (docs/RESHARDING.md). found is false
// when there is no such record.
func ReadMoveState(ctx context.Context, cli *clientv3.Client, cluster, id string) (state string, found bool, err error) {
	key := Prefix(cluster) + "moves/" + id
	r, err := cli.Get(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("etcd: reading %s: %w", key, err)
	}
	if len(r.Kvs) == 0 {
		return "", false, nil
	}
	var rec struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &rec); err != nil {
		return "", false, fmt.Errorf("etcd: %s: %w", key, err)
	}
	return rec.State, true, nil
}
