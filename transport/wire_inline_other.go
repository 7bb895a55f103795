//go:build !linux

package transport

import "net"

// writeNow is the inline write of wire_inline_linux.go; elsewhere every
// batch goes to the writer goroutine.
func writeNow(net.Conn, net.Buffers) (int, bool, error) { return 0, false, nil }
