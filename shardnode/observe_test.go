package shardnode

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The slow log's, the latency monitor's and MEMORY's replies and errors,
// checked against redis-server by TestCommandScriptsMatchRedis like every
// other script. The slow log is turned off first so that a slow pipeline
// on a busy machine logs nothing the script does not expect.
func init() {
	scripts = append(scripts,
		script{name: "slowlog", steps: []step{
			x(ok, "CONFIG", "SET", "slowlog-log-slower-than", "-1"),
			x(ok, "SLOWLOG", "RESET"),
			x(in(0), "SLOWLOG", "LEN"),
			x(arr(), "SLOWLOG", "GET"),
			x(arr(), "SLOWLOG", "GET", "0"),
			x(arr(), "SLOWLOG", "GET", "-1"),
			x(er("ERR count should be greater than or equal to -1"), "SLOWLOG", "GET", "-2"),
			x(er("ERR count should be greater than or equal to -1"), "SLOWLOG", "GET", "abc"),
			x(er("ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP."), "SLOWLOG", "GET", "1", "2"),
			x(arity("slowlog|len"), "SLOWLOG", "LEN", "x"),
			x(arity("slowlog|reset"), "SLOWLOG", "RESET", "x"),
			x(arity("slowlog|help"), "SLOWLOG", "HELP", "x"),
			x(er("ERR unknown subcommand 'foo'. Try SLOWLOG HELP."), "SLOWLOG", "foo"),
			x(arity("slowlog"), "SLOWLOG"),
			x(arr(simple("SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
				simple("GET [<count>]"), simple("    Return top <count> entries from the slowlog (default: 10, -1 mean all)."),
				simple("    Entries are made of:"), simple("    id, timestamp, time in microseconds, arguments array, client IP and port,"),
				simple("    client name"), simple("LEN"), simple("    Return the length of the slowlog."),
				simple("RESET"), simple("    Reset the slowlog."), simple("HELP"), simple("    Prints this help.")), "SLOWLOG", "HELP"),
			x3(arr(bs("slowlog-max-len"), bs("128")), "%1\r\n"+bs("slowlog-max-len")+bs("128"), "CONFIG", "GET", "slowlog-max-len"),
			x3(arr(bs("slowlog-log-slower-than"), bs("-1")), "%1\r\n"+bs("slowlog-log-slower-than")+bs("-1"), "CONFIG", "GET", "slowlog-log-slower-than"),
			x(er("ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be between 0 and 9223372036854775807 inclusive"), "CONFIG", "SET", "slowlog-max-len", "-1"),
			x(er("ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer"), "CONFIG", "SET", "slowlog-max-len", "abc"),
			x(er("ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive"), "CONFIG", "SET", "slowlog-log-slower-than", "-2"),
			x(ok, "CONFIG", "SET", "slowlog-max-len", "128"),
		}},
		script{name: "latency", steps: []step{
			x3(arr(bs("latency-monitor-threshold"), bs("0")), "%1\r\n"+bs("latency-monitor-threshold")+bs("0"), "CONFIG", "GET", "latency-monitor-threshold"),
			x(er("ERR CONFIG SET failed (possibly related to argument 'latency-monitor-threshold') - argument must be between 0 and 9223372036854775807 inclusive"), "CONFIG", "SET", "latency-monitor-threshold", "-1"),
			x(in(0), "LATENCY", "RESET"),
			x(arr(), "LATENCY", "LATEST"),
			x(arr(), "LATENCY", "HISTORY", "command"),
			x(in(0), "LATENCY", "RESET", "command", "foo"),
			x(arity("latency|history"), "LATENCY", "HISTORY"),
			x(arity("latency|latest"), "LATENCY", "LATEST", "x"),
			x(er("ERR unknown subcommand 'foo'. Try LATENCY HELP."), "LATENCY", "foo"),
			x(arity("latency"), "LATENCY"),
			x3(arr(), "%0\r\n", "LATENCY", "HISTOGRAM", "nosuchcommand"),
		}},
		script{name: "memory", steps: []step{
			x(ok, "SET", "foo", "bar"),
			x(nul, "MEMORY", "USAGE", "nokey"),
			x(nul, "MEMORY", "USAGE", "nokey", "SAMPLES", "0"),
			// key + value + the key directory's entry and the record's
			// header: 48+3 + 40+3+3 (Redis's own figure differs).
			x(in(97), "MEMORY", "USAGE", "foo").nodiff(),
			x(in(97), "MEMORY", "USAGE", "foo", "SAMPLES", "5").nodiff(),
			x(syn, "MEMORY", "USAGE", "foo", "SAMPLES"),
			x(syn, "MEMORY", "USAGE", "foo", "SAMPLES", "-1"),
			x(nai, "MEMORY", "USAGE", "foo", "SAMPLES", "x"),
			x(syn, "MEMORY", "USAGE", "foo", "bar", "1"),
			x(arity("memory|usage"), "MEMORY", "USAGE"),
			x(arity("memory|help"), "MEMORY", "HELP", "x"),
			x(er("ERR unknown subcommand 'foo'. Try MEMORY HELP."), "MEMORY", "foo"),
			x(arity("memory"), "MEMORY"),
		}},
	)
}

// TestSlowlogEntries: with slowlog-log-slower-than 0 every command is
// logged, newest first, with Redis's six fields; long arguments and long
// commands are cut as Redis cuts them; AUTH's password is redacted;
// slowlog-max-len bounds the log at the next entry.
func TestSlowlogEntries(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	rdb := redis.NewClient(&redis.Options{Addr: n.addr, Protocol: 2})
	defer rdb.Close()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err())
	must(rdb.Do(ctx, "CLIENT", "SETNAME", "tester").Err())
	must(rdb.Set(ctx, "k", strings.Repeat("v", 200), 0).Err())
	long := []any{"MSET"}
	for i := 0; i < 20; i++ {
		long = append(long, fmt.Sprintf("k%d", i), "v")
	}
	must(rdb.Do(ctx, long...).Err())
	_ = rdb.Do(ctx, "AUTH", "secret").Err() // no password set: an error, logged all the same
	entries, err := rdb.SlowLogGet(ctx, 3).Result()
	must(err)
	if len(entries) != 3 {
		t.Fatalf("SLOWLOG GET 3: %d entries", len(entries))
	}
	auth, mset, set := entries[0], entries[1], entries[2]
	if got := strings.Join(auth.Args, " "); got != "AUTH (redacted)" {
		t.Errorf("AUTH entry args %q", got)
	}
	if len(mset.Args) != 32 || mset.Args[31] != "... (10 more arguments)" {
		t.Errorf("MSET entry: %d args, last %q", len(mset.Args), mset.Args[len(mset.Args)-1])
	}
	if want := strings.Repeat("v", 128) + "... (72 more bytes)"; len(set.Args) != 3 || set.Args[2] != want {
		t.Errorf("SET entry args %q", set.Args)
	}
	if !(auth.ID > mset.ID && mset.ID > set.ID) || set.ClientName != "tester" || set.ClientAddr == "" ||
		time.Since(set.Time) > time.Minute || set.Duration < 0 {
		t.Errorf("entries %+v", entries)
	}
	must(rdb.ConfigSet(ctx, "slowlog-max-len", "2").Err())
	must(rdb.Ping(ctx).Err())
	if n, err := rdb.Do(ctx, "SLOWLOG", "LEN").Int(); err != nil || n != 2 {
		t.Errorf("SLOWLOG LEN after slowlog-max-len 2: %d, %v", n, err)
	}
	must(rdb.ConfigSet(ctx, "slowlog-log-slower-than", "-1").Err())
	must(rdb.Do(ctx, "SLOWLOG", "RESET").Err())
	must(rdb.Ping(ctx).Err())
	if n, err := rdb.Do(ctx, "SLOWLOG", "LEN").Int(); err != nil || n != 0 {
		t.Errorf("SLOWLOG LEN after RESET with the log off: %d, %v", n, err)
	}
}

// TestCommandStats: INFO commandstats counts calls, rejected calls (arity)
// and failed calls (an error reply) per command, LATENCY HISTOGRAM has the
// same counts, and INFO stats has Redis's rate fields.
func TestCommandStats(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	c := n.raw()
	c.do("SET", "k", "v")
	c.do("GET", "k")
	c.do("GET", "k")
	c.do("GET")       // rejected: arity
	c.do("INCR", "k") // failed: not an integer
	info := c.do("INFO", "commandstats")
	for _, want := range []string{
		"cmdstat_get:calls=2,", "rejected_calls=1,failed_calls=0",
		"cmdstat_incr:calls=1,", "rejected_calls=0,failed_calls=1",
		"cmdstat_set:calls=1,",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO commandstats lacks %q:\n%s", want, info)
		}
	}
	if def := c.do("INFO"); strings.Contains(def, "cmdstat_") {
		t.Errorf("INFO (default) has commandstats")
	}
	h := c.do("LATENCY", "HISTOGRAM", "get")
	if !strings.HasPrefix(h, "*2\r\n$3\r\nget\r\n*4\r\n$5\r\ncalls\r\n:3\r\n$14\r\nhistogram_usec\r\n") {
		t.Errorf("LATENCY HISTOGRAM get: %q", h)
	}
	stats := c.do("INFO", "stats")
	for _, f := range []string{"instantaneous_ops_per_sec:", "instantaneous_input_kbps:", "total_error_replies:2\r\n", "keyspace_hits:"} {
		if !strings.Contains(stats, f) {
			t.Errorf("INFO stats lacks %q:\n%s", f, stats)
		}
	}
}

// TestInstantaneousOps: under a steady load of commands, INFO's
// instantaneous_ops_per_sec (16 samples 100 ms apart, as Redis) reports the
// load's rate, within a wide margin for a shared machine.
func TestInstantaneousOps(t *testing.T) {
	n := startNode(t, "", nil)
	n.assignAll()
	nc, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	// 100 PINGs every 10 ms: 10,000 commands a second, for 2 s.
	batch := strings.Repeat("PING\r\n", 100)
	deadline := time.Now().Add(2 * time.Second)
	for tick := time.Now(); time.Now().Before(deadline); tick = tick.Add(10 * time.Millisecond) {
		if _, err := nc.Write([]byte(batch)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Until(tick.Add(10 * time.Millisecond)))
	}
	stats := n.raw().do("INFO", "stats")
	i := strings.Index(stats, "instantaneous_ops_per_sec:")
	if i < 0 {
		t.Fatalf("no instantaneous_ops_per_sec:\n%s", stats)
	}
	v, _, _ := strings.Cut(stats[i+len("instantaneous_ops_per_sec:"):], "\r\n")
	ops, err := strconv.Atoi(v)
	if err != nil || ops < 3000 || ops > 15000 {
		t.Errorf("instantaneous_ops_per_sec %q under ~10,000 commands/s", v)
	}
}
