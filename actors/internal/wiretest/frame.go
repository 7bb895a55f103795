// Package wiretest reads what the node writes, for tests of the packages
// under actors: a server WebSocket frame, decoded independently of the
// encoder in package wire.
package wiretest

import "encoding/binary"

// Frame is one decoded server frame.
type Frame struct {
	Fin     bool
	Opcode  byte
	Payload []byte
}

// ReadFrame decodes the server frame at the start of b (RFC 6455 section
// 5.2) and returns it with the number of bytes it took. Server frames are
// never masked; a masked one is reported as an error.
func ReadFrame(b []byte) (Frame, int, string) {
	if len(b) < 2 {
		return Frame{}, 0, "short header"
	}
	f := Frame{Fin: b[0]&0x80 != 0, Opcode: b[0] & 0x0F}
	if b[0]&0x70 != 0 {
		return f, 0, "reserved bits set"
	}
	if b[1]&0x80 != 0 {
		return f, 0, "server frame is masked"
	}
	n, off := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, 0, "short length"
		}
		n, off = uint64(binary.BigEndian.Uint16(b[2:])), 4
		if n < 126 {
			return f, 0, "non-minimal length"
		}
	case 127:
		if len(b) < 10 {
			return f, 0, "short length"
		}
		n, off = binary.BigEndian.Uint64(b[2:]), 10
		if n <= 0xFFFF {
			return f, 0, "non-minimal length"
		}
	}
	if uint64(len(b)-off) < n {
		return f, 0, "short payload"
	}
	f.Payload = b[off : off+int(n)]
	return f, off + int(n), ""
}
