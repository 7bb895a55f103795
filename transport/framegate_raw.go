package transport

import (
	"io"
	"syscall"
)

// rawReader is the state of a read through syscall.RawConn: the socket's
// raw handle, the read function handed to it (made once, by useRawReads),
// the buffer and result of the read under way, and the read buffer lent
// to the connection while it reads a burst.
//
// An idle connection holds no read buffer of its own. A read goes into
// the caller's buffer (gws's small bufio.Reader, rawBufioSize, or a
// payload), unless the read before it filled its buffer: then more bytes
// are likely waiting, and the read borrows a buffer of the configured size
// from the server's readBuffers, which goes back as soon as its last byte
// is taken, or before the read waits for the poller if the socket is
// empty. With no buffer free, the read goes into the caller's buffer:
// more reads, the same bytes.
type rawReader struct {
	conn  syscall.RawConn
	fn    func(fd uintptr) bool
	buf   []byte // the caller's buffer
	bufs  *readBuffers
	n     int32 // bytes read: at most a payload, and payloads are at most MaxMessageLimit
	errno int32 // the read's error (a syscall.Errno), if any
	lent  int32 // the lent buffer, -1 when none; it holds the bytes [off, end) not taken yet
	off   int32
	end   int32
	full  bool // the last read filled its buffer: more bytes are likely waiting
}

// rawBufioSize is the size of gws's bufio.Reader over a gate that reads
// through a RawConn: a read after an idle wait goes into it, so that a
// typical command (a JSON object of a few dozen bytes and its header)
// comes with one read, as with a buffer of the configured size.
const rawBufioSize = 128

// result is what a read returned: a read of nothing is the end of the
// stream, and a closed socket or a read error ends the read loop as a
// net.Conn's would. A read into a lent buffer returns 0 and nil, its bytes
// waiting there (readLent).
func (r *rawReader) result(err error) (int, error) {
	n := int(r.n)
	if err == nil && r.errno != 0 {
		err = syscall.Errno(r.errno)
	}
	r.buf, r.n, r.errno = nil, 0, 0
	switch {
	case err != nil:
		r.giveBack()
		return 0, err
	case n <= 0:
		r.giveBack()
		return 0, io.EOF
	case r.lent >= 0:
		r.off, r.end = 0, int32(n)
		return 0, nil
	}
	return n, nil
}

// readLent passes the bytes waiting in the lent buffer, as far as p holds
// them, and gives the buffer back once they are all taken.
func (g *frameGate) readLent(p []byte) (int, error) {
	r := &g.raw
	n := copy(p, r.bufs.buf(r.lent)[r.off:r.end])
	if r.off += int32(n); r.off == r.end {
		r.giveBack()
	}
	if n = g.scan(p[:n]); n == 0 {
		return g.readSlow(p)
	}
	return n, nil
}

// giveBack returns the lent buffer, if any, with whatever it still holds:
// when its bytes are taken, when the socket was empty, when a read failed
// and when the read loop ends.
func (r *rawReader) giveBack() {
	if r.lent >= 0 {
		r.bufs.put(r.lent)
		r.lent, r.off, r.end = -1, 0, 0
	}
}
