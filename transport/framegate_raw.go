package transport

import (
	"io"
	"syscall"
)

// rawReader is the state of a read through syscall.RawConn: the socket's
// raw handle, the read function handed to it (made once, by useRawReads),
// and the buffer and result of the read under way.
type rawReader struct {
	conn  syscall.RawConn
	fn    func(fd uintptr) bool
	buf   []byte
	n     int
	errno syscall.Errno // the read's error, if any
}

// result is what a read returned: a read of nothing is the end of the
// stream, and a closed socket or a read error ends the read loop as a
// net.Conn's would.
func (r *rawReader) result(err error) (int, error) {
	n := r.n
	if err == nil && r.errno != 0 {
		err = r.errno
	}
	r.buf, r.n, r.errno = nil, 0, 0
	switch {
	case err != nil:
		return 0, err
	case n <= 0:
		return 0, io.EOF
	}
	return n, nil
}
