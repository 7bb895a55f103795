package transport

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// socketPair is a connected loopback TCP pair: the server side reads
// through a RawConn as a node's sockets do.
func socketPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Bytes read from a socket through the lent buffers pass whole and in
// order, whatever the sizes of the writes and of the reads, and whether a
// buffer is free or every one is lent (then reads go into the caller's
// buffer); every buffer lent is given back.
func TestFrameGateLentBuffersOverSocket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	for i := 0; i < 400; i++ {
		size := []int{0, 10, 100, 125, 126, 300, 1000, 1024, 3000, 9000}[rng.IntN(10)]
		if rng.IntN(8) == 0 {
			stream = append(stream, gateFrame(0x01, make([]byte, size))...)
			stream = append(stream, gateFrame(0x8A, []byte("pong"))...)
			stream = append(stream, gateFrame(0x80, make([]byte, 7))...)
			continue
		}
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(i + j)
		}
		stream = append(stream, gateFrame(0x81, payload)...)
	}
	for _, exhausted := range []bool{false, true} {
		limits := testLimits(64<<10, 1<<20)
		limits.reads = newReadBuffers(1024)
		var taken []int32
		if exhausted {
			for i := limits.reads.get(); i >= 0; i = limits.reads.get() {
				taken = append(taken, i)
			}
		}
		client, server := socketPair(t)
		g := newFrameGate(server, nil, limits)
		if g.raw.conn == nil {
			t.Skip("no raw reads on this platform")
		}
		br := bufio.NewReaderSize(g, g.bufioSize(1024))

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			wr := rand.New(rand.NewPCG(3, 4))
			for rest := stream; len(rest) > 0; {
				n := min(len(rest), 1+wr.IntN(5000))
				if _, err := client.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
		}()
		var got bytes.Buffer
		for {
			p := make([]byte, []int{2, 4, 8, 100, 2000, 5000}[rng.IntN(6)])
			n, err := io.ReadFull(br, p)
			got.Write(p[:n])
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if !bytes.Equal(got.Bytes(), stream) {
			t.Fatalf("exhausted=%v: passed %d of %d bytes, or not in order", exhausted, got.Len(), len(stream))
		}
		g.end()
		for _, i := range taken {
			limits.reads.put(i)
		}
		if out := limits.reads.out.Load(); out != 0 {
			t.Fatalf("exhausted=%v: %d buffers still lent", exhausted, out)
		}
		if used := limits.budget.used.Load(); used != 0 {
			t.Fatalf("exhausted=%v: %d bytes of frame budget still held", exhausted, used)
		}
	}
}

// A refused header read through a lent buffer: the frames before it pass,
// the rest is dropped, and the buffer goes back when the read loop ends.
func TestFrameGateLentBufferRefusal(t *testing.T) {
	limits := testLimits(64<<10, 1<<20)
	limits.reads = newReadBuffers(1024)
	client, server := socketPair(t)
	g := newFrameGate(server, nil, limits)
	if g.raw.conn == nil {
		t.Skip("no raw reads on this platform")
	}
	var before []byte
	for len(before) < 3000 {
		before = append(before, gateFrame(0x81, []byte(`{"type":"pong"}`))...)
	}
	stream := append(append([]byte(nil), before...), hdr(0x81, 127, 1<<63)...)
	stream = append(stream, make([]byte, 500)...)
	if _, err := client.Write(stream); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	br := bufio.NewReaderSize(g, g.bufioSize(1024))
	_, err := io.Copy(&got, br)
	if err != errFrameRefused || g.verdict().code != 1002 {
		t.Fatalf("read ended with %v, verdict %+v", err, g.verdict())
	}
	// The header's bytes before the one that decides its verdict may pass
	// (as in TestFrameGateVerdicts); nothing after it.
	if !bytes.HasPrefix(got.Bytes(), before) || !bytes.HasPrefix(stream, got.Bytes()) || got.Len() >= len(before)+14 {
		t.Fatalf("passed %d bytes, want the %d before the refused header and part of it", got.Len(), len(before))
	}
	g.end()
	if out := limits.reads.out.Load(); out != 0 {
		t.Fatalf("%d buffers still lent", out)
	}
}

// Every buffer can be taken once, none twice, and each comes back; under
// contention too.
func TestReadBuffersLendEachOnce(t *testing.T) {
	b := newReadBuffers(64 << 10) // 4 buffers
	seen := map[int32]bool{}
	for i := b.get(); i >= 0; i = b.get() {
		if seen[i] {
			t.Fatalf("buffer %d lent twice", i)
		}
		seen[i] = true
	}
	if len(seen) != readBufferArena/(64<<10) {
		t.Fatalf("lent %d buffers, want %d", len(seen), readBufferArena/(64<<10))
	}
	for i := range seen {
		b.put(i)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	holders := map[int32]int{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 2000; k++ {
				i := b.get()
				if i < 0 {
					continue
				}
				mu.Lock()
				holders[i]++
				twice := holders[i] > 1
				mu.Unlock()
				if twice {
					t.Errorf("buffer %d lent to two holders", i)
				}
				b.buf(i)[0] = byte(k) // the holder owns it
				mu.Lock()
				holders[i]--
				mu.Unlock()
				b.put(i)
			}
		}()
	}
	wg.Wait()
	if out := b.out.Load(); out != 0 {
		t.Fatalf("%d still lent", out)
	}
}
