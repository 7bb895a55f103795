package transport

import "sync/atomic"

// readBuffers is the read buffers a server lends to its connections while
// they read a burst of bytes (rawReader), so that the memory for reads
// follows the connections that are sending, not the connections that are
// open: an idle connection holds none.
//
// They are a fixed set taken and given back with atomic operations only,
// neither allocating nor calling deeper: a read loop borrows one at the
// bottom of its stack, where any deeper call would grow the stack of
// every idle connection from 2 to 4 KiB (frameGate.Read). Their memory,
// readBufferArena bytes at most, is touched only as buffers are first
// lent. When every buffer is lent, a connection reads into its own small
// buffer: more reads for the same bytes, nothing lost.
//
// Ownership: get and put are called by read loops, concurrently; mem[i]
// belongs to the read loop that got i until it puts it back (the atomic
// head orders the hand-over); out is read by tests.
type readBuffers struct {
	size int
	mem  []byte
	next []atomic.Int32 // the free list: the buffer after each free one, -1 at its end
	// head is the first free buffer plus one (0: none) in its low 32 bits,
	// and a count of changes in its high 32, so that a get that raced with
	// a get and a put of the same buffer fails its swap (no ABA).
	head atomic.Uint64
	out  atomic.Int64 // buffers lent now
}

// readBufferArena bounds the memory of a server's read buffers: 256 of
// the default 1 KiB, at least one of any size.
const readBufferArena = 256 << 10

func newReadBuffers(size int) *readBuffers {
	count := max(1, readBufferArena/size)
	b := &readBuffers{size: size, mem: make([]byte, count*size), next: make([]atomic.Int32, count)}
	for i := range b.next {
		b.next[i].Store(int32(i + 1))
	}
	b.next[count-1].Store(-1)
	b.head.Store(1)
	return b
}

// get takes a free buffer, or returns -1 when every one is lent.
func (b *readBuffers) get() int32 {
	for {
		h := b.head.Load()
		i := int32(uint32(h)) - 1
		if i < 0 {
			return -1
		}
		next := b.next[i].Load()
		if b.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(uint32(next+1))) {
			b.out.Add(1)
			return i
		}
	}
}

// put gives buffer i back.
func (b *readBuffers) put(i int32) {
	b.out.Add(-1)
	for {
		h := b.head.Load()
		b.next[i].Store(int32(uint32(h)) - 1)
		if b.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(uint32(i+1))) {
			return
		}
	}
}

// buf is buffer i.
func (b *readBuffers) buf(i int32) []byte {
	at := int(i) * b.size
	return b.mem[at : at+b.size : at+b.size]
}
