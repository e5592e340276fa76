package bitcask

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestGroupCommit: N concurrent SyncAlways writers cause fewer than N
// fsyncs. The hook makes each fsync take a few milliseconds, as on a real
// disk, so that writers arrive while one is running; then the test runs
// once more with the device's own fsync latency and logs what it got.
func TestGroupCommit(t *testing.T) {
	for _, slow := range []bool{true, false} {
		o := testOptions()
		o.Sync = SyncAlways
		db := mustOpen(t, t.TempDir(), o)
		if slow {
			db.syncHook = func() { time.Sleep(3 * time.Millisecond) }
		}
		const n = 64
		before := db.Stats().Fsyncs
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				if err := db.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v"), 0); err != nil {
					t.Error(err)
				}
			}(i)
		}
		close(start)
		wg.Wait()
		fsyncs := db.Stats().Fsyncs - before
		t.Logf("slow=%v: %d writers, %d fsyncs", slow, n, fsyncs)
		if slow && fsyncs >= n/4 {
			t.Fatalf("%d concurrent writers caused %d fsyncs", n, fsyncs)
		}
		if !slow && fsyncs >= n {
			t.Fatalf("%d concurrent writers caused %d fsyncs", n, fsyncs)
		}
		if db.sy.durable < db.written.Load() {
			t.Fatal("writes acknowledged without being durable")
		}
		db.Close()
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, s := range []string{"always", "everysec", "no"} {
		p, err := ParseSyncPolicy(s)
		if err != nil || p.String() != s {
			t.Fatalf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParseSyncPolicy("sometimes"); err == nil {
		t.Fatal("bad policy parsed")
	}
	o := testOptions()
	o.Sync = SyncNo
	db := mustOpen(t, t.TempDir(), o)
	defer db.Close()
	mustPut(t, db, "a", "1")
	if n := db.Stats().Fsyncs; n != 0 {
		t.Fatalf("SyncNo fsynced %d times", n)
	}
	db.SetSyncPolicy(SyncAlways)
	if db.SyncPolicy() != SyncAlways {
		t.Fatal("SetSyncPolicy")
	}
	mustPut(t, db, "b", "1")
	if n := db.Stats().Fsyncs; n != 1 {
		t.Fatalf("SyncAlways: %d fsyncs", n)
	}
	db.SetSyncPolicy(SyncEverySec)
	mustPut(t, db, "c", "1")
	deadline := time.Now().Add(3 * time.Second)
	for db.Stats().Fsyncs < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if db.Stats().Fsyncs < 2 {
		t.Fatal("everysec did not fsync in the background")
	}
}

const killChildEnv = "BITCASK_KILL_CHILD"

// killValue is the value the child writes for key, so the parent can check it.
func killValue(key string) string {
	return key + "=" + strings.Repeat("v", len(key)*7%300)
}

// TestKillChild is the child of TestSIGKILLAcknowledgedWritesSurvive: it
// writes with SyncAlways from several goroutines and prints every key whose
// write returned, until it is killed.
func TestKillChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		t.Skip("only runs as the child of TestSIGKILLAcknowledgedWritesSurvive")
	}
	dir, round, _ := strings.Cut(spec, "|")
	o := testOptions()
	o.Sync = SyncAlways
	o.MaxFileSize = 64 << 10 // rotations and hint writing while killed
	db, err := Open(dir, o)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(keys ...string) {
		mu.Lock()
		fmt.Fprintln(os.Stdout, strings.Join(keys, " ")) // one write per line
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				k := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if i%3 == 0 {
					keys := []string{k + "-a", k + "-b", k + "-c"}
					err := db.Update(func(tx *Tx) error {
						for _, k := range keys {
							if err := tx.Put([]byte(k), []byte(killValue(k)), 0); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						fmt.Println("error:", err)
						os.Exit(2)
					}
					ack(keys...)
					continue
				}
				if err := db.Put([]byte(k), []byte(killValue(k)), 0); err != nil {
					fmt.Println("error:", err)
					os.Exit(2)
				}
				ack(k)
			}
		}(g)
	}
	wg.Wait()
}

// TestSIGKILLAcknowledgedWritesSurvive kills a writing child process with
// SIGKILL, several times in the same directory, and checks after each kill
// that every write the child acknowledged is there, and that every batch is
// all there or all absent.
func TestSIGKILLAcknowledgedWritesSurvive(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip()
	}
	dir := t.TempDir()
	var acked [][]string
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", killChildEnv, dir, round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := make(chan string)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		n := 0
		deadline := time.After(10 * time.Second)
		want := 300 + round*150
	read:
		for n < want {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if strings.HasPrefix(l, "error") || strings.HasPrefix(l, "open failed") {
					t.Fatalf("child: %s", l)
				}
				acked = append(acked, strings.Fields(l))
				n++
			case <-deadline:
				break read
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// Lines already written by the child before the kill are acks too.
		for l := range lines {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "r") {
				acked = append(acked, f)
			}
		}
		cmd.Wait()
		if n < 50 {
			t.Fatalf("round %d: only %d acks before the deadline", round, n)
		}

		db := mustOpen(t, dir, testOptions())
		for _, keys := range acked {
			for _, k := range keys {
				v, _, err := db.Get([]byte(k))
				if err != nil || string(v) != killValue(k) {
					t.Fatalf("round %d: acknowledged %q: %q, %v", round, k, v, err)
				}
			}
		}
		// Batches are whole, acknowledged or not.
		db.Range(func(k []byte, _ Meta) bool {
			s := string(k)
			if base, ok := strings.CutSuffix(s, "-a"); ok {
				for _, suf := range []string{"-b", "-c"} {
					if !db.Exists([]byte(base + suf)) {
						t.Fatalf("round %d: batch %s torn: %s missing", round, base, base+suf)
					}
				}
			}
			return true
		})
		st := db.Stats()
		t.Logf("round %d: %d acked writes total, %d keys, truncated %d records", round, len(acked), db.Len(), st.RecoveryTruncated)
		db.Close()
	}
}
