//go:build unix

package transport

import "syscall"

// useRawReads reads the socket through its RawConn when it has one.
func (g *frameGate) useRawReads() {
	sc, ok := g.src.(syscall.Conn)
	if !ok || g.limits.reads == nil {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	r := &g.raw
	r.conn = rc
	r.bufs = g.limits.reads
	// A closure made once: a method value would be made per read, and
	// would add a frame on the read loop's stack.
	r.fn = func(fd uintptr) bool {
		dst := r.buf
		if r.full && len(dst) < r.bufs.size {
			// More bytes are likely waiting: read them into a lent buffer.
			if r.lent = r.bufs.get(); r.lent >= 0 {
				dst = r.bufs.buf(r.lent)
			}
		}
		for {
			n, err := syscall.Read(int(fd), dst)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				r.giveBack() // an idle connection holds no read buffer
				return false // wait for the poller
			}
			r.n = int32(n)
			r.full = n == len(dst)
			if err != nil {
				errno, ok := err.(syscall.Errno)
				if !ok {
					errno = syscall.EIO
				}
				r.errno = int32(errno)
			}
			return true
		}
	}
}
