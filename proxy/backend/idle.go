package backend

// Idle connections of their own (solo.go, blocking.go): connections
// dialed for one request at a time and kept between uses, per kind, in a
// pool of the Client guarded by cl.mu.

// takeIdle returns a usable idle connection of pool, closing the unusable
// ones it finds (failed, or closed by the node meanwhile); nil when none.
func (cl *Client) takeIdle(pool *[]*Conn) *Conn {
	var stale []*Conn
	var found *Conn
	cl.mu.Lock()
	for len(*pool) > 0 && found == nil {
		c := (*pool)[len(*pool)-1]
		*pool = (*pool)[:len(*pool)-1]
		if c.Failed() || c.peerClosed.Load() {
			stale = append(stale, c)
		} else {
			found = c
		}
	}
	cl.mu.Unlock()
	for _, c := range stale {
		c.Close() // not under cl.mu: Close waits for the reader
	}
	return found
}

// putIdle gives c back to pool once its request was answered, keeping at
// most max idle; a failed connection, or one with a request still in
// flight, is closed.
func (cl *Client) putIdle(pool *[]*Conn, max int, c *Conn) {
	if c.Failed() || c.Inflight() > 0 {
		c.Fail(errSoloDropped)
		return
	}
	cl.mu.Lock()
	select {
	case <-cl.closed:
		cl.mu.Unlock()
		c.Close()
		return
	default:
	}
	if len(*pool) < max {
		*pool = append(*pool, c)
		c = nil
	}
	cl.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// closeIdle closes pool's idle connections (Client.Close).
func (cl *Client) closeIdle(pool *[]*Conn) {
	cl.mu.Lock()
	idle := *pool
	*pool = nil
	cl.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// idleOrDial returns an idle connection of pool, or a new one dialed and
// handshaken as the shared ones are, with their watchdog; nil when the
// node is down (the shared path then fails at once) or the dial fails.
func (cl *Client) idleOrDial(pool *[]*Conn) *Conn {
	if !cl.Up() {
		return nil
	}
	if c := cl.takeIdle(pool); c != nil {
		return c
	}
	select {
	case <-cl.closed:
		return nil
	default:
	}
	c, err := dial(cl.cfg.Addr, cl.cfg.Timeout, cl.cfg.Handshake, cl.busy, true)
	if err != nil {
		return nil
	}
	return c
}
