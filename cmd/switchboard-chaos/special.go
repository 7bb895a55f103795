package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Special clients are the misbehaving ones: a slow reader that never reads,
// and a peer that vanishes without a close. They are not in the ledger (they
// are not live members); their user ids start with specialPrefix so that
// regular clients record what they hear about them.
const specialPrefix = "x-"

// slowReaderConn is a raw WebSocket that never reads. It sends an
// unsolicited pong every keepAliveEvery, as a client whose reads are stuck
// behind a slow link still may, so that the node's heartbeat does not drop
// it first: what must cut it is its outbound budget.
type slowReaderConn struct {
	net.Conn
	stop chan struct{}
	done chan struct{}
}

const keepAliveEvery = 300 * time.Millisecond

func (s *slowReaderConn) keepAlive() {
	defer close(s.done)
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_ = s.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := s.Conn.Write(maskedFrame(0x8A, nil)); err != nil {
				return
			}
		}
	}
}

// Close stops the keep-alive and closes the socket.
func (s *slowReaderConn) Close() error {
	close(s.stop)
	err := s.Conn.Close()
	<-s.done
	return err
}

// dialSlowReader opens a raw WebSocket with a tiny receive buffer, joins
// room, and from then on never reads: its node must cut it (1013) once its
// outbound budget is exceeded, without anybody else noticing.
func dialSlowReader(addr, user, room string) (*slowReaderConn, error) {
	c, err := rawUpgrade(addr, user, 4096)
	if err != nil {
		return nil, fmt.Errorf("slow reader: %w", err)
	}
	join, _ := json.Marshal(map[string]string{"type": "join_room", "room": room})
	if _, err := c.Write(maskedFrame(0x81, join)); err != nil {
		c.Close()
		return nil, err
	}
	sr := &slowReaderConn{Conn: c, stop: make(chan struct{}), done: make(chan struct{})}
	go sr.keepAlive()
	return sr, nil
}

// rawUpgrade opens a TCP connection to addr (with an SO_RCVBUF of rcvbuf
// bytes when rcvbuf > 0) and upgrades it to a WebSocket for user by hand.
// It reads the response head byte by byte, so that nothing after it is
// consumed: the caller reads (or never reads) the frames that follow.
func rawUpgrade(addr, user string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	req := fmt.Sprintf("GET /ws?client_id=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", url.QueryEscape(user), addr, base64.StdEncoding.EncodeToString(key))
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	head := make([]byte, 0, 512)
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 4096 {
			c.Close()
			return nil, errors.New("response head too long")
		}
		if _, err := c.Read(one); err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		c.Close()
		line, _, _ := bufio.NewReader(bytes.NewReader(head)).ReadLine()
		return nil, fmt.Errorf("handshake refused: %s", line)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// maskedFrame frames payload (< 64 KiB) as one masked client frame with
// the given first byte (0x81: text, 0x8A: pong).
func maskedFrame(first byte, payload []byte) []byte {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := []byte{first}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// freezeProxy forwards one TCP connection to target until freeze, after
// which it forwards nothing in either direction and closes nothing: to both
// ends it looks like a network cut. Only close ends it.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newFreezeProxy(target string) (*freezeProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &freezeProxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptOne()
	return p, nil
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) acceptOne() {
	defer p.wg.Done()
	down, err := p.ln.Accept()
	if err != nil {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		down.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, down, up)
	p.mu.Unlock()
	select {
	case <-p.done: // closed meanwhile
		down.Close()
		up.Close()
		return
	default:
	}
	p.wg.Add(2)
	go p.pump(up, down)
	go p.pump(down, up)
}

func (p *freezeProxy) pump(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.frozen.Load() {
				<-p.done
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !p.frozen.Load() {
				dst.Close()
				src.Close()
			}
			return
		}
	}
}

// freeze cuts the connection silently.
func (p *freezeProxy) freeze() { p.frozen.Store(true) }

// close releases everything and waits for the proxy's goroutines.
func (p *freezeProxy) close() {
	p.once.Do(func() {
		close(p.done)
		p.ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	p.wg.Wait()
}

// floodClient is a special member of a flood room: it sends numbered
// messages, or counts what it reads and checks their order.
type floodClient struct {
	ws       *wsclient.Client
	room     string
	joined   chan struct{}
	acks     atomic.Int64 // acks for flood messages (read goroutine)
	got      atomic.Int64 // flood messages read, in order
	disorder atomic.Int64 // flood messages read out of order
}

func dialFloodClient(n *nodeProc, user, room string) (*floodClient, error) {
	f := &floodClient{room: room, joined: make(chan struct{}, 1)}
	ws, err := wsclient.Dial(n.wsURL(user), wsclient.Options{Timeout: 2 * time.Second, OnEvent: f.onEvent})
	if err != nil {
		return nil, err
	}
	f.ws = ws
	if err := ws.SendJSON(map[string]any{"type": "join_room", "room": room, "id": "join"}); err != nil {
		ws.Abort()
		return nil, err
	}
	select {
	case <-f.joined:
		return f, nil
	case <-time.After(3 * time.Second):
		ws.Abort()
		return nil, errors.New("join not acknowledged")
	}
}

// send writes flood message seq of about size bytes.
func (f *floodClient) send(seq, size int) error {
	id := "f" + strconv.Itoa(seq)
	return f.ws.SendJSON(map[string]any{"type": "room_message", "room": f.room, "id": id,
		"content": id + "|" + strings.Repeat("f", max(size-len(id)-1, 0))})
}

// onEvent runs on the read goroutine.
func (f *floodClient) onEvent(ev *wsclient.Event) {
	switch ev.Event {
	case "ack":
		if string(ev.ID) == `"join"` {
			f.joined <- struct{}{}
		} else {
			f.acks.Add(1)
		}
	case "chat":
		if ev.Room != f.room {
			return
		}
		id, _, _ := strings.Cut(ev.Content, "|")
		if id == "f"+strconv.FormatInt(f.got.Load(), 10) {
			f.got.Add(1)
		} else {
			f.disorder.Add(1)
		}
	}
}
