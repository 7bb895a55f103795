package transport

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// frames makes count frames of size bytes, each filled with its index, so
// that a lost, repeated or reordered byte shows.
func frames(count, size int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(i)}, size)
	}
	return out
}

// Flushes that the socket takes at once and flushes it takes only in
// part (a client that reads late, so the kernel's buffers fill) deliver
// every byte once, in order: what an inline write leaves goes to the
// writer ahead of anything queued after it.
func TestInlineWriteHandsTheRestToTheWriter(t *testing.T) {
	client, server := socketPair(t) // a real socket: the inline write needs one (net.Pipe has none)
	w := newWireConn(server, 64<<20, 5*time.Second, time.Second)
	fs := frames(200, 32<<10) // 6.4 MiB: more than loopback's buffers hold
	var want bytes.Buffer
	for i, f := range fs {
		want.Write(f)
		if !w.Enqueue(f) {
			t.Fatalf("frame %d refused", i)
		}
		if i%7 == 0 {
			w.Flush()
		}
	}
	w.Flush()
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the buffers fill first
		b, _ := io.ReadAll(io.LimitReader(client, int64(want.Len())))
		got <- b
	}()
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("client read %d bytes, want %d, or in another order", len(b), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not everything was written")
	}
	w.Close()
}

// The writer goroutine arms a write deadline for each batch and leaves it
// on the socket. An inline write after that deadline has passed must not
// take the expired deadline for a failed connection.
func TestInlineWriteAfterTheWritersDeadline(t *testing.T) {
	client, server := socketPair(t) // a real socket: the inline write needs one (net.Pipe has none)
	const timeout = 30 * time.Millisecond
	w := newWireConn(server, 64<<20, timeout, time.Second)
	// A gws write (the handshake's response, a pong) goes through the
	// writer, which sets a deadline of now + timeout.
	if _, err := w.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout) // the writer's deadline is in the past
	w.Enqueue([]byte("second"))
	w.Flush()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf = make([]byte, 6)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "second" {
		t.Fatalf("after the old deadline: read %q, %v; the connection should carry on", buf, err)
	}
	w.mu.Lock()
	dead := w.dead
	w.mu.Unlock()
	if dead {
		t.Fatal("the connection was closed")
	}
	w.Close()
}
