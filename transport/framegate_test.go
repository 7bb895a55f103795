package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// hdr builds a masked client frame header with the given first byte and
// length written in the encoding lenCode names (0: 7-bit, 126: 16-bit,
// 127: 64-bit), whatever the length, so that non-minimal encodings and
// impossible lengths can be written.
func hdr(b0 byte, lenCode byte, length uint64) []byte {
	h := []byte{b0}
	switch lenCode {
	case 126:
		h = append(h, 0x80|126)
		h = binary.BigEndian.AppendUint16(h, uint16(length))
	case 127:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, length)
	default:
		h = append(h, 0x80|byte(length))
	}
	return append(h, 1, 2, 3, 4) // mask key
}

// gateFrame is a whole masked frame (the payload is not masked: the gate
// does not look at payloads).
func gateFrame(b0 byte, payload []byte) []byte {
	code := byte(0)
	switch n := len(payload); {
	case n > 0xFFFF:
		code = 127
	case n > 125:
		code = 126
	}
	return append(hdr(b0, code, uint64(len(payload))), payload...)
}

// chunkReader returns its data in chunks of at most size bytes.
type chunkReader struct {
	data []byte
	size int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.size, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// runGate reads stream through a gate in chunks of size and returns what
// passed, the verdict (0 when none) and the gate.
func runGate(t testing.TB, stream []byte, size int, limits *frameLimits) ([]byte, uint16, *frameGate) {
	t.Helper()
	g := newFrameGate(&chunkReader{data: stream, size: size}, nil, limits)
	var out bytes.Buffer
	buf := make([]byte, 64)
	for {
		n, err := g.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, errFrameRefused) {
			return out.Bytes(), g.verdict().code, g
		}
		if err == io.EOF {
			return out.Bytes(), 0, g
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

func testLimits(maxMessage uint64, budget int64) *frameLimits {
	return &frameLimits{maxMessage: maxMessage, budget: newFrameBudget(budget)}
}

// Every class of frame header, valid and hostile, gets its verdict, and the
// bytes before a refused header pass: whether the stream comes in one
// chunk or byte by byte.
func TestFrameGateVerdicts(t *testing.T) {
	const max = 64 << 10
	ok := gateFrame(0x81, []byte(`{"type":"ping"}`))
	cases := []struct {
		name string
		tail []byte // sent after a valid text frame
		code uint16 // 0: accepted
	}{
		{"text", gateFrame(0x81, []byte("{}")), 0},
		{"binary", gateFrame(0x82, []byte("{}")), 0},
		{"empty text", gateFrame(0x81, nil), 0},
		{"ping", gateFrame(0x89, []byte("p")), 0},
		{"pong", gateFrame(0x8A, nil), 0},
		{"close", gateFrame(0x88, []byte{3, 232}), 0},
		{"16-bit length 126", gateFrame(0x81, make([]byte, 126)), 0},
		{"64-bit length 65536 (the limit)", gateFrame(0x81, make([]byte, max)), 0},
		{"fragments", append(gateFrame(0x01, []byte("{")), gateFrame(0x80, []byte("}"))...), 0},
		{"ping between fragments", append(append(gateFrame(0x01, []byte("{")), gateFrame(0x89, nil)...), gateFrame(0x80, []byte("}"))...), 0},

		{"text, 64-bit length 2^63", hdr(0x81, 127, 1<<63), 1002},
		{"text, 64-bit length 2^64-1", hdr(0x81, 127, ^uint64(0)), 1002},
		{"binary, 64-bit length 2^63+16", hdr(0x82, 127, 1<<63+16), 1002},
		{"continuation, 64-bit length 2^63", append(gateFrame(0x01, []byte("{")), hdr(0x80, 127, 1<<63)...), 1002},
		{"unfinished fragment, 64-bit length 2^63", append(gateFrame(0x01, []byte("{")), hdr(0x00, 127, 1<<63)...), 1002},
		{"ping, 64-bit length 2^63", hdr(0x89, 127, 1<<63), 1002},
		{"close, 64-bit length 2^64-1", hdr(0x88, 127, ^uint64(0)), 1002},
		{"pong, 16-bit length", hdr(0x8A, 126, 200), 1002},
		{"16-bit length 5 (non-minimal)", hdr(0x81, 126, 5), 1002},
		{"16-bit length 125 (non-minimal)", hdr(0x81, 126, 125), 1002},
		{"64-bit length 100 (non-minimal)", hdr(0x81, 127, 100), 1002},
		{"64-bit length 65535 (non-minimal)", hdr(0x81, 127, 0xFFFF), 1002},
		{"64-bit length 2^62 (too large)", hdr(0x81, 127, 1<<62), 1009},
		{"16-bit length over the limit", hdr(0x81, 127, max+1), 1009},
		{"unmasked", []byte{0x81, 0x02, '{', '}'}, 1002},
		{"unmasked ping", []byte{0x89, 0x00}, 1002},
		{"rsv1", gateFrame(0xC1, []byte("{}")), 1002},
		{"rsv2", gateFrame(0xA1, []byte("{}")), 1002},
		{"rsv3", gateFrame(0x91, []byte("{}")), 1002},
		{"fragmented ping", gateFrame(0x09, nil), 1002},
		{"fragmented close", gateFrame(0x08, nil), 1002},
		{"ping of 126 bytes", gateFrame(0x89, make([]byte, 126)), 1002},
		{"continuation without a start", gateFrame(0x80, []byte("x")), 1002},
		{"text inside a fragmented message", append(gateFrame(0x01, []byte("{")), gateFrame(0x81, []byte("{}"))...), 1002},
		{"fragments over the limit", append(gateFrame(0x01, make([]byte, max-10)), hdr(0x80, 126, 200)...), 1009},
	}
	for op := byte(3); op <= 0xF; op++ {
		if op == 8 || op == 9 || op == 10 {
			continue
		}
		cases = append(cases, struct {
			name string
			tail []byte
			code uint16
		}{"reserved opcode " + string("0123456789ABCDEF"[op]), gateFrame(0x80|op, nil), 1002})
	}
	for _, tc := range cases {
		for _, size := range []int{1, 7, 1 << 20} {
			stream := append(append([]byte(nil), ok...), tc.tail...)
			passed, code, g := runGate(t, stream, size, testLimits(max, 1<<20))
			if code != tc.code {
				t.Errorf("%s (chunks of %d): verdict %d, want %d", tc.name, size, code, tc.code)
				continue
			}
			if !bytes.HasPrefix(stream, passed) || !bytes.HasPrefix(passed, ok) {
				t.Errorf("%s (chunks of %d): passed %d bytes, not the frame before it", tc.name, size, len(passed))
			}
			if code == 0 && !bytes.Equal(passed, stream) {
				t.Errorf("%s (chunks of %d): passed %d of %d bytes", tc.name, size, len(passed), len(stream))
			}
			if code != 0 && len(passed) >= len(stream) {
				t.Errorf("%s (chunks of %d): the refused header passed", tc.name, size)
			}
			g.release()
			if used := g.limits.budget.used.Load(); used != 0 {
				t.Errorf("%s: %d bytes of budget left after release", tc.name, used)
			}
		}
	}
}

// A frame whose payload has not arrived is charged what gws reserves for it
// and gives it back when its payload has passed; a frame that arrives
// whole, or a small one, is not charged.
func TestFrameGateCharges(t *testing.T) {
	limits := testLimits(64<<10, 1<<20)
	payload := make([]byte, 40<<10)
	whole := gateFrame(0x81, payload)

	// Whole in one chunk: no charge.
	g := newFrameGate(&chunkReader{data: whole, size: len(whole)}, nil, limits)
	buf := make([]byte, len(whole))
	if n, _ := g.Read(buf); n != len(whole) || limits.budget.used.Load() != 0 {
		t.Fatalf("a whole frame: passed %d, charged %d", n, limits.budget.used.Load())
	}

	// Header first: charged the 64 KiB buffer until the payload has passed.
	g = newFrameGate(&chunkReader{data: whole, size: 100}, nil, limits)
	if n, _ := g.Read(buf); n != 100 {
		t.Fatalf("passed %d", n)
	}
	if got := limits.budget.used.Load(); got != 64<<10 {
		t.Fatalf("charged %d while the payload comes, want %d", got, 64<<10)
	}
	for got := 100; got < len(whole); {
		n, err := g.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got := limits.budget.used.Load(); got != 0 {
		t.Fatalf("%d still charged after the payload", got)
	}

	// A small frame whose payload is late: not charged.
	small := gateFrame(0x81, make([]byte, 2000))
	g = newFrameGate(&chunkReader{data: small, size: 10}, nil, limits)
	_, _ = g.Read(buf)
	if got := limits.budget.used.Load(); got != 0 {
		t.Fatalf("a 2,000-byte frame charged %d", got)
	}

	// A fragmented message keeps twice its payload charged until it ends;
	// each fragment's read buffer only while that fragment comes.
	frag := append(gateFrame(0x01, make([]byte, 1000)), gateFrame(0x80, make([]byte, 1000))...)
	g = newFrameGate(&chunkReader{data: frag, size: 1008}, nil, limits)
	if n, _ := g.Read(buf); n != 1008 {
		t.Fatalf("passed %d", n)
	}
	if got := limits.budget.used.Load(); got != 2000 {
		t.Fatalf("open fragmented message charged %d, want 2000", got)
	}
	if !g.midMessage() {
		t.Fatal("gate does not know a message is open")
	}
	for g.midMessage() || limits.budget.used.Load() != 0 {
		if _, err := g.Read(buf); err != nil {
			t.Fatalf("%v with %d charged", err, limits.budget.used.Load())
		}
	}
}

// When the budget is spent, the frames before the unaffordable header pass
// at once; the header waits for budget given back by another connection,
// and past the wait its connection is refused with 1013.
func TestFrameGateWaitsForBudget(t *testing.T) {
	limits := testLimits(64<<10, 256<<10)
	limits.wait = 5 * time.Second
	big := hdr(0x82, 127, 0xFFFF+1) // costs a 128 KiB read buffer
	buf := make([]byte, 128)
	hogs := make([]*frameGate, 2)
	for i := range hogs {
		hogs[i] = newFrameGate(&chunkReader{data: big, size: 100}, nil, limits)
		if n, err := hogs[i].Read(buf); n != len(big) || err != nil {
			t.Fatalf("hog %d: passed %d, %v", i, n, err)
		}
	}
	if got := limits.budget.used.Load(); got != 256<<10 {
		t.Fatalf("two hogs hold %d, want %d", got, 256<<10)
	}

	small := gateFrame(0x81, []byte(`{"type":"ping"}`))
	victim := newFrameGate(&chunkReader{data: append(append([]byte(nil), small...), big...), size: 1 << 10}, nil, limits)
	// The frame before it passes, and the header up to its last byte.
	if n, err := victim.Read(buf); n != len(small)+len(big)-1 || err != nil {
		t.Fatalf("the frame before the unaffordable one: passed %d, %v", n, err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		for limits.budget.waiters.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		hogs[0].release()
	}()
	if n, err := victim.Read(buf); n != 1 || err != nil {
		t.Fatalf("after the budget came back: passed %d, %v", n, err)
	}
	<-released
	if got := limits.budget.used.Load(); got != 256<<10 {
		t.Fatalf("hog and victim hold %d, want %d", got, 256<<10)
	}

	limits.wait = 20 * time.Millisecond
	late := newFrameGate(&chunkReader{data: big, size: 100}, nil, limits)
	if n, err := late.Read(buf); n != len(big)-1 || err != nil {
		t.Fatalf("with the budget spent: passed %d, %v", n, err)
	}
	if n, err := late.Read(buf); n != 0 || !errors.Is(err, errFrameRefused) || late.verdict().code != 1013 {
		t.Fatalf("with the budget spent: passed %d, %v, want a 1013 refusal", n, err)
	}
	if got := limits.budget.refused.Load(); got != 1 {
		t.Fatalf("refused count %d", got)
	}
	hogs[1].release()
	victim.release()
	if got := limits.budget.used.Load(); got != 0 {
		t.Fatalf("%d charged after every connection ended", got)
	}
}
