package transport_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Frame headers an attacker writes by hand, against a real node: each
// fails its own connection with the code RFC 6455 names, the frames sent
// before it are served, and the node, its other clients and its budgets
// carry on. Before the frame gate, the first of these (a 64-bit length with
// its top bit set) panicked gws's read loop and stopped the process.

// rawHeader is a masked client frame header whose length is written in the
// encoding lenCode names (0: 7-bit, 126: 16-bit, 127: 64-bit), whatever the
// length: non-minimal encodings and impossible lengths included.
func rawHeader(b0, lenCode byte, length uint64) []byte {
	h := []byte{b0}
	switch lenCode {
	case 126:
		h = binary.BigEndian.AppendUint16(append(h, 0x80|126), uint16(length))
	case 127:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), length)
	default:
		h = append(h, 0x80|byte(length))
	}
	return append(h, 0x11, 0x22, 0x33, 0x44)
}

type hostileHeader struct {
	name  string
	bytes []byte
	code  uint16
}

// hostileHeaders is every class of bad header: impossible lengths on each
// opcode, non-minimal encodings, and the rules on opcodes, bits, control
// frames and fragments. open is a first fragment that leaves a message
// open, for the classes that need one.
func hostileHeaders() []hostileHeader {
	open := maskedFrame(false, 0x1, []byte(`{"type":"chat",`))
	var hs []hostileHeader
	add := func(name string, code uint16, parts ...[]byte) {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		hs = append(hs, hostileHeader{name, b, code})
	}
	for _, op := range []struct {
		name  string
		b0    byte
		frag  bool // needs an open message first
		ctrl  bool
		first []byte
	}{
		{"text", 0x81, false, false, nil},
		{"binary", 0x82, false, false, nil},
		{"unfinished text", 0x01, false, false, nil},
		{"continuation", 0x80, true, false, open},
		{"unfinished continuation", 0x00, true, false, open},
		{"close", 0x88, false, true, nil},
		{"ping", 0x89, false, true, nil},
		{"pong", 0x8A, false, true, nil},
	} {
		add(op.name+", length 2^63", 1002, op.first, rawHeader(op.b0, 127, 1<<63))
		add(op.name+", length 2^64-1", 1002, op.first, rawHeader(op.b0, 127, ^uint64(0)))
		add(op.name+", length 2^63+126", 1002, op.first, rawHeader(op.b0, 127, 1<<63+126))
		if op.ctrl {
			add(op.name+", 16-bit length", 1002, rawHeader(op.b0, 126, 200))
			add(op.name+", 126 bytes", 1002, rawHeader(op.b0, 0, 126))
			add(op.name+", fragmented", 1002, rawHeader(op.b0&0x0F, 0, 0))
			continue
		}
		add(op.name+", 16-bit length 0 (non-minimal)", 1002, op.first, rawHeader(op.b0, 126, 0))
		add(op.name+", 16-bit length 125 (non-minimal)", 1002, op.first, rawHeader(op.b0, 126, 125))
		add(op.name+", 64-bit length 1 (non-minimal)", 1002, op.first, rawHeader(op.b0, 127, 1))
		add(op.name+", 64-bit length 65535 (non-minimal)", 1002, op.first, rawHeader(op.b0, 127, 0xFFFF))
		add(op.name+", 64-bit length 2^40 (too large)", 1009, op.first, rawHeader(op.b0, 127, 1<<40))
		add(op.name+", 64-bit length 2^63-1 (too large)", 1009, op.first, rawHeader(op.b0, 127, 1<<63-1))
	}
	add("continuation without a message", 1002, rawHeader(0x80, 0, 2))
	add("text inside a fragmented message", 1002, open, rawHeader(0x81, 0, 2))
	add("binary inside a fragmented message", 1002, open, rawHeader(0x82, 0, 2))
	add("fragments over the limit", 1009, maskedFrame(false, 0x1, make([]byte, 60<<10)), rawHeader(0x80, 126, 8<<10))
	add("unmasked text", 1002, []byte{0x81, 0x7F})
	add("unmasked ping", 1002, []byte{0x89, 0x00})
	for _, rsv := range []byte{0x40, 0x20, 0x10} {
		add(fmt.Sprintf("reserved bit %#x", rsv), 1002, rawHeader(0x81|rsv, 0, 2))
	}
	for op := byte(3); op <= 0xF; op++ {
		if op < 8 || op > 0xA {
			add(fmt.Sprintf("reserved opcode %#x", op), 1002, rawHeader(0x80|op, 0, 0))
		}
	}
	return hs
}

func TestHostileFrameHeaders(t *testing.T) {
	n := startNode(t, nil)
	bystander := n.dial("bystander")
	for i, h := range hostileHeaders() {
		t.Run(h.name, func(t *testing.T) {
			p := wireSession(t, n, fmt.Sprint("attacker", i))
			// A chat before the bad header, in the same write: it is served.
			before := fmt.Sprintf("before-%d", i)
			p.write(t, append(maskedFrame(true, 0x1, []byte(`{"type":"chat","content":"`+before+`"}`)), h.bytes...))
			p.closed(t, h.code)
			expect(t, bystander, "the chat sent before the bad header", func(e *wsclient.Event) bool {
				return e.Event == "chat" && e.Content == before
			})
		})
	}
	waitFor(t, "attackers' sessions gone", 10*time.Second, func() bool {
		return n.node.Metrics().Sessions.Load() == 1 && n.srv.OpenConnections() == 1
	})
	stillWorks(t, bystander, "unharmed")
	if st := n.srv.Stats(); st.ReadLoopPanics != 0 || st.FrameBudgetUsed != 0 {
		t.Errorf("read loop panics %d, frame budget still used %d", st.ReadLoopPanics, st.FrameBudgetUsed)
	}
	fresh := n.dial("fresh")
	stillWorks(t, fresh, "fresh")
}

// Defence in depth: with the gate taken away, the frame that panics gws's
// read loop costs its own connection (closed 1011, counted) and nothing
// else: the process, the other clients, the connection slots and the
// session count carry on.
func TestReadLoopPanicCostsOneConnection(t *testing.T) {
	n := startNode(t, nil, withTransport(transport.WithoutFrameGate))
	bystander := n.dial("bystander")
	p := wireSession(t, n, "attacker")
	p.write(t, rawHeader(0x81, 127, 1<<63))
	p.closed(t, 1011)
	waitFor(t, "the attacker's session gone", 5*time.Second, func() bool {
		return n.node.Metrics().Sessions.Load() == 1 && n.srv.OpenConnections() == 1
	})
	if got := n.srv.Stats().ReadLoopPanics; got != 1 {
		t.Errorf("read loop panics %d, want 1", got)
	}
	if got := metricValue(t, n, "switchboard_read_loop_panics_total"); got != 1 {
		t.Errorf("switchboard_read_loop_panics_total %v, want 1", got)
	}
	stillWorks(t, bystander, "unharmed")
	stillWorks(t, n.dial("fresh"), "fresh")
}

// A header announcing a large frame whose payload never comes makes gws
// reserve the frame's whole buffer. Those reservations are bounded node-wide
// by the frame budget: past it a frame waits (its connection's reads
// paused), then its connection is closed with 1013, while small frames and
// other clients go on. The live heap grows by about the budget, not by
// what the headers announce.
func TestFrameBudgetBoundsReservedMemory(t *testing.T) {
	const (
		budget    = 4 << 20
		attackers = 300
		announced = 64 << 10 // each reserves a 128 KiB buffer: 37.5 MiB in all without the budget
	)
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.FrameBudgetBytes = budget }))
	bystander := n.dial("bystander")

	peers := make([]net.Conn, attackers)
	for i := range peers {
		peers[i] = wireSession(t, n, fmt.Sprint("hog", i)).nc
	}
	before := liveHeapAfterGC()
	for _, nc := range peers {
		if _, err := nc.Write(rawHeader(0x82, 127, announced)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the budget spent and the rest waiting", 5*time.Second, func() bool {
		return n.srv.Stats().FrameBudgetUsed == budget && metricValue(t, n, "switchboard_frame_budget_waits_total") == attackers-budget/(128<<10)
	})
	grew := int64(liveHeapAfterGC()) - int64(before)
	t.Logf("live heap %d -> %d bytes (%+d) with %d connections announcing %d bytes each, budget %d", before, before+uint64(grew), grew, attackers, announced, budget)
	if grew > 2*budget {
		t.Errorf("live heap grew by %d bytes, more than twice the %d-byte budget", grew, budget)
	}
	// Small frames are never charged: everyone else goes on.
	stillWorks(t, bystander, "unharmed")

	// A waiting frame gives up after its wait: closed with 1013.
	transport.SetFrameBudgetWait(n.srv, 50*time.Millisecond)
	late := wireSession(t, n, "late")
	late.write(t, rawHeader(0x82, 127, announced))
	late.closed(t, 1013)

	for _, nc := range peers {
		nc.Close()
	}
	waitFor(t, "every reservation given back", 10*time.Second, func() bool {
		return n.srv.Stats().FrameBudgetUsed == 0 && n.node.Metrics().Sessions.Load() == 1
	})
	stillWorks(t, bystander, "after")
}

func liveHeapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The gate does not get in the way of large frames that do arrive: a chat
// of 60 KiB, written slowly, arrives whole.
func TestLargeFrameWrittenSlowly(t *testing.T) {
	n := startNode(t, nil)
	bystander := n.dial("bystander")
	p := wireSession(t, n, "slow")
	content := strings.Repeat("z", 60<<10)
	f := maskedFrame(true, 0x1, []byte(`{"type":"chat","content":"`+content+`"}`))
	for len(f) > 0 {
		k := min(len(f), 7<<10)
		p.write(t, f[:k])
		f = f[k:]
		time.Sleep(2 * time.Millisecond) // spread the frame over many reads
	}
	expect(t, bystander, "the slow 60 KiB chat", func(e *wsclient.Event) bool {
		return e.Event == "chat" && e.Content == content
	})
	waitFor(t, "the budget given back", 5*time.Second, func() bool { return n.srv.Stats().FrameBudgetUsed == 0 })
}

// FuzzFrameHeaders writes a fuzzed frame header (and a little payload) to a
// live connection of a real node, behind a valid command, then half-closes
// it. Whatever the bytes, the node must survive with no read loop panic,
// answer with a close code for bad input (or an echo of a valid close, or
// nothing when the bytes are a valid frame cut short), end the session and give back
// every byte of frame budget. The seeds are every hostile class above; the
// fuzzer mutates them byte by byte.
func FuzzFrameHeaders(f *testing.F) {
	n := startNode(f, nil)
	for _, h := range hostileHeaders() {
		if len(h.bytes) <= 64 {
			f.Add(h.bytes)
		}
	}
	f.Add(maskedFrame(true, 0x1, []byte(`{"type":"ping","id":"ok"}`)))
	// The node's codes for bad input, or an echo of a valid close frame
	// among the fuzzed bytes (no code: 1005; application codes echoed).
	allowed := func(code uint16) bool {
		switch code {
		case 1000, 1002, 1005, 1007, 1008, 1009:
			return true
		}
		return code >= 3000 && code <= 4999
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		if len(header) > 64 {
			return
		}
		rc, resp, err := tryUpgrade(n, "/ws?client_id=fz", nil)
		if err != nil || rc == nil {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		defer func() {
			rc.nc.Close()
			if err := waitSessions(n, 0); err != nil {
				t.Fatal(err)
			}
			if st := n.srv.Stats(); st.ReadLoopPanics != 0 || st.FrameBudgetUsed != 0 {
				t.Fatalf("read loop panics %d, frame budget held %d", st.ReadLoopPanics, st.FrameBudgetUsed)
			}
		}()
		if ev, err := rc.event(5 * time.Second); err != nil || ev.Event != "welcome" {
			t.Fatalf("welcome: %+v %v", ev, err)
		}
		msg := append(frame(true, 0x1, []byte(`{"type":"ping","id":"before"}`)), header...)
		msg = append(msg, "0123456789abcdef"...)
		if err := rc.write(msg); err != nil {
			t.Fatal(err)
		}
		_ = rc.nc.(*net.TCPConn).CloseWrite()
		for {
			op, p, err := rc.readFrame(5 * time.Second)
			if err != nil {
				return // the node closed the TCP connection
			}
			if op == 0x8 {
				if code := closeCode(p); !allowed(code) {
					t.Fatalf("closed with %d %q", code, p[min(2, len(p)):])
				}
				return
			}
		}
	})
}
