//go:build !linux

package shardnode

import "net"

// Without epoll every connection has a goroutine of its own (conn.go).

const loopsSupported = false

type eventLoop struct{ done chan struct{} }

func (s *Server) startLoops(int) error         { return nil }
func (l *eventLoop) park(*client)              {}
func (l *eventLoop) wake()                     {}
func (s *Server) adoptConn(net.Conn, int) bool { return false }
