// Package sockio holds the socket tricks both servers' connection loops use,
// each with the measurement that justifies it:
//
//   - RawRead and RawWrite (rawio.go): read(2) and write(2) without the
//     scheduler's syscall bookkeeping. Under request-reply load the
//     bookkeeping woke the runtime's monitor thread after every idle moment;
//     perf showed that at 10-18% of the proxy's CPU, under 0.1% with raw calls.
//   - WriteAll and Writer (rawio.go): the one raw write loop (EINTR
//     retried, partial writes counted, EAGAIN handed back) behind every
//     write to a socket the servers make with RawWrite: the node's
//     connection writes and event loop, the proxy's client replies and the
//     backend connections' requests. Writer waits for a full socket in the
//     runtime's poller through syscall.RawConn.Write with a callback made
//     once, so a write allocates nothing (TestWriterAllocs); the event loop
//     arms EPOLLOUT instead, and the node's read loop falls back to its
//     net.Conn, each its own way of waiting. It is the RawWrite trick's
//     loop, not a trick of its own: written once so the copies cannot drift.
//   - WatchHup (hup_linux.go): one process-wide EPOLLRDHUP set that hears a
//     peer's FIN arriving with its last bytes, so a loop may wait for the next
//     edge after a short read instead of reading again only to be told
//     EAGAIN: one system call fewer per request (proxy reads per request
//     2.35 -> 1.2, nutcracker's 1.18).
//
// Callers own their buffers (the race detector cannot see raw system calls),
// and descriptors come from syscall.RawConn so the runtime's poller keeps
// owning the socket.
package sockio
