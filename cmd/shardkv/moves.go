package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/shardkv/shardkv/internal/etcdmap"
	"github.com/shardkv/shardkv/rangemap"
)

// cmdRequest is add-node, remove-node, move and rebalance: it parses the
// command's arguments into a request, submits it and follows it.
func cmdRequest(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) error {
	usages := map[string]string{
		"add-node":    "ADDR [--name NAME]",
		"remove-node": "NAME",
		"move":        "RANGE TO NODE   (RANGE: LO-HI or a shard name)",
		"rebalance":   "",
	}
	fs, ef, name, wait := requestFlags(kind, "the new node's `NAME` (default: n<port>)", 10*time.Minute, stderr)
	pos, err := parsePositional(fs, args)
	if err != nil {
		return err
	}
	usage := func() error {
		fmt.Fprintf(stderr, "usage: shardkv %s %s [--etcd ENDPOINTS | --data DIR] [--cluster NAME]\n", kind, usages[kind])
		return &exitError{code: 2}
	}
	req := etcdmap.Request{Kind: kind}
	switch kind {
	case "add-node":
		if len(pos) != 1 {
			return usage()
		}
		req.Addr, req.Name = pos[0], *name
	case "remove-node":
		if len(pos) != 1 {
			return usage()
		}
		req.Name = pos[0]
	case "move":
		if len(pos) == 3 && strings.EqualFold(pos[1], "to") {
			pos = []string{pos[0], pos[2]}
		}
		if len(pos) != 2 {
			return usage()
		}
		req.Node = pos[1]
		if lo, hi, ok := parseRange(pos[0]); ok {
			req.Lo, req.Hi = lo, hi
		} else {
			req.Shard = pos[0]
		}
	case "rebalance":
		if len(pos) != 0 {
			return usage()
		}
	}
	ch, err := submit(ctx, ef, *wait, req, kind+" "+strings.Join(pos, " "), stdout, stderr)
	if err != nil {
		return err
	}
	if ch.State != "done" {
		return &exitError{code: 1, msg: fmt.Sprintf("%s failed: %s", kind, ch.Error)}
	}
	fmt.Fprintf(stdout, "done: %s, %d move(s), map epoch %d\n", kind, ch.Moves, ch.Epoch)
	return nil
}

// cmdAbort asks the controller to abort a request's move in flight and
// follows the request to its outcome.
func cmdAbort(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subFlags("abort", nil, stderr)
	ef := &etcdFlags{}
	ef.register(fs.StringVar)
	reason := fs.String("reason", "", "the abort's reason `TEXT`, kept in the move's error")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the outcome")
	pos, err := parsePositional(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: shardkv abort REQUEST|MOVE [--reason TEXT] [--etcd ENDPOINTS | --data DIR] [--cluster NAME]")
		return &exitError{code: 2}
	}
	cli, err := ef.dial()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	id, err := etcdmap.RequestAbort(ctx, cli, ef.cluster, pos[0], *reason)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	fmt.Fprintf(stdout, "abort of request %s asked; waiting for the controller\n", id)
	ch, err := followRequest(ctx, cli, ef.cluster, id, stdout, stderr)
	if err != nil {
		return err
	}
	if ch.State == "done" {
		return &exitError{code: 1, msg: fmt.Sprintf("request %s completed: its move had switched before the abort", id)}
	}
	fmt.Fprintf(stdout, "aborted: %s\n", ch.Error)
	return nil
}

// submit writes req for the controller and follows it until its outcome
// or the wait runs out.
func submit(ctx context.Context, ef *etcdFlags, wait time.Duration, req etcdmap.Request, what string, stdout, stderr io.Writer) (etcdmap.Change, error) {
	cli, err := ef.dial()
	if err != nil {
		return etcdmap.Change{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	id, err := etcdmap.Submit(ctx, cli, ef.cluster, req)
	if err != nil {
		return etcdmap.Change{}, err
	}
	fmt.Fprintf(stdout, "request %s: %s; waiting for the controller\n", id, what)
	return followRequest(ctx, cli, ef.cluster, id, stdout, stderr)
}

// parseRange reads "LO-HI", two positions with LO < HI.
func parseRange(s string) (lo, hi float64, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseFloat(a, 64)
	hi, err2 := strconv.ParseFloat(b, 64)
	return lo, hi, err1 == nil && err2 == nil && lo >= 0 && lo < hi && hi <= 1
}

// followRequest prints each state a move of request id enters, with a
// progress bar of the bytes copied on a terminal, until the request's
// outcome is recorded.
func followRequest(ctx context.Context, cli *clientv3.Client, cluster, id string, stdout, stderr io.Writer) (etcdmap.Change, error) {
	seen := map[string]string{}
	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(progressEvery), progressbar.OptionClearOnFinish(), progressbar.OptionSetSpinnerChangeInterval(0))
		defer func() { _ = bar.Finish(); _ = bar.Clear() }()
	}
	for {
		// The outcome is read first so that the moves printed after it
		// include every state up to it.
		r, err := cli.Get(ctx, etcdmap.ChangesPrefix(cluster)+id)
		finished := err == nil && len(r.Kvs) == 1
		moves, err := etcdmap.ReadMoves(ctx, cli, cluster, id+".")
		if err == nil {
			for _, m := range moves {
				if seen[m.ID] == m.State {
					if bar != nil && !m.Terminal() {
						progressbar.OptionSetDescription(moveLine(m))(bar)
						_ = bar.Set64(m.Bytes)
					}
					continue
				}
				seen[m.ID] = m.State
				if bar != nil {
					_ = bar.Clear()
				}
				fmt.Fprintln(stdout, moveLine(m))
			}
		}
		if finished {
			return etcdmap.WaitChange(ctx, cli, cluster, id)
		}
		select {
		case <-ctx.Done():
			return etcdmap.Change{}, fmt.Errorf("no outcome for request %s yet (is a controller running? it goes on without this command): %w", id, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// moveLine is one move as progress and status show it.
func moveLine(m etcdmap.MoveRecord) string {
	line := fmt.Sprintf("move %s [%s,%s) %s -> %s: %s", m.ID, rangemap.FormatPosition(m.Lo), rangemap.FormatPosition(m.Hi),
		m.Source, m.Target, m.State)
	if m.Records > 0 {
		line += fmt.Sprintf(", %d records, %d bytes", m.Records, m.Bytes)
	}
	if m.Attempt > 1 {
		line += fmt.Sprintf(", attempt %d", m.Attempt)
	}
	if m.Epoch > 0 {
		line += fmt.Sprintf(", epoch %d", m.Epoch)
	}
	if m.FenceMS > 0 {
		line += fmt.Sprintf(", fenced %d ms", m.FenceMS)
	}
	if m.Error != "" && m.State == etcdmap.MoveAborted {
		line += ": " + m.Error
	}
	return line
}
