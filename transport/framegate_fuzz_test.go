package transport

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzFrameGate feeds any byte stream through a gate whole, byte by byte and
// in chunks of a fuzzed size, and checks it against a reference reading of
// RFC 6455's header rules written separately below: the gate passes exactly
// the bytes before the byte that makes a header invalid, gives the code the
// reference gives, whatever the chunking, and holds no budget afterwards.
// (nats-server fuzzes its parser with each input split in two the same way.)
func FuzzFrameGate(f *testing.F) {
	for _, s := range [][]byte{
		gateFrame(0x81, []byte(`{"type":"ping"}`)),
		append(gateFrame(0x01, []byte("{")), gateFrame(0x80, []byte("}"))...),
		append(gateFrame(0x01, []byte("{")), append(gateFrame(0x89, nil), gateFrame(0x80, []byte("}"))...)...),
		hdr(0x81, 127, 1<<63),
		hdr(0x81, 127, ^uint64(0)),
		hdr(0x89, 127, 1<<63),
		hdr(0x81, 126, 5),
		hdr(0x81, 127, 0xFFFF),
		gateFrame(0x81, make([]byte, 300)),
		{0x81, 0x02, '{', '}'},
	} {
		f.Add(s, uint8(3))
	}
	const max = 1 << 10
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		wantPos, wantCode := referenceVerdict(stream, max)
		for _, size := range []int{len(stream) + 1, 1, int(split)%29 + 1} {
			limits := testLimits(max, 1<<40)
			passed, code, g := runGate(t, stream, size, limits)
			if code != wantCode || len(passed) != wantPos || !bytes.Equal(passed, stream[:len(passed)]) {
				t.Fatalf("chunks of %d: passed %d bytes with verdict %d; the reference stops at %d with %d", size, len(passed), code, wantPos, wantCode)
			}
			g.release()
			if used := limits.budget.used.Load(); used != 0 {
				t.Fatalf("chunks of %d: %d bytes of budget held after release", size, used)
			}
		}
	})
}

// referenceVerdict reads stream as client frames and returns where the first
// header violation is decided (the index of the byte that makes the header
// invalid, so every byte before it is fine to pass) and its close code, or
// (len(stream), 0) when there is none. It reads whole headers by position,
// unlike the gate, which reads byte by byte.
func referenceVerdict(stream []byte, max uint64) (int, uint16) {
	inMsg, msgLen := false, uint64(0)
	at := 0
	for {
		if at+2 > len(stream) {
			return len(stream), 0
		}
		b0, b1 := stream[at], stream[at+1]
		fin, op, masked, code7 := b0&0x80 != 0, b0&0x0F, b1&0x80 != 0, uint64(b1&0x7F)
		control := op >= 8
		switch {
		case b0&0x70 != 0, op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10, !masked,
			control && !fin, control && code7 > 125,
			op == 0 && !inMsg, (op == 1 || op == 2) && inMsg:
			return at + 1, 1002
		}
		length, lenEnd := code7, at+1
		switch code7 {
		case 126:
			if at+4 > len(stream) {
				return len(stream), 0
			}
			length, lenEnd = uint64(binary.BigEndian.Uint16(stream[at+2:])), at+3
			if length < 126 {
				return lenEnd, 1002
			}
		case 127:
			if at+10 > len(stream) {
				return len(stream), 0
			}
			length, lenEnd = binary.BigEndian.Uint64(stream[at+2:]), at+9
			if length >= 1<<63 || length < 1<<16 {
				return lenEnd, 1002
			}
		}
		if length > max || (op == 0 && msgLen+length > max) {
			return lenEnd, 1009
		}
		next := uint64(lenEnd+1+4) + length
		if next > uint64(len(stream)) {
			return len(stream), 0
		}
		if !control {
			msgLen += length
			inMsg = !fin
			if fin {
				msgLen = 0
			}
		}
		at = int(next)
	}
}
