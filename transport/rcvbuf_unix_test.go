//go:build unix

package transport_test

import "syscall"

// shrinkReceiveBuffer sets a socket's receive buffer before it connects, so
// that the window it advertises from the SYN on is small and neither side's
// kernel buffers grow on its behalf: a client that stops reading then backs
// up into the node after a few kilobytes instead of several megabytes.
func shrinkReceiveBuffer(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
}
