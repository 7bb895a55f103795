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
