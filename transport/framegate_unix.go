//go:build unix

package transport

import "syscall"

// useRawReads reads the socket through its RawConn when it has one.
func (g *frameGate) useRawReads() {
	sc, ok := g.src.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	r := &g.raw
	r.conn = rc
	// A closure made once: a method value would be made per read, and
	// would add a frame on the read loop's stack.
	r.fn = func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), r.buf)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				return false // wait for the poller
			}
			r.n = n
			if err != nil {
				errno, ok := err.(syscall.Errno)
				if !ok {
					errno = syscall.EIO
				}
				r.errno = errno
			}
			return true
		}
	}
}
