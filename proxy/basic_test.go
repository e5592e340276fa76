package proxy

import (
	"context"
	"testing"
)

func TestSmokeRealNodes(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 2})
	forEachProto(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		r := c.client(proto)
		if err := r.Set(ctx, "a", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		t.Log(r.MGet(ctx, "a", "b", "c", "d").Result())
		t.Log(r.Info(ctx).Result())
	})
}
