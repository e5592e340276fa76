package shardnode

import (
	"golang.org/x/sys/unix"

	"github.com/shardkv/shardkv/bitcask"
)

// Cross-shard transaction messages off the event loop.
//
// TX.PREPARE, TX.DECIDE, TX.STATUS, TX.COMMIT and TX.ABORT wait for fsyncs
// (docs/TRANSACTIONS.md, "Durability and fsync"). Run on the event loop,
// each of those waits held up every other connection of the loop, and the
// messages of concurrent transactions were synced one after another: the
// node did a few thousand cross-shard messages a second whatever the load.
// So a connection of an event loop that reaches one of them hands it to a
// goroutine of its own: the loop writes the replies before it, takes the
// connection out of its epoll set (the rest of the pipeline stays in the
// socket and the buffer, in order), and serves its other connections
// meanwhile. The goroutine owns the connection until the message is done,
// then hands it back through the loop's eventfd (txFinished), and the loop
// goes on with the connection's pipeline. Concurrent messages then wait
// for their fsyncs together: bitcask's group commit gives one fsync to
// every writer that waits while none is running, for the transaction log
// and for the data alike.
//
// The per-key locks and the bitcask rules stay what they were: the
// messages already ran on several loops at once (one per connection), so
// the lock table has its own mutex, a prepare's dry run and a commit's
// apply each run inside one bitcask Update (serialized with the loops'
// writes by the store's writer lock), and decisions are serialized by
// decideMu.
//
// A connection without an event loop (Config.EventLoops -1) has its own
// goroutine already and runs the messages in place.

// txOffLoop are the messages run off the event loop. TX.FORGET and TX.LIST
// do not wait for an fsync and stay on it.
var txOffLoop = map[string]bool{
	"tx.prepare": true, "tx.decide": true, "tx.status": true, "tx.commit": true, "tx.abort": true,
}

// txWaits reports whether the messages wait for fsyncs: under appendfsync
// always. Under everysec and no they only write, and run on the loop as
// other writes do, without the hand-over.
func (s *Server) txWaits() bool { return s.db.SyncPolicy() == bitcask.SyncAlways }

// txOffState is where a connection's off-loop message stands.
type txOffState uint8

const (
	txIdle    txOffState = iota
	txPending            // serveFrom stopped at the message; the loop starts it after writing the replies before it
	txRunning            // the message's goroutine owns the connection
)

// startTx runs the message at c.next on a goroutine of its own. The loop
// has written c's earlier replies, and leaves c alone until txFinished
// hands it back: c is out of the epoll set, so no event of it comes.
func (l *eventLoop) startTx(c *client) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil); err != nil {
		l.srv.log.Error("epoll_ctl del failed", "client", c.sess.Addr, "error", err)
		l.close(c)
		return
	}
	c.txOff = txRunning
	i := c.next
	go func() {
		c.execOne(c.specBuf[i], c.batch[i].Args)
		c.next = i + 1
		l.txFinished(c)
	}()
}

// txFinished hands c back to its loop (the message's goroutine). A loop
// that stopped meanwhile did not close c (stop): it is closed here.
func (l *eventLoop) txFinished(c *client) {
	l.mu.Lock()
	if !l.closed {
		l.txDone = append(l.txDone, c)
		l.signal()
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	unix.Close(c.fd)
	c.fd = -1
	l.srv.dropClient(c)
}

// resumeTx goes on with the connections whose message finished (adopt).
func (l *eventLoop) resumeTx(done []*client) {
	for _, c := range done {
		c.txOff = txIdle
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
			l.srv.log.Error("epoll_ctl add failed", "client", c.sess.Addr, "error", err)
			l.close(c)
			continue
		}
		l.touched = append(l.touched, c)
		c.run()
	}
}
