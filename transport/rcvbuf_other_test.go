//go:build !unix

package transport_test

// shrinkReceiveBuffer: elsewhere the slow-consumer test backs up through the
// kernel's default buffers, which takes longer but proves the same thing.
func shrinkReceiveBuffer(fd uintptr) {}
