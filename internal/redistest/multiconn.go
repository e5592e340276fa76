package redistest

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkv/shardkv/resp"
)

// Step is one command of a multi-connection script (Pub/Sub): sent on
// connection Conn. Every frame each connection receives is recorded, so
// messages pushed to other connections are compared too.
type Step struct {
	Conn int
	Args []string
	// SortFrames: the frames the step brings come in no particular order
	// (UNSUBSCRIBE of several channels in Redis's hash order).
	SortFrames bool
	// SortElems: the step's reply is an array whose elements come in no
	// particular order (PUBSUB CHANNELS).
	SortElems bool
	// Then are more commands sent on Conn right after Args, in the same
	// step (a MULTI ... EXEC, inside which the PING that ends a step
	// would be queued).
	Then [][]string
}

// S is a Step.
func S(conn int, args ...string) Step { return Step{Conn: conn, Args: args} }

// Tx is a step of MULTI, cmds and EXEC on conn.
func Tx(conn int, cmds ...[]string) Step {
	return Step{Conn: conn, Args: []string{"MULTI"}, Then: append(slices.Clone(cmds), []string{"EXEC"})}
}

// Transcript runs steps against the server at addr, on one connection per
// element of protos (2 or 3: HELLO 3 is sent first, its reply not
// recorded), and returns for each step what each connection received.
// After a step's command, each connection is sent PING <mark> and read up
// to its reply (the mark, or ["pong", mark] in RESP2 subscribed mode), so
// everything the step caused is read before the next step, without
// waiting for a time; the PING replies are part of the transcript. A step
// of QUIT reads its connection to its end instead.
func Transcript(t testing.TB, addr string, protos []int, steps []Step) [][]string {
	t.Helper()
	conns := make([]net.Conn, len(protos))
	readers := make([]*resp.ReplyReader, len(protos))
	for i, p := range protos {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { nc.Close() })
		conns[i], readers[i] = nc, resp.NewReplyReader(nc, 4096)
		if p == 3 {
			write(t, nc, "HELLO", "3")
			readFrame(t, nc, readers[i])
		}
	}
	closed := make([]bool, len(conns))
	var step []string
	defer func() {
		if t.Failed() {
			t.Logf("at step %q", step)
		}
	}()
	out := make([][]string, len(steps))
	for si, st := range steps {
		step = st.Args
		write(t, conns[st.Conn], st.Args...)
		for _, args := range st.Then {
			write(t, conns[st.Conn], args...)
		}
		rec := make([]string, len(conns))
		if strings.EqualFold(st.Args[0], "quit") {
			rec[st.Conn] = readFrame(t, conns[st.Conn], readers[st.Conn])
			closed[st.Conn] = true
		}
		// The step's own connection first: what it caused is done once
		// its PING is answered.
		order := []int{st.Conn}
		for i := range conns {
			if i != st.Conn {
				order = append(order, i)
			}
		}
		for _, i := range order {
			nc := conns[i]
			if closed[i] {
				continue
			}
			mark := "sync-" + strconv.Itoa(si)
			write(t, nc, "PING", mark)
			bulkMark := "$" + strconv.Itoa(len(mark)) + "\r\n" + mark + "\r\n"
			var frames []string
			for {
				f := readFrame(t, nc, readers[i])
				if f == bulkMark || f == "*2\r\n$4\r\npong\r\n"+bulkMark {
					if i == st.Conn && st.SortElems && len(frames) > 0 {
						frames[len(frames)-1] = sortElems(t, frames[len(frames)-1])
					}
					if st.SortFrames {
						slices.Sort(frames)
					}
					frames = append(frames, f)
					break
				}
				frames = append(frames, f)
			}
			rec[i] += strings.Join(frames, "")
		}
		out[si] = rec
	}
	return out
}

// Compare reports each step whose transcripts differ.
func Compare(t testing.TB, steps []Step, want, got [][]string) {
	t.Helper()
	for i := range steps {
		for c := range want[i] {
			if want[i][c] != got[i][c] {
				t.Errorf("step %d %q, connection %d:\n redis:   %q\n shardkv: %q", i, steps[i].Args, c, want[i][c], got[i][c])
			}
		}
	}
}

func write(t testing.TB, nc net.Conn, args ...string) {
	t.Helper()
	_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
		t.Fatalf("write %q: %v", args, err)
	}
}

func readFrame(t testing.TB, nc net.Conn, rr *resp.ReplyReader) string {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := rr.Next()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// sortElems sorts the elements of an array or set reply.
func sortElems(t testing.TB, f string) string {
	b := []byte(f)
	l, err := resp.ReplyLen(b)
	if err != nil || l != len(b) || (b[0] != '*' && b[0] != '~') {
		return f
	}
	head := strings.Index(f, "\r\n") + 2
	elems, err := resp.Elements(nil, b)
	if err != nil {
		t.Fatalf("elements of %q: %v", f, err)
	}
	ss := make([]string, len(elems))
	for i, e := range elems {
		ss[i] = string(e)
	}
	slices.Sort(ss)
	return f[:head] + strings.Join(ss, "")
}

// PubsubProtos are the connections of PubsubSteps: 0-2 speak RESP2, 3
// RESP3.
var PubsubProtos = []int{2, 2, 2, 3}

// PubsubSteps is the Pub/Sub script replayed against redis-server, the node
// (shardnode/pubsub_test.go) and the proxy (proxy/pubsub_test.go): replies, pushes to the
// other connections, subscribed-mode refusals, counts.
var PubsubSteps = []Step{
	S(0, "SUBSCRIBE", "a", "b"),
	S(1, "PUBLISH", "a", "hello"),
	S(1, "PUBLISH", "zz", "x"),
	S(0, "GET", "k"),
	S(0, "CONFIG", "GET", "maxmemory"),
	S(0, "HELLO", "3"),
	S(0, "PING"),
	S(0, "PING", "hi"),
	S(0, "NOSUCHCMD"),
	S(0, "SUBSCRIBE"),
	S(2, "PSUBSCRIBE", "a*", "h?llo"),
	S(1, "PUBLISH", "a", "m2"),
	S(1, "PUBLISH", "hello", "m3"),
	S(1, "PUBSUB", "NUMSUB", "a", "b", "zz"),
	S(1, "PUBSUB", "NUMSUB"),
	S(1, "PUBSUB", "NUMPAT"),
	{Conn: 1, Args: []string{"PUBSUB", "CHANNELS"}, SortElems: true},
	S(1, "PUBSUB", "CHANNELS", "a*"),
	S(1, "PUBSUB", "CHANNELS", "nomatch*"),
	S(0, "UNSUBSCRIBE", "b"),
	S(0, "UNSUBSCRIBE", "b"),
	S(0, "UNSUBSCRIBE"),
	S(0, "UNSUBSCRIBE"),
	S(0, "PUNSUBSCRIBE"),
	S(0, "SUNSUBSCRIBE"),
	S(0, "GET", "k"),
	S(0, "PING"),
	S(2, "SUBSCRIBE", "a"),
	S(1, "PUBLISH", "a", "both"),
	S(2, "PUNSUBSCRIBE", "nosuch"),
	S(2, "PUNSUBSCRIBE"),
	S(2, "SSUBSCRIBE", "s1"),
	S(2, "UNSUBSCRIBE"),
	S(2, "GET", "k"),
	S(1, "SPUBLISH", "s1", "shard"),
	S(1, "PUBLISH", "s1", "notshard"),
	S(1, "PUBSUB", "SHARDCHANNELS"),
	S(1, "PUBSUB", "SHARDNUMSUB", "s1", "a"),
	S(2, "SUNSUBSCRIBE", "s1"),
	S(2, "SUNSUBSCRIBE"),
	S(3, "SUBSCRIBE", "a", "r3"),
	S(3, "GET", "k"),
	S(3, "PING"),
	S(1, "PUBLISH", "r3", "to-resp3"),
	S(3, "PUBLISH", "r3", "to-self"),
	S(3, "PSUBSCRIBE", "r*"),
	S(1, "PUBLISH", "r3", "twice"),
	S(3, "RESET"),
	S(3, "GET", "k"),
	S(1, "PUBLISH", "r3", "nobody"),
	S(1, "SUBSCRIBE", "m1", "m2", "m3"),
	S(1, "UNSUBSCRIBE", "m2", "m1", "m3"),
	S(1, "PUBLISH"),
	S(1, "PUBLISH", "a"),
	S(1, "SPUBLISH", "a"),
	S(1, "PSUBSCRIBE"),
	S(1, "SSUBSCRIBE"),
	S(1, "PUBSUB"),
	S(1, "PUBSUB", "NUMPAT", "x"),
	S(1, "PUBSUB", "CHANNELS", "a", "b"),
	S(1, "PUBSUB", "NOSUCH"),
	S(1, "PUBSUB", "HELP"),
	// PUBLISH and SPUBLISH queued in MULTI: the counts are in EXEC's
	// reply, the messages reach the subscribers when EXEC runs.
	S(2, "SUBSCRIBE", "tx"),
	S(2, "SSUBSCRIBE", "stx"),
	Tx(1, []string{"PUBLISH", "tx", "in-multi"}, []string{"SET", "tx", "v"},
		[]string{"PUBLISH", "tx", "second"}, []string{"GET", "tx"}),
	Tx(1, []string{"SPUBLISH", "stx", "shard-in-multi"}, []string{"PUBLISH", "stx", "nobody"}),
	Tx(1, []string{"PUBLISH", "tx"}),
	S(2, "UNSUBSCRIBE"),
	S(2, "SUNSUBSCRIBE"),
	S(0, "SUBSCRIBE", "q"),
	S(0, "QUIT"),
	S(1, "PUBSUB", "NUMSUB", "q"),
}
