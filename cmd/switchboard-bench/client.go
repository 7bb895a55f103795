package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// loadClient is one load connection on the raw gws client. Its read loop
// does as little as possible: it recognises the load tool's own chat frames
// by prefix, reads room, sequence and send time from the content, and counts;
// every other event is skipped after a prefix check, except the few the
// setup phase waits for (welcome, ack, error), which go to ctl.
//
// Ownership: the fields above the atomics are set before the read loop
// starts and then only read. lastSeq is touched only by the read loop. The
// atomics are read by the scenario goroutine.
type loadClient struct {
	index int
	user  string
	room  int // index of the room it is in; -1 for none
	conn  *gws.Conn
	run   *runState
	ctl   chan ctlEvent

	lastSeq int64 // last sequence seen in its room, -1 before the first

	// trackPos makes the read loop follow the room stream's position
	// (recover scenario only: it costs a search per chat frame).
	trackPos bool
	pos      streamPos

	received   atomic.Int64 // load frames received
	outOfOrder atomic.Int64 // load frames with a sequence not above the last one
	errors     atomic.Int64 // error events received
	closed     atomic.Bool
	closeCode  atomic.Uint32
	done       chan struct{}
}

// ctlEvent is a setup-phase event: welcome, ack (with its id) or error.
// A join ack with history on also carries the stream position and, for a
// join with since, whether it recovered.
type ctlEvent struct {
	kind      string
	id        string
	code      string
	offset    int64 // -1 when the ack has none
	epoch     string
	recovered int8 // ackNoRecovery, ackRecovered or ackNotRecovered
	// users and connections are a presence answer's counts; size its bytes.
	users, connections, size int
}

// Values of ctlEvent.recovered.
const (
	ackNoRecovery   int8 = iota // the ack has no "recovered" member
	ackRecovered                // "recovered":true
	ackNotRecovered             // "recovered":false
)

// dialOptions configure dialClient.
type dialOptions struct {
	url       string // ws://host:port/ws?client_id=...
	localIP   string // source address, or "" for the default
	timeout   time.Duration
	readBuf   int
	ctlBuffer int
}

// dialClient connects and waits for the welcome event.
func dialClient(ctx context.Context, o dialOptions, c *loadClient) error {
	c.ctl = make(chan ctlEvent, max(o.ctlBuffer, 4))
	c.done = make(chan struct{})
	c.lastSeq = -1
	copt := &gws.ClientOption{
		Addr:             o.url,
		HandshakeTimeout: o.timeout,
		ReadBufferSize:   o.readBuf,
	}
	d := &net.Dialer{Timeout: o.timeout}
	if o.localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.localIP)}
	}
	copt.NewDialer = func() (gws.Dialer, error) { return d, nil }
	conn, resp, err := gws.NewClient(&clientEvents{c: c}, copt)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("handshake refused with HTTP %d: %w", resp.StatusCode, err)
		}
		return err
	}
	c.conn = conn
	go conn.ReadLoop()
	if _, err := c.await(ctx, o.timeout, "welcome", ""); err != nil {
		c.abort()
		return err
	}
	return nil
}

var errClientClosed = errors.New("connection closed")

// await waits for a control event of kind (and id, for acks). Error events
// that carry the id end the wait with an error.
func (c *loadClient) await(ctx context.Context, timeout time.Duration, kind, id string) (ctlEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev := <-c.ctl:
			if ev.kind == kind && (id == "" || ev.id == id) {
				return ev, nil
			}
			if ev.kind == "error" && (id == "" || ev.id == id) {
				return ev, fmt.Errorf("server error %q", ev.code)
			}
		case <-c.done:
			return ctlEvent{}, fmt.Errorf("%w (code %d)", errClientClosed, c.closeCode.Load())
		case <-t.C:
			return ctlEvent{}, fmt.Errorf("no %s within %v", kind, timeout)
		case <-ctx.Done():
			return ctlEvent{}, ctx.Err()
		}
	}
}

// send writes one text frame.
func (c *loadClient) send(b []byte) error { return c.conn.WriteMessage(gws.OpcodeText, b) }

// close sends a normal close and waits, bounded, for the connection to end.
func (c *loadClient) close(timeout time.Duration) {
	if c.conn == nil {
		return
	}
	_ = c.conn.WriteClose(1000, nil)
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.abort()
	}
}

// abort drops the TCP connection and waits for the read loop to end.
func (c *loadClient) abort() {
	_ = c.conn.NetConn().Close()
	<-c.done
}

type clientEvents struct {
	gws.BuiltinEventHandler
	c *loadClient
}

func (h *clientEvents) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (h *clientEvents) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		h.c.closeCode.Store(uint32(ce.Code))
	}
	h.c.closed.Store(true)
	close(h.c.done)
}

func (h *clientEvents) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	c := h.c
	b := m.Bytes()
	switch {
	case bytes.HasPrefix(b, prefixChat):
		if c.trackPos {
			c.pos.onPosition(b)
		}
		if i := bytes.Index(b, markContent); i >= 0 {
			c.onLoad(b[i+len(markContent):])
		}
	case bytes.HasPrefix(b, prefixWelcome):
		c.postCtl(ctlEvent{kind: "welcome"})
	case bytes.HasPrefix(b, prefixAck):
		ev := ctlEvent{kind: "ack", id: quotedPrefix(b[len(prefixAck):])}
		parseAck(b, &ev)
		c.postCtl(ev)
	case bytes.HasPrefix(b, prefixPresence):
		c.postCtl(parsePresence(b))
	case bytes.HasPrefix(b, prefixError):
		c.errors.Add(1)
		ev := ctlEvent{kind: "error", code: quotedPrefix(b[len(prefixError):])}
		if i := bytes.Index(b, []byte(`"id":"`)); i >= 0 {
			ev.id = quotedPrefix(b[i+6:])
		}
		if c.run != nil {
			c.run.errors.Add(1)
		}
		c.postCtl(ev)
	}
}

// postCtl never blocks the read loop: a full control queue drops the event
// (the setup phase then times out and reports it).
func (c *loadClient) postCtl(ev ctlEvent) {
	select {
	case c.ctl <- ev:
	default:
	}
}

// onLoad handles "ROOM:SEQ:UNIXNANO:..." from a load message.
func (c *loadClient) onLoad(p []byte) {
	now := time.Now()
	room, p := readUint(p)
	seq, p := readUint(p)
	ts, _ := readUint(p)
	if seq <= c.lastSeq {
		c.outOfOrder.Add(1)
	}
	c.lastSeq = seq
	c.received.Add(1)
	if r := c.run; r != nil {
		r.deliver(int(room), int(seq), now.Sub(time.Unix(0, ts)))
	}
}

// readUint parses decimal digits up to the next ':' and returns the rest
// after it. Malformed input yields -1.
func readUint(p []byte) (int64, []byte) {
	var n int64
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		n = n*10 + int64(p[i]-'0')
	}
	if i == 0 || i >= len(p) || p[i] != ':' {
		return -1, nil
	}
	return n, p[i+1:]
}

// quotedPrefix returns b up to the first '"'.
func quotedPrefix(b []byte) string {
	if i := bytes.IndexByte(b, '"'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// appendRoomMessage appends a room_message frame carrying a load content of
// about size bytes.
func appendRoomMessage(dst []byte, room string, roomIdx, seq int, sent time.Time, size int) []byte {
	dst = append(dst, `{"type":"room_message","room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","content":"`...)
	dst = appendContent(dst, roomIdx, seq, sent, size)
	return append(dst, `"}`...)
}

// appendChat appends a chat frame carrying a load content.
func appendChat(dst []byte, seq int, sent time.Time, size int) []byte {
	dst = append(dst, `{"type":"chat","content":"`...)
	dst = appendContent(dst, 0, seq, sent, size)
	return append(dst, `"}`...)
}

func appendContent(dst []byte, roomIdx, seq int, sent time.Time, size int) []byte {
	start := len(dst)
	dst = append(dst, contentMark...)
	dst = strconv.AppendInt(dst, int64(roomIdx), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, sent.UnixNano(), 10)
	dst = append(dst, ':')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// wsURL builds the WebSocket URL for client id on a node given as ws://host:port
// (path /ws assumed) or a full ws:// URL with a path.
func wsURL(node, clientID string) (string, error) {
	u, err := url.Parse(node)
	if err != nil {
		return "", err
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("node %q: want ws:// or wss://", node)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	q := u.Query()
	q.Set("client_id", clientID)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// statsURL is the node's /stats address.
func statsURL(node string) (string, error) {
	u, err := url.Parse(node)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path, u.RawQuery = "/stats", ""
	return u.String(), nil
}
