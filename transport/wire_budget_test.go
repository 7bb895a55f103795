package transport

import (
	"io"
	"net"
	"testing"
	"time"
)

// A burst bigger than the budget that reaches a session in one mailbox run
// (a broker backlog flushed after an outage, a node short of CPU) is queued
// before the session's flush gives the writer its turn. The client has not
// had a chance to read it, so it is not a slow consumer: the writer is
// started instead, and the client, which reads, gets everything.
func TestBurstOverBudgetIsNotASlowConsumer(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, client)
		got <- n
	}()
	const budget, frame, burst = 64 << 10, 16 << 10, 12 // 192 KiB in one run
	w := newWireConn(server, budget, 5*time.Second, time.Second)
	data := make([]byte, frame)
	for i := range burst {
		if !w.Enqueue(data) {
			t.Fatalf("frame %d of a %d KiB burst refused with a %d KiB budget while the client reads", i, burst*frame>>10, budget>>10)
		}
	}
	w.Flush()
	_ = w.Close() // flushes what is queued, then closes
	select {
	case n := <-got:
		if n != burst*frame {
			t.Fatalf("client read %d bytes, want %d", n, burst*frame)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the burst was not written")
	}
}

// A client that does not take what it was given (the writer is stuck in a
// write) is a slow consumer once the bytes waiting behind it pass the budget.
func TestBudgetCutsAClientThatDoesNotRead(t *testing.T) {
	server, client := net.Pipe() // unbuffered: a write blocks until read
	defer client.Close()
	const budget, frame = 64 << 10, 16 << 10
	w := newWireConn(server, budget, 5*time.Second, 100*time.Millisecond)
	defer w.Close()
	data := make([]byte, frame)
	if !w.Enqueue(data) {
		t.Fatal("first frame refused")
	}
	w.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		stuck := w.inWrite
		w.mu.Unlock()
		if stuck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never started its write")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; ; i++ {
		if !w.Enqueue(data) {
			if i*frame <= budget-frame {
				t.Fatalf("refused after %d KiB, budget %d KiB", i*frame>>10, budget>>10)
			}
			return
		}
		if i*frame > 2*budget {
			t.Fatalf("%d KiB queued behind a client that does not read, budget %d KiB", i*frame>>10, budget>>10)
		}
	}
}

// Nothing follows a close frame (RFC 6455, 5.5.1): gws queues its close
// frame before it closes the connection, and a data frame a session
// enqueues in between is dropped, not written after it.
func TestNoDataFrameAfterTheCloseFrame(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	w := newWireConn(server, 64<<10, 5*time.Second, time.Second)
	data := []byte{0x81, 0x02, 'h', 'i'}
	closeFrame := []byte{0x88, 0x02, 0x03, 0xE8}
	w.Enqueue(data)
	w.Flush()
	if _, err := w.Write(closeFrame); err != nil {
		t.Fatal(err)
	}
	w.Enqueue(data) // the session, not told of the close yet
	w.Flush()
	_ = w.Close()
	select {
	case b := <-got:
		if want := append(append([]byte{}, data...), closeFrame...); string(b) != string(want) {
			t.Fatalf("the client read % x, want % x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection was not closed")
	}
}
