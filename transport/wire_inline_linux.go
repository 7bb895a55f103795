//go:build linux

package transport

import (
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// maxInlineIovecs bounds the buffers of one inline writev: what a session
// flushes at light load is a frame or a few.
const maxInlineIovecs = 64

// inlineWrite is one attempt's state, pooled: its iovec array and the
// callback handed to the socket's RawConn would otherwise be allocated
// (1 KiB) on every flush.
type inlineWrite struct {
	iov   [maxInlineIovecs]syscall.Iovec
	cnt   int
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // write, bound once
}

var inlineWrites = sync.Pool{New: func() any {
	w := &inlineWrite{}
	w.fn = w.write
	return w
}}

// write is the RawConn callback: one write(2) or writev(2), retried only
// on EINTR; it never asks the poller to wait.
func (w *inlineWrite) write(fd uintptr) bool {
	for {
		var r uintptr
		if w.cnt == 1 {
			r, _, w.errno = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(w.iov[0].Base)), uintptr(w.iov[0].Len))
		} else {
			r, _, w.errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(w.cnt))
		}
		if w.errno == syscall.EINTR {
			continue
		}
		if w.errno == 0 {
			w.n = int(r)
		}
		return true
	}
}

// writeNow makes one non-blocking attempt to hand batch to the kernel on
// the caller's goroutine: a write(2) for one buffer, a writev(2) for more.
// It returns the bytes written (possibly fewer than the batch, or none
// when the socket buffer is full) and an error when the connection
// failed. tried is false when c is not a socket this can be done on (TLS,
// a test pipe) or the batch is long: the caller then hands the batch to
// the writer goroutine.
func writeNow(c net.Conn, batch net.Buffers) (n int, tried bool, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok || len(batch) > maxInlineIovecs {
		return 0, false, nil
	}
	rc, rerr := sc.SyscallConn()
	if rerr != nil {
		return 0, false, nil
	}
	w := inlineWrites.Get().(*inlineWrite)
	defer inlineWrites.Put(w)
	w.cnt, w.n, w.errno = 0, 0, 0
	for _, b := range batch {
		if len(b) > 0 {
			w.iov[w.cnt].Base = &b[0]
			w.iov[w.cnt].SetLen(len(b))
			w.cnt++
		}
	}
	if w.cnt == 0 {
		return 0, true, nil
	}
	werr := rc.Write(w.fn)
	clear(w.iov[:w.cnt]) // the pool must not keep the frames alive
	switch {
	case werr != nil:
		// Not a write error: the poller refused before the call, e.g.
		// the writer goroutine's last deadline has passed. The writer
		// sets a fresh one and finds out.
		return 0, false, nil
	case w.errno == syscall.EAGAIN:
		return 0, true, nil
	case w.errno != 0:
		return 0, true, w.errno
	}
	return w.n, true, nil
}
