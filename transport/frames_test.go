package transport_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// WebSocket framing edges (RFC 6455) against a real node, with a client
// written against the wire: what a client library would never send.

// wirePeer is a WebSocket client written against the wire: it sends frames
// a client library would never send, and reads what the server wrote, byte
// for byte.
type wirePeer struct {
	nc net.Conn
	br *bufio.Reader
}

// handshake is a valid upgrade request for path.
func handshake(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// dialWire opens a TCP connection to n and upgrades it (handshakeOn).
func dialWire(t testing.TB, n *testNode, path string, early []byte) *wirePeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return handshakeOn(t, nc, path, early)
}

// handshakeOn writes the upgrade request for path on nc, followed by early
// (frames pipelined behind the request), and reads the response head, which
// must be 101.
func handshakeOn(t testing.TB, nc net.Conn, path string, early []byte) *wirePeer {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(append([]byte(handshake(path)), early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade refused: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	return &wirePeer{nc: nc, br: br}
}

// maskedFrame encodes one client frame, masked as RFC 6455 requires.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	h := op
	if fin {
		h |= 0x80
	}
	b := []byte{h}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x5a, 0x13, 0xc4, 0x7e}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// unmasked encodes a client frame without a mask, which RFC 6455 forbids.
func unmasked(op byte, payload []byte) []byte {
	return append([]byte{0x80 | op, byte(len(payload))}, payload...)
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// wireFrame is one frame as the server sent it.
type wireFrame struct {
	fin     bool
	op      byte
	payload []byte
}

func (f wireFrame) closeCode() uint16 {
	if len(f.payload) < 2 {
		return 1005
	}
	return binary.BigEndian.Uint16(f.payload)
}

// next reads one server frame within d and checks what every server frame
// must be: unmasked, reserved bits clear.
func (p *wirePeer) next(t testing.TB, d time.Duration) (wireFrame, error) {
	t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return wireFrame{}, err
	}
	if h[1]&0x80 != 0 {
		t.Fatalf("the server sent a masked frame")
	}
	if h[0]&0x70 != 0 {
		t.Fatalf("the server set reserved bits: %#x", h[0])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return wireFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return wireFrame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<20 {
		t.Fatalf("server frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.br, b); err != nil {
		return wireFrame{}, err
	}
	return wireFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, payload: b}, nil
}

// event reads frames until a text frame and decodes it; pings and pongs are
// skipped, a close frame fails the test.
func (p *wirePeer) event(t testing.TB) *wsclient.Event {
	t.Helper()
	for {
		f, err := p.next(t, 5*time.Second)
		if err != nil {
			t.Fatalf("reading an event: %v", err)
		}
		switch f.op {
		case 0x1:
			if !f.fin {
				t.Fatal("the server fragmented an event")
			}
			ev := &wsclient.Event{Raw: f.payload}
			if err := json.Unmarshal(f.payload, ev); err != nil {
				t.Fatalf("event %q: %v", f.payload, err)
			}
			return ev
		case 0x8:
			t.Fatalf("closed %d %q while an event was expected", f.closeCode(), f.payload[min(2, len(f.payload)):])
		}
	}
}

func (p *wirePeer) write(t testing.TB, frames ...[]byte) {
	t.Helper()
	for _, b := range frames {
		_ = p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := p.nc.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

func (p *wirePeer) ack(t testing.TB, id string) {
	t.Helper()
	for {
		ev := p.event(t)
		if ev.Event == "ack" && string(ev.ID) == id {
			return
		}
		if ev.Event == "error" {
			t.Fatalf("waiting for ack %s: %s", id, ev.Raw)
		}
	}
}

// closed reads until the server's close frame, checks its code, then checks
// that the server closed the TCP connection too.
func (p *wirePeer) closed(t testing.TB, want uint16) {
	t.Helper()
	for {
		f, err := p.next(t, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for close %d: %v", want, err)
		}
		if f.op != 0x8 {
			continue
		}
		if got := f.closeCode(); got != want {
			t.Fatalf("closed %d %q, want %d", got, f.payload[min(2, len(f.payload)):], want)
		}
		break
	}
	_ = p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.br.ReadByte(); err == nil {
		t.Fatal("the server sent more after its close frame")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection open after its close frame")
	}
}

// wireSession upgrades a wire peer as client id and reads its welcome.
func wireSession(t testing.TB, n *testNode, id string) *wirePeer {
	t.Helper()
	p := dialWire(t, n, "/ws?client_id="+id, nil)
	if ev := p.event(t); ev.Event != "welcome" {
		t.Fatalf("first event %s", ev.Raw)
	}
	return p
}

func TestFragmentedMessages(t *testing.T) {
	n := startNode(t, nil)
	r := wireSession(t, n, "frag")

	// One message in three fragments.
	r.write(t,
		maskedFrame(false, 0x1, []byte(`{"type":"ping",`)),
		maskedFrame(false, 0x0, []byte(`"id":"fr`)),
		maskedFrame(true, 0x0, []byte(`ag"}`)))
	r.ack(t, `"frag"`)

	// A ping between fragments is answered at once; the message still
	// arrives whole.
	r.write(t,
		maskedFrame(false, 0x1, []byte(`{"type":"ping","id":`)),
		maskedFrame(true, 0x9, []byte("hb")),
		maskedFrame(true, 0x0, []byte(`"mid"}`)))
	f, err := r.next(t, 5*time.Second)
	if err != nil || f.op != 0xA || string(f.payload) != "hb" || !f.fin {
		t.Fatalf("pong for a ping between fragments: %+v %v", f, err)
	}
	r.ack(t, `"mid"`)

	// A character split across two fragments is valid UTF-8 once joined.
	e := []byte("é")
	r.write(t,
		maskedFrame(false, 0x1, append([]byte(`{"type":"ping","id":"`), e[0])),
		maskedFrame(true, 0x0, append([]byte{e[1]}, `"}`...)))
	r.ack(t, `"é"`)

	// Frames split across writes, and several frames in one write.
	one := maskedFrame(true, 0x1, []byte(`{"type":"ping","id":"bytes"}`))
	for i := range one {
		r.write(t, one[i:i+1])
	}
	r.ack(t, `"bytes"`)
	var batch []byte
	for i := range 3 {
		batch = append(batch, maskedFrame(true, 0x1, []byte(fmt.Sprintf(`{"type":"ping","id":%d}`, i)))...)
	}
	r.write(t, batch)
	for i := range 3 {
		r.ack(t, fmt.Sprint(i))
	}
}

// A frame sent right behind the upgrade request, before the 101 arrives, is
// not lost.
func TestFramePipelinedWithHandshake(t *testing.T) {
	n := startNode(t, nil)
	p := dialWire(t, n, "/ws?client_id=eager", maskedFrame(true, 0x1, []byte(`{"type":"ping","id":"early"}`)))
	if ev := p.event(t); ev.Event != "welcome" {
		t.Fatalf("first event %s", ev.Raw)
	}
	p.ack(t, `"early"`)
}

// Frames RFC 6455 forbids fail the connection with the code it names; the
// node and every other connection carry on.
func TestProtocolViolationsClose(t *testing.T) {
	n := startNode(t, nil)
	bystander := n.dial("bystander")
	cases := []struct {
		name   string
		frames [][]byte
		code   uint16
	}{
		{"invalid UTF-8 text", [][]byte{maskedFrame(true, 0x1, []byte("{\"type\":\"chat\",\"content\":\"\xff\"}"))}, 1007},
		{"invalid UTF-8 across fragments", [][]byte{maskedFrame(false, 0x1, []byte{'"', 0xe2}), maskedFrame(true, 0x0, []byte{'x', '"'})}, 1007},
		{"unmasked client frame", [][]byte{unmasked(0x1, []byte(`{"type":"ping"}`))}, 1002},
		{"continuation without a start", [][]byte{maskedFrame(true, 0x0, []byte(`{}`))}, 1002},
		{"new message inside a fragmented one", [][]byte{maskedFrame(false, 0x1, []byte(`{`)), maskedFrame(true, 0x1, []byte(`{}`))}, 1002},
		{"fragmented control frame", [][]byte{maskedFrame(false, 0x9, []byte("x"))}, 1002},
		{"control frame over 125 bytes", [][]byte{maskedFrame(true, 0x9, make([]byte, 126))}, 1002},
		{"reserved opcode", [][]byte{maskedFrame(true, 0x3, []byte("x"))}, 1002},
		{"reserved bit", [][]byte{func() []byte { f := maskedFrame(true, 0x1, []byte(`{}`)); f[0] |= 0x40; return f }()}, 1002},
	}
	for i, tc := range cases {
		r := wireSession(t, n, fmt.Sprint("bad", i))
		r.write(t, tc.frames...)
		t.Run(tc.name, func(t *testing.T) { r.closed(t, tc.code) })
	}
	waitFor(t, "bad sessions gone", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 1 })
	stillWorks(t, bystander, "unharmed")
}

// A client's close frame is echoed (1000 for the 1000-range codes, the same
// code for application codes) and ends the session; a malformed one fails
// the connection.
func TestClientClose(t *testing.T) {
	n := startNode(t, nil)
	cases := []struct {
		name    string
		payload []byte
		echo    uint16
	}{
		{"normal with a reason", closePayload(1000, "bye"), 1000},
		{"going away", closePayload(1001, ""), 1000},
		{"application code", closePayload(4000, "custom"), 4000},
		{"no payload", nil, 1005},
		{"one byte payload", []byte{3}, 1002},
		{"reserved code", closePayload(1005, ""), 1002},
		{"code out of range", closePayload(999, ""), 1002},
		{"reason not UTF-8", closePayload(1000, "\xff"), 1007},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := wireSession(t, n, fmt.Sprint("closer", i))
			r.write(t, maskedFrame(true, 0x8, tc.payload))
			r.closed(t, tc.echo)
			waitFor(t, "session gone", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 0 })
		})
	}
}

// The size limit applies to the message: a frame of exactly
// MaxMessageBytes is served, one byte more closes with 1009.
func TestMaxMessageSize(t *testing.T) {
	const max = 256
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.MaxMessageBytes = max }))
	bystander := n.dial("bystander")
	msg := func(size int) []byte {
		head := `{"type":"ping","id":"fits","pad":"`
		return []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
	}
	r := wireSession(t, n, "big")
	r.write(t, maskedFrame(true, 0x1, msg(max)))
	r.ack(t, `"fits"`)
	r.write(t, maskedFrame(true, 0x1, msg(max+1)))
	r.closed(t, 1009)

	c, err := wsclient.Dial(n.wsURL("/ws?client_id=lib"), wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	send(t, c, map[string]any{"type": "chat", "content": strings.Repeat("y", max)})
	if code, err := c.WaitClosed(5 * time.Second); err != nil || code != 1009 {
		t.Fatalf("oversized chat: closed %d %v, want 1009", code, err)
	}
	m := n.dial("marker")
	send(t, m, map[string]any{"type": "chat", "content": "marker"})
	for _, e := range collectUntil(t, bystander, "marker", chatFrom("marker", "marker")) {
		if e.Event == "chat" && e.From == "lib" {
			t.Fatalf("an oversized chat was delivered: %d bytes", len(e.Raw))
		}
	}
}
