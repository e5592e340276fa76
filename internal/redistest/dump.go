package redistest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Dump is every key of every database on the server c reaches (keys for
// which in reports true), with its type, absolute expiry time and
// contents, as text keyed "db/key": two servers hold the same data when
// their dumps are equal. It runs on one connection of c.
func Dump(t testing.TB, c *redis.Client, in func(string) bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := c.Conn()
	defer conn.Close()
	out := map[string]string{}
	for db := 0; db < 16; db++ {
		if err := conn.Select(ctx, db).Err(); err != nil {
			t.Fatal(err)
		}
		keys, err := conn.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if !in(k) {
				continue
			}
			typ := conn.Type(ctx, k).Val()
			exp := conn.Do(ctx, "PEXPIRETIME", k).Val()
			var v any
			switch typ {
			case "string":
				v = conn.Get(ctx, k).Val()
			case "hash":
				var fs []string
				for f, x := range conn.HGetAll(ctx, k).Val() {
					fs = append(fs, f+"="+x)
				}
				slices.Sort(fs)
				v = fs
			case "set":
				ms := conn.SMembers(ctx, k).Val()
				slices.Sort(ms)
				v = ms
			case "zset":
				v = conn.ZRangeWithScores(ctx, k, 0, -1).Val()
			case "list":
				v = conn.LRange(ctx, k, 0, -1).Val()
			}
			out[fmt.Sprintf("%d/%s", db, k)] = fmt.Sprintf("%s %v %v", typ, exp, v)
		}
	}
	// The connection goes back to c's pool: in database 0, as it came.
	if err := conn.Select(ctx, 0).Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
