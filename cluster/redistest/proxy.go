package redistest

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a loopback TCP proxy in front of a redis-server. It forwards bytes
// both ways until told to silence subscriber connections: those then keep
// their sockets open and read everything, but forward nothing, so the server
// believes the subscriber is healthy and its client hears nothing. That is
// the "publishes succeed, health is green, nothing arrives" failure that a
// liveness probe must catch.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex // guards conns, closed
	conns  []*proxyConn
	closed bool
}

// proxyConn is one proxied client connection. subscriber is set by the
// client->server pump (the first time it sees a SUBSCRIBE command) and read
// by Silence callers; silent is set by Silence and read by both pumps.
type proxyConn struct {
	client, server net.Conn
	subscriber     atomic.Bool
	silent         atomic.Bool
}

// NewProxy listens on a free 127.0.0.1 port and forwards to target
// (host:port). It is closed in t.Cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is redis://ADDR/0 through the proxy.
func (p *Proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(pc, pc.client, pc.server, true)
		go p.pump(pc, pc.server, pc.client, false)
	}
}

var subscribeCmd = []byte("subscribe")

// pump copies src to dst until either side closes; while the connection is
// silenced it reads and discards instead.
func (p *Proxy) pump(pc *proxyConn, src, dst net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient && !pc.subscriber.Load() && bytes.Contains(bytes.ToLower(buf[:n]), subscribeCmd) {
				pc.subscriber.Store(true)
			}
			if !pc.silent.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// SilenceSubscribers makes every open connection that has sent a SUBSCRIBE go
// silent (see Proxy). New connections are not affected. It returns how many
// were silenced.
func (p *Proxy) SilenceSubscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pc := range p.conns {
		if pc.subscriber.Load() && !pc.silent.Load() {
			pc.silent.Store(true)
			n++
		}
	}
	return n
}

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, pc := range conns {
		_ = pc.client.Close()
		_ = pc.server.Close()
	}
	p.wg.Wait()
}

// String names the proxy in test logs.
func (p *Proxy) String() string {
	return "redis-proxy@" + p.Addr() + "->" + p.target + " (port " + strconv.Itoa(p.Port()) + ")"
}
