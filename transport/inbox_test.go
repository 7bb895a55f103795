package transport

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors"
)

// The inbox keeps each connection's frames and end in order, holds back a
// connection over its byte budget until the drainer has taken its frames,
// and lets the other connections of the shard go on meanwhile.
func TestInboxOrderAndBackpressure(t *testing.T) {
	in := newInbox(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.connLimit = 100
	gate := make(chan struct{})
	var mu sync.Mutex
	var got []string
	in.deliver = func(it *inboxItem) {
		name := "end"
		if it.msg != nil {
			name = strings.TrimRight(it.msg.Data.String(), ".")
		}
		if name == "a1" {
			<-gate // the drainer is busy with a's first frame
		}
		mu.Lock()
		got = append(got, name)
		mu.Unlock()
	}
	// put queues a frame of 60 bytes named name for st, from a goroutine
	// standing for st's read loop; done is closed once it is queued.
	put := func(st *socketState, name string) (done <-chan struct{}) {
		ch := make(chan struct{})
		go func() {
			defer close(ch)
			data := bytes.NewBufferString(name + strings.Repeat(".", 60-len(name)))
			in.putFrame(st, actors.SessionHandle{}, &gws.Message{Opcode: gws.OpcodeText, Data: data})
		}()
		return ch
	}
	shard := in.shardFor(0)
	sh := &in.shards[shard]
	a, b := &socketState{shard: shard}, &socketState{shard: shard}

	<-put(a, "a1") // taken by the drainer, which then waits at the gate
	second := put(a, "a2")
	waitInbox(t, "a's second frame to wait for a's budget", func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.waiting == 1
	})
	<-put(b, "b1") // another connection of the shard is not held up
	select {
	case <-second:
		t.Fatal("a's frame over its budget was queued while the drainer still held a's first")
	default:
	}
	close(gate)
	<-second
	in.putEnd(a, actors.SessionHandle{}, io.EOF)
	waitInbox(t, "everything delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a1", "b1", "a2", "end"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a.inboxBytes != 0 || b.inboxBytes != 0 {
		t.Fatalf("bytes still counted: a %d, b %d", a.inboxBytes, b.inboxBytes)
	}
}

// A frame larger than the whole budget still goes through when nothing of
// its connection is waiting.
func TestInboxLargeFrame(t *testing.T) {
	in := newInbox(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.connLimit = 10
	done := make(chan struct{})
	in.deliver = func(it *inboxItem) { close(done) }
	st := &socketState{shard: in.shardFor(0)}
	in.putFrame(st, actors.SessionHandle{}, &gws.Message{Opcode: gws.OpcodeText, Data: bytes.NewBufferString(strings.Repeat("x", 100))})
	<-done
}

func waitInbox(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
