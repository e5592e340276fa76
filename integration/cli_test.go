package integration

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/shardkv/shardkv/rangemap"
)

// The row escaping of README.md, written here independently of the CLI so
// the test checks the documented format rather than the CLI against itself.
var (
	keyEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "|", `\|`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
)

// unescapeRow reads a `cat` row back: the key ends at the first unescaped
// '|'. It fails the test on anything the README does not allow.
func unescapeRow(t *testing.T, row string) (key, value string) {
	t.Helper()
	var b strings.Builder
	var k string
	inKey := true
	for i := 0; i < len(row); i++ {
		ch := row[i]
		switch {
		case ch == '\\':
			if i+1 == len(row) {
				t.Fatalf("row %q ends in a backslash", row)
			}
			i++
			switch row[i] {
			case '\\':
				b.WriteByte('\\')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case '|':
				if !inKey {
					t.Fatalf("row %q: cat escaped a '|' in a value", row)
				}
				b.WriteByte('|')
			default:
				t.Fatalf("row %q: undocumented escape \\%c", row, row[i])
			}
		case ch == '|' && inKey:
			k = b.String()
			b.Reset()
			inKey = false
		case ch == '\n' || ch == '\r':
			t.Fatalf("row %q holds a raw line break", row)
		default:
			b.WriteByte(ch)
		}
	}
	if inKey {
		t.Fatalf("row %q has no separator", row)
	}
	return k, b.String()
}

// loadCatRows makes n rows whose keys and values exercise the format: '|' in
// values and keys, newlines, CR, backslashes, empty and long values, binary.
func loadCatRows(n int) map[string]string {
	rows := make(map[string]string, n)
	special := []string{
		"", "a|b", "|", "||x||", "line1\nline2", "crlf\r\n", "\\", `C:\new\table`, `\n literally`,
		"tab\there", "ünïcødé ✓", "\x00\x01\xff", strings.Repeat("long|", 1000), " spaces ",
	}
	specialKeys := []string{"key|bar", "key\nnewline", `key\backslash`, "key with spaces", "ключ", "key:colon", "k\r"}
	for i, k := range specialKeys {
		rows[k] = fmt.Sprintf("special-key-%d", i)
	}
	for i := 0; len(rows) < n; i++ {
		v := fmt.Sprintf("value-%d", i)
		if i%7 == 0 {
			v = special[(i/7)%len(special)] + fmt.Sprint(i%3)
		}
		if i%11 == 0 {
			v = special[(i/11)%len(special)]
		}
		rows[fmt.Sprintf("k%05d", i)] = v
	}
	return rows
}

func encodeRows(rows map[string]string) []byte {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(keyEscaper.Replace(k))
		b.WriteByte('|')
		b.WriteString(valueEscaper.Replace(rows[k]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// checkCat runs `shardkv cat index` and checks that it prints every row of
// want exactly once and nothing else.
func checkCat(t *testing.T, c *Cluster, index string, want map[string]string) string {
	t.Helper()
	res := c.RunCLI(t, nil, "cat", index)
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("shardkv cat %s: exit %d, stderr %q", index, res.Code, res.Stderr)
	}
	got := make(map[string]string, len(want))
	for _, row := range strings.SplitAfter(res.Stdout, "\n") {
		if row == "" {
			continue
		}
		if !strings.HasSuffix(row, "\n") {
			t.Fatalf("cat %s: last row %q lacks its newline", index, row)
		}
		k, v := unescapeRow(t, strings.TrimSuffix(row, "\n"))
		if _, dup := got[k]; dup {
			t.Fatalf("cat %s printed key %q twice", index, k)
		}
		got[k] = v
	}
	if len(got) != len(want) {
		t.Errorf("cat %s printed %d keys, want %d", index, len(got), len(want))
	}
	bad := 0
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("cat %s: key %q missing", index, k)
		} else if g != v {
			t.Errorf("cat %s: key %q = %q, want %q", index, k, g, v)
		}
		if !ok || g != v {
			if bad++; bad > 10 {
				t.FailNow()
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("cat %s printed key %q that is not in the index", index, k)
		}
	}
	return res.Stdout
}

// checkStored checks with go-redis that every row is stored as index:key.
func checkStored(t *testing.T, rdb *redis.Client, index string, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, n)
		for i, k := range keys[:n] {
			cmds[i] = pipe.Get(ctx, index+":"+k)
		}
		_, _ = pipe.Exec(ctx)
		for i, cmd := range cmds {
			k := keys[i]
			if got, err := cmd.Result(); err != nil || got != want[k] {
				t.Fatalf("GET %s:%q = %q, %v; want %q", index, k, got, err, want[k])
			}
		}
		keys = keys[n:]
	}
}

// TestLoadCat loads 10,000 rows through the CLI and prints them back: every
// key once, every value intact, and load(cat(x)) copies an index exactly.
func TestLoadCat(t *testing.T) {
	c := StartCluster(t, Options{StrictIndexes: true})
	rdb := c.Client()
	ctx := context.Background()
	rows := loadCatRows(10000)

	// Neighbours that a sloppy MATCH or prefix would pick up.
	for _, idx := range []string{"idxx", "id", "other"} {
		must(t, rdb.Do(ctx, "INDEX.CREATE", idx).Err())
	}
	for _, k := range []string{"idxx:k00001", "id:k00001", "other:idx:k00001", "idx", "idxk00001"} {
		must(t, rdb.Set(ctx, k, "neighbour", 0).Err())
	}

	res := c.RunCLI(t, encodeRows(rows), "load", "idx", "--create")
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("shardkv load idx --create: exit %d, stderr %q, stdout %q", res.Code, res.Stderr, res.Stdout)
	}
	if want := "10000 rows stored in index idx\n"; res.Stdout != want {
		t.Fatalf("shardkv load stdout = %q, want %q", res.Stdout, want)
	}
	checkStored(t, rdb, "idx", rows)
	if n := indexCounts(t, rdb)["idx"]; n != 10000 {
		t.Fatalf("INDEX.LIST idx = %d, want 10000", n)
	}

	out := checkCat(t, c, "idx", rows)

	// cat's output loads back into another index unchanged.
	res = c.RunCLI(t, []byte(out), "load", "copy", "--create")
	if res.Code != 0 || res.Stdout != "10000 rows stored in index copy\n" {
		t.Fatalf("load copy < cat idx: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	checkStored(t, rdb, "copy", rows)
	checkCat(t, c, "copy", rows)
}

// TestLoadRejects checks that load reports every bad row with its line
// number, stores the good ones, and exits non-zero.
func TestLoadRejects(t *testing.T) {
	c := StartCluster(t, Options{StrictIndexes: true})
	rdb := c.Client()

	input := strings.Join([]string{
		"good1|v1",            // 1
		"no separator",        // 2
		"|empty key",          // 3
		`bad\escape|v`,        // 4
		"good2|a|b",           // 5
		"",                    // 6
		"good3|",              // 7
		`good4|x\ny\\z`,       // 8
		"crlf|v\r",            // 9 (a CRLF line end)
		`trailing|backslash\`, // 10
	}, "\n") + "\n"
	res := c.RunCLI(t, []byte(input), "load", "rej", "--create")
	if res.Code == 0 {
		t.Fatalf("load with bad rows exited 0")
	}
	if want := "5 rows stored in index rej\n"; res.Stdout != want {
		t.Fatalf("stdout = %q, want %q", res.Stdout, want)
	}
	reported := map[int]bool{}
	for _, l := range lines(res.Stderr) {
		var n int
		if _, err := fmt.Sscanf(l, "line %d:", &n); err == nil {
			reported[n] = true
		}
	}
	for _, n := range []int{2, 3, 4, 6, 10} {
		if !reported[n] {
			t.Errorf("line %d was rejected but not reported; stderr:\n%s", n, res.Stderr)
		}
	}
	for _, n := range []int{1, 5, 7, 8, 9} {
		if reported[n] {
			t.Errorf("good line %d reported as rejected; stderr:\n%s", n, res.Stderr)
		}
	}
	checkStored(t, rdb, "rej", map[string]string{"good1": "v1", "good2": "a|b", "good3": "", "good4": "x\ny\\z", "crlf": "v"})

	// Rows the server refuses: an index never created, in strict mode.
	res = c.RunCLI(t, []byte("a|1\nb|2\n"), "load", "nosuch")
	if res.Code == 0 || res.Stdout != "0 rows stored in index nosuch\n" {
		t.Fatalf("load into a missing index: exit %d, stdout %q", res.Code, res.Stdout)
	}
	for _, want := range []string{"line 1: " + errNoSuchIndex("nosuch"), "line 2: " + errNoSuchIndex("nosuch")} {
		if !strings.Contains(res.Stderr, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
		}
	}

	// --raw takes the bytes as they are.
	res = c.RunCLI(t, []byte(`p\n|C:\temp|x`+"\n"), "load", "rej", "--raw")
	if res.Code != 0 {
		t.Fatalf("load --raw: exit %d, stderr %q", res.Code, res.Stderr)
	}
	checkStored(t, rdb, "rej", map[string]string{`p\n`: `C:\temp|x`})
}

// TestLocateAndStatus checks the CLI's view of the cluster against the range
// map and the keys written.
func TestLocateAndStatus(t *testing.T) {
	c := StartCluster(t, Options{})
	rdb := c.Client()
	ctx := context.Background()
	perShard := []int{5, 7, 11}
	for i, n := range perShard {
		for _, k := range c.KeysOn(i, "st:k", n) {
			must(t, rdb.Set(ctx, k, "0123456789", 0).Err())
		}
	}

	for _, key := range []string{"st:k-1", "idx:a", "plain"} {
		res := c.RunCLI(t, nil, "locate", key)
		if res.Code != 0 {
			t.Fatalf("locate %s: exit %d, stderr %q", key, res.Code, res.Stderr)
		}
		s := c.Map.Shards[c.ShardOf(key)]
		for _, want := range []string{
			"position  " + rangemap.FormatPosition(rangemap.PositionString(key)) + "\n",
			"hashed    \"" + key + "\"\n",
			"shard     " + s.Name + "\n",
			"address   " + s.Addr() + "\n",
		} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("locate %s: output lacks %q:\n%s", key, want, res.Stdout)
			}
		}
	}

	checkStatus(t, c, nil, perShard)
}

// checkStatus runs `shardkv status` and checks each shard's row: down for
// the shards in down, else up with the given key count (when keys != nil).
func checkStatus(t *testing.T, c *Cluster, down map[int]bool, keys []int, extra ...string) {
	t.Helper()
	res := c.RunCLI(t, nil, append([]string{"status"}, extra...)...)
	if (res.Code != 0) != (len(down) > 0) {
		t.Fatalf("status: exit %d with %d shards down; stdout:\n%s\nstderr: %s", res.Code, len(down), res.Stdout, res.Stderr)
	}
	out := lines(res.Stdout)
	if len(out) < len(c.Map.Shards)+1 || !strings.HasPrefix(out[0], "SHARD") {
		t.Fatalf("status output:\n%s", res.Stdout)
	}
	for i, s := range c.Map.Shards {
		f := strings.Fields(out[i+1])
		// SHARD [start, end) ADDRESS HEALTH KEYS LIVE SIZE
		if len(f) != 8 || f[0] != s.Name || f[3] != s.Addr() {
			t.Fatalf("status row %d = %q, want shard %s at %s", i, out[i+1], s.Name, s.Addr())
		}
		if want := "[" + rangemap.FormatPosition(s.Start) + ","; f[1] != want {
			t.Errorf("status row %s: range starts %q, want %q", s.Name, f[1], want)
		}
		health := "up"
		if down[i] {
			health = "down"
		}
		if f[4] != health {
			t.Errorf("status row %s: health %q, want %q\n%s", s.Name, f[4], health, res.Stdout)
		}
		if !down[i] && keys != nil && f[5] != fmt.Sprint(keys[i]) {
			t.Errorf("status row %s: %s keys, want %d\n%s", s.Name, f[5], keys[i], res.Stdout)
		}
	}
}
