package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// frameGate checks every client frame header as the bytes come off the
// socket, before gws parses them, and refuses a bad one with the close code
// RFC 6455 names for it: that connection alone ends, nothing else notices.
//
// Why here and not in gws: gws v1.8.9 reads a 64-bit payload length into an
// int, so a length with the top bit set is negative, passes its size check
// and panics its read loop (slice bounds out of range), which takes the
// whole process down; it also accepts non-minimal length encodings, and it
// allocates a frame's whole buffer as soon as the header announces it,
// before any of the payload arrives. The gate refuses the first two and
// charges the third to a node-wide budget (frameBudget).
//
// What it refuses (close code): a reserved bit (1002, no extension is
// negotiated), a reserved opcode (1002), an unmasked frame (1002), a
// fragmented or over-125-byte control frame (1002), a continuation without
// a message to continue or a new message inside a fragmented one (1002), a
// 64-bit length with the top bit set (1002), a length not in its shortest
// encoding (1002), a frame or a fragmented message larger than the
// message limit (1009), and a frame that waited frameBudgetWait for the
// budget (1013). Bytes before a refused header are passed on first, so the
// frames a client sent before it are served.
//
// Ownership: the gate's fields belong to the connection's read loop
// goroutine (gws calls Read, OnPing and OnPong there, and the read loop's
// wrapper releases the gate when it ends). conn is set by the HTTP handler
// before the read loop starts.
//
// Every connection holds one for its whole life, so its fields are packed
// (160 bytes with the raw reader and its lent buffer's place): lengths fit 32 bits because
// MaxMessageBytes is at most 256 MiB, and what only a hostile or a
// budget-starved client needs (the stash, the verdict) hangs off one
// pointer.
type frameGate struct {
	src    io.Reader // the socket
	raw    rawReader // reads the socket through its RawConn, when it has one
	limits *frameLimits
	conn   *gws.Conn // closes the connection with a code
	slow   *gateSlow // nil until the stash or a verdict is needed
	hdr    [14]byte  // the header being gathered
	hlen   uint8     // header bytes gathered
	hsize  uint8     // the header's size, known after its first two bytes
	ending bool      // the current frame is a data frame that ends its message
	inMsg  bool      // a fragmented message is open
	failed bool      // the gate has refused: every read fails
	left   uint32    // payload bytes of the current frame still to come
	msgLen uint32    // payload bytes of the open message so far
	held   int32     // budget this connection holds
	bufFee int32     // the part of held that is the current frame's read buffer
}

// gateSlow is the part of a gate that only a refused header or a short
// budget needs.
type gateSlow struct {
	stash  []byte        // bytes to pass before the socket's: pipelined with the upgrade, or held back while the budget was short
	refuse *refusedFrame // the verdict on a refused header
}

// MaxMessageLimit bounds MaxMessageBytes, so that a frame's length and its
// charge fit the gate's 32-bit counters.
const MaxMessageLimit = 256 << 20

// frameLimits is shared by every gate of a server.
type frameLimits struct {
	maxMessage uint64
	budget     *frameBudget
	wait       time.Duration // frameBudgetWait; shorter in tests
	reads      *readBuffers  // lent to gates that read through a RawConn; nil: gates read into the caller's buffer
}

// refusedFrame is a verdict on a header, given once the bytes before it are
// consumed.
type refusedFrame struct {
	code   uint16
	reason string
}

// closeProtocolError is RFC 6455's code for a frame the protocol forbids.
const closeProtocolError = 1002

// errFrameRefused ends gws's read loop after the gate has closed the
// connection with its own code (gws then reports that code to OnClose).
var errFrameRefused = errors.New("transport: client frame refused")

// Opcodes and header bits of RFC 6455 section 5.2.
const (
	bitFIN  = 0x80
	bitsRSV = 0x70
	bitMask = 0x80
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// newFrameGate gates src, whose first bytes are early (bytes the client
// pipelined behind its upgrade request, already read by net/http).
func newFrameGate(src io.Reader, early []byte, limits *frameLimits) *frameGate {
	g := &frameGate{src: src, limits: limits, raw: rawReader{lent: -1}}
	if len(early) > 0 {
		g.slow = &gateSlow{stash: early}
	}
	g.useRawReads()
	return g
}

// Read passes the socket's bytes on up to the first header it refuses or
// cannot yet afford.
//
// A read loop parks inside Read for as long as its client is idle, so the
// stack under it is what every idle connection costs: past 2 KiB it
// doubles to 4. Read therefore keeps a small frame and, on a socket,
// reads through syscall.RawConn (rawReader), whose path to the poller is two
// frames shorter than net.Conn's and makes room for the gate (measured:
// 2.0 KiB of stack per idle connection with it, 4.0 through net.Conn).
// Bytes read in a burst wait in a buffer lent only while they wait
// (rawReader), so that an idle connection holds no read buffer.
func (g *frameGate) Read(p []byte) (int, error) {
	if g.slow != nil || g.failed {
		return g.readSlow(p)
	}
	if g.raw.lent >= 0 {
		return g.readLent(p)
	}
	var n int
	var err error
	if r := &g.raw; r.conn != nil {
		r.buf = p
		err = r.conn.Read(r.fn)
		if n, err = r.result(err); r.lent >= 0 {
			return g.readLent(p)
		}
	} else {
		n, err = g.src.Read(p)
	}
	if n > 0 {
		n = g.scan(p[:n])
		if n == 0 {
			return g.readSlow(p)
		}
	}
	return n, err
}

// readSlow serves a pending refusal and the stash.
func (g *frameGate) readSlow(p []byte) (int, error) {
	if g.failed {
		return 0, errFrameRefused
	}
	sl := g.slow
	if sl == nil {
		return g.Read(p)
	}
	if sl.refuse != nil {
		return 0, g.refused(sl.refuse)
	}
	n := copy(p, sl.stash)
	sl.stash = sl.stash[n:]
	if len(sl.stash) == 0 {
		g.slow = nil
	}
	if n = g.scan(p[:n]); n == 0 {
		return g.readSlow(p)
	}
	return n, nil
}

// bufioSize is the size of the bufio.Reader gws reads the gate through:
// configured, unless the gate lends its read buffer only while bytes wait.
func (g *frameGate) bufioSize(configured int) int {
	if g.raw.conn != nil {
		return rawBufioSize
	}
	return configured
}

// end is called when the connection's read loop ends: the budget the
// connection holds and its lent read buffer go back.
func (g *frameGate) end() {
	g.release()
	g.raw.giveBack()
}

// verdict is the refusal given, or about to be given, if any.
func (g *frameGate) verdict() *refusedFrame {
	if g.slow == nil {
		return nil
	}
	return g.slow.refuse
}

// refused closes the connection with the verdict's code and makes the gate
// fail every later read.
func (g *frameGate) refused(r *refusedFrame) error {
	g.failed = true
	g.slow = &gateSlow{refuse: r} // the stash is dropped, the verdict kept
	g.release()
	if g.conn != nil {
		_ = g.conn.WriteClose(r.code, []byte(r.reason))
	}
	return errFrameRefused
}

// scan walks p, a chunk just read, and returns how much of it may go to gws.
// Bytes it holds back go to the stash (budget short) or are dropped (a
// refused header: the connection ends). A verdict on a header that starts
// the chunk is given at once; otherwise the bytes before it go first.
func (g *frameGate) scan(p []byte) int {
	i := 0
	for i < len(p) {
		if g.left > 0 {
			k := uint64(len(p) - i)
			if k > uint64(g.left) {
				k = uint64(g.left)
			}
			i += int(k)
			if g.left -= uint32(k); g.left == 0 {
				g.frameDone()
			}
			continue
		}
		g.hdr[g.hlen] = p[i]
		g.hlen++
		i++
		if r := g.checkHeader(); r != nil {
			return g.stop(i-1, r)
		}
		if g.hsize == 0 || g.hlen < g.hsize {
			continue
		}
		// The header is whole: charge the frame to the budget unless its
		// payload is already here, then let it through.
		length := g.length()
		cost := g.cost(length, uint64(len(p)-i))
		if cost > 0 && !g.limits.budget.take(cost) {
			if i-1 > 0 {
				// Pass the frames before it; wait with the rest.
				g.hlen--
				rest := append([]byte(nil), p[i-1:]...)
				if g.slow == nil {
					g.slow = &gateSlow{}
				}
				g.slow.stash = append(rest, g.slow.stash...)
				return i - 1
			}
			if !g.limits.budget.wait(cost, g.limits.wait) {
				return g.stop(0, &refusedFrame{uint16(wire.CloseTryAgainLater), "the node is short of memory for frames: try again later"})
			}
		}
		g.held += int32(cost)
		g.bufFee = int32(min(cost, readBufferCost(length)))
		g.startFrame(length)
	}
	return len(p)
}

// stop holds the verdict r on the header whose deciding byte is the chunk's
// byte at: the bytes before it pass, the rest are dropped.
func (g *frameGate) stop(at int, r *refusedFrame) int {
	g.slow = &gateSlow{refuse: r}
	return at
}

// checkHeader checks what the gathered header bytes say so far, and learns
// the header's size from its first two bytes.
func (g *frameGate) checkHeader() *refusedFrame {
	switch g.hlen {
	case 2:
		b0, b1 := g.hdr[0], g.hdr[1]
		op := b0 & 0x0F
		switch {
		case b0&bitsRSV != 0:
			return protocolError("reserved bits set")
		case op > opBin && op != opClose && op != opPing && op != opPong:
			return protocolError("reserved opcode")
		case b1&bitMask == 0:
			return protocolError("client frames must be masked")
		case op >= opClose && b0&bitFIN == 0:
			return protocolError("fragmented control frame")
		case op >= opClose && b1&0x7F > 125:
			return protocolError("control frame over 125 bytes")
		case op == opCont && !g.inMsg:
			return protocolError("continuation frame without a message to continue")
		case (op == opText || op == opBin) && g.inMsg:
			return protocolError("new message inside a fragmented message")
		}
		switch b1 & 0x7F {
		case 126:
			g.hsize = 2 + 2 + 4
		case 127:
			g.hsize = 2 + 8 + 4
		default:
			g.hsize = 2 + 4
			return g.checkLength(uint64(b1 & 0x7F))
		}
	case 4:
		if g.hsize == 2+2+4 {
			n := uint64(binary.BigEndian.Uint16(g.hdr[2:4]))
			if n < 126 {
				return protocolError("payload length not in its shortest encoding")
			}
			return g.checkLength(n)
		}
	case 10:
		if g.hsize == 2+8+4 {
			n := binary.BigEndian.Uint64(g.hdr[2:10])
			switch {
			case n>>63 != 0:
				return protocolError("payload length with its most significant bit set")
			case n <= 0xFFFF:
				return protocolError("payload length not in its shortest encoding")
			}
			return g.checkLength(n)
		}
	}
	return nil
}

// checkLength refuses a frame, or the fragmented message it adds to, that
// is larger than the message limit.
func (g *frameGate) checkLength(n uint64) *refusedFrame {
	if n > g.limits.maxMessage || (g.hdr[0]&0x0F == opCont && uint64(g.msgLen)+n > g.limits.maxMessage) {
		return &refusedFrame{uint16(wire.CloseTooBig), "message too large"}
	}
	return nil
}

func protocolError(why string) *refusedFrame {
	return &refusedFrame{closeProtocolError, "invalid frame: " + why}
}

// length is the payload length of the whole header in hdr.
func (g *frameGate) length() uint64 {
	switch g.hsize {
	case 2 + 2 + 4:
		return uint64(binary.BigEndian.Uint16(g.hdr[2:4]))
	case 2 + 8 + 4:
		return binary.BigEndian.Uint64(g.hdr[2:10])
	}
	return uint64(g.hdr[1] & 0x7F)
}

// startFrame moves from the whole header in hdr to its payload.
func (g *frameGate) startFrame(length uint64) {
	op, fin := g.hdr[0]&0x0F, g.hdr[0]&bitFIN != 0
	g.hlen, g.hsize = 0, 0
	g.left = uint32(length)
	g.ending = false
	if op < opClose {
		g.msgLen += uint32(length)
		g.inMsg = !fin
		g.ending = fin
	}
	if length == 0 {
		g.frameDone()
	}
}

// frameDone is called when a frame's payload has passed: its read buffer
// is free again, and a message that ends gives all its budget back.
func (g *frameGate) frameDone() {
	if g.bufFee > 0 {
		g.limits.budget.give(int64(g.bufFee))
		g.held -= g.bufFee
		g.bufFee = 0
	}
	if g.ending {
		g.ending = false
		g.msgLen = 0
		g.release()
	}
}
