//go:build !unix

package transport

// useRawReads does nothing where sockets have no Unix file descriptors:
// reads go through net.Conn.
func (g *frameGate) useRawReads() {}
