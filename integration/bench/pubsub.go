package main

// The Pub/Sub shape (issue 15): PUBLISH to a channel with 100 subscribers.
// One publisher sends PUBLISH in pipelines of 32; 100 subscribers, each on
// its own connection, read every message. Measured: messages published per
// second, from the first PUBLISH to the last subscriber having read the
// last message (each message is delivered 100 times).

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// pubsubSubscribers is how many clients each message reaches.
const pubsubSubscribers = 100

// publishBurst publishes n messages to pubsubSubscribers subscribers of
// the server on port and returns messages per second.
func publishBurst(ctx context.Context, port, n int) (float64, error) {
	deadline := time.Now().Add(connsRunLimit)
	var subs []net.Conn
	defer func() {
		for _, c := range subs {
			c.Close()
		}
	}()
	sub := []byte("*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n")
	confirm := len("*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n")
	for range pubsubSubscribers {
		c, err := dialPinged(ctx, port)
		if err != nil {
			return 0, err
		}
		subs = append(subs, c)
		_ = c.SetDeadline(deadline)
		if _, err := c.Write(sub); err != nil {
			return 0, err
		}
		buf := make([]byte, confirm)
		if _, err := readFull(c, buf); err != nil {
			return 0, fmt.Errorf("SUBSCRIBE: %w", err)
		}
	}
	pub, err := dialPinged(ctx, port)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	_ = pub.SetDeadline(deadline)
	payload := strings.Repeat("m", 32)
	msg := "*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$" + strconv.Itoa(len(payload)) + "\r\n" + payload + "\r\n"
	push := len("*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$"+strconv.Itoa(len(payload))+"\r\n"+payload+"\r\n") * n
	const depth = 32
	req := []byte(strings.Repeat(msg, depth))
	reply := len(":" + strconv.Itoa(pubsubSubscribers) + "\r\n")
	done := make(chan error, pubsubSubscribers+1)
	start := time.Now()
	for _, c := range subs {
		go func() {
			buf := make([]byte, 64<<10)
			for got := 0; got < push; {
				m, err := c.Read(buf)
				if err != nil {
					done <- err
					return
				}
				got += m
			}
			done <- nil
		}()
	}
	go func() {
		buf := make([]byte, 64<<10)
		for sent := 0; sent < n; sent += depth {
			k := min(depth, n-sent)
			if _, err := pub.Write(req[:k*len(msg)]); err != nil {
				done <- err
				return
			}
			for got := 0; got < k*reply; {
				m, err := pub.Read(buf)
				if err != nil {
					done <- err
					return
				}
				got += m
			}
		}
	}()
	for range subs {
		if err := <-done; err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// pubsubPhase runs the Pub/Sub shape against the shardkv proxy with two
// nodes and a redis-server, interleaved round by round.
func pubsubPhase(ctx context.Context, h *harness, cfg config) error {
	p, err := h.shardkv("pubsub", h.bin, "everysec", 2)
	if err != nil {
		return err
	}
	r := freePort()
	h.redis("pubsub-redis", r)
	setups := []setup{{name: "shardkv proxy + 2 nodes", port: p}, {name: "redis-server", port: r}}
	if err := h.ready(ctx, setups); err != nil {
		return err
	}
	results := map[string][]float64{}
	width := nameWidth(setups)
	for round := 1; round <= cfg.rounds; round++ {
		for _, s := range roundOrder(setups, round) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			got, err := publishBurst(ctx, s.port, cfg.pubN)
			if err != nil {
				return fmt.Errorf("%s, PUBLISH to %d subscribers: %w (logs in %s)", s.name, pubsubSubscribers, err, h.dir)
			}
			results[s.name] = append(results[s.name], got)
			fmt.Fprintf(os.Stderr, "round %d pubsub %-*s %9.0f msgs/s\n", round, width, s.name, got)
		}
	}
	fmt.Printf("Pub/Sub: PUBLISH of %d messages of 32 bytes (pipelines of 32) to %d subscribers, median of %d interleaved rounds:\n\n",
		cfg.pubN, pubsubSubscribers, cfg.rounds)
	fmt.Println("| setup | messages/s | deliveries/s |")
	fmt.Println("|---|---|---|")
	med := map[string]float64{}
	for _, s := range setups {
		m := medianOf(results[s.name], func(x float64) float64 { return x })
		med[s.name] = m
		fmt.Printf("| %s | %.0f | %.0f |\n", s.name, m, m*pubsubSubscribers)
	}
	fmt.Printf("\nratio shardkv / redis-server: %.2fx\n\n", med["shardkv proxy + 2 nodes"]/med["redis-server"])
	return nil
}
