//go:build linux

package transport

import (
	"net"
	"syscall"
	"unsafe"
)

// maxInlineIovecs bounds the buffers of one inline writev: what a session
// flushes at light load is a frame or a few.
const maxInlineIovecs = 64

// writeNow makes one non-blocking attempt to hand batch to the kernel on
// the caller's goroutine: a write(2) for one buffer, a writev(2) for more.
// It returns the bytes written (possibly fewer than the batch, or none
// when the socket buffer is full) and an error when the connection
// failed. tried is false when c is not a socket this can be done on (TLS,
// a test pipe): the caller then hands the batch to the writer goroutine.
func writeNow(c net.Conn, batch net.Buffers) (n int, tried bool, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok || len(batch) > maxInlineIovecs {
		return 0, false, nil
	}
	rc, rerr := sc.SyscallConn()
	if rerr != nil {
		return 0, false, nil
	}
	var iov [maxInlineIovecs]syscall.Iovec
	cnt := 0
	for _, b := range batch {
		if len(b) > 0 {
			iov[cnt].Base = &b[0]
			iov[cnt].SetLen(len(b))
			cnt++
		}
	}
	if cnt == 0 {
		return 0, true, nil
	}
	var errno syscall.Errno
	werr := rc.Write(func(fd uintptr) bool {
		for {
			var r uintptr
			if cnt == 1 {
				r, _, errno = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
			} else {
				r, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
			}
			if errno == syscall.EINTR {
				continue
			}
			if errno == 0 {
				n = int(r)
			}
			return true // one attempt: never wait for the poller here
		}
	})
	switch {
	case werr != nil:
		// Not a write error: the poller refused before the call, e.g.
		// the writer goroutine's last deadline has passed. The writer
		// sets a fresh one and finds out.
		return 0, false, nil
	case errno == syscall.EAGAIN:
		return 0, true, nil
	case errno != 0:
		return 0, true, errno
	}
	return n, true, nil
}
