package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// Hostile clients, first kind: raw connections that write malformed frame
// headers of every class while the ledger's traffic flows. Before the
// node's frame gate, one of them (a 64-bit length with its top bit set)
// panicked gws's read loop and took the whole node down.

// hostilePrefix starts the user ids of attackers; regular clients ignore
// what they hear about them.
const hostilePrefix = "h-"

// hostileHeader is one class of bad frame header, written right after the
// upgrade, and the close code RFC 6455 names for it (what the node's frame
// gate answers).
type hostileHeader struct {
	name  string
	bytes []byte
	code  uint16
}

// rawHeader is a masked client frame header whose length is written in the
// encoding lenCode names (0: 7-bit, 126: 16-bit, 127: 64-bit), whatever the
// length: non-minimal encodings and impossible lengths included.
func rawHeader(b0, lenCode byte, length uint64) []byte {
	h := []byte{b0}
	switch lenCode {
	case 126:
		h = binary.BigEndian.AppendUint16(append(h, 0x80|126), uint16(length))
	case 127:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), length)
	default:
		h = append(h, 0x80|byte(length))
	}
	return append(h, 0x11, 0x22, 0x33, 0x44)
}

// hostileHeaders is every class of bad header: impossible lengths on each
// opcode, non-minimal encodings, lengths past the node's message limit
// (--max-message-bytes, 64 KiB by default), and the rules on opcodes,
// reserved bits, masking, control frames and fragments. open is a first
// fragment that leaves a message open, for the classes that need one.
func hostileHeaders() []hostileHeader {
	open := maskedFrame(0x01, []byte(`{"type":"chat",`))
	var hs []hostileHeader
	add := func(name string, code uint16, parts ...[]byte) {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		hs = append(hs, hostileHeader{name, b, code})
	}
	for _, op := range []struct {
		name  string
		b0    byte
		ctrl  bool
		first []byte // what must come before: an open message for continuations
	}{
		{"text", 0x81, false, nil},
		{"binary", 0x82, false, nil},
		{"unfinished text", 0x01, false, nil},
		{"continuation", 0x80, false, open},
		{"unfinished continuation", 0x00, false, open},
		{"close", 0x88, true, nil},
		{"ping", 0x89, true, nil},
		{"pong", 0x8A, true, nil},
	} {
		add(op.name+", length 2^63", 1002, op.first, rawHeader(op.b0, 127, 1<<63))
		add(op.name+", length 2^64-1", 1002, op.first, rawHeader(op.b0, 127, ^uint64(0)))
		add(op.name+", length 2^63+126", 1002, op.first, rawHeader(op.b0, 127, 1<<63+126))
		if op.ctrl {
			add(op.name+", 16-bit length", 1002, rawHeader(op.b0, 126, 200))
			add(op.name+", 126 bytes", 1002, rawHeader(op.b0, 0, 126))
			add(op.name+", fragmented", 1002, rawHeader(op.b0&0x0F, 0, 0))
			continue
		}
		add(op.name+", 16-bit length 0 (non-minimal)", 1002, op.first, rawHeader(op.b0, 126, 0))
		add(op.name+", 16-bit length 125 (non-minimal)", 1002, op.first, rawHeader(op.b0, 126, 125))
		add(op.name+", 64-bit length 1 (non-minimal)", 1002, op.first, rawHeader(op.b0, 127, 1))
		add(op.name+", 64-bit length 65535 (non-minimal)", 1002, op.first, rawHeader(op.b0, 127, 0xFFFF))
		add(op.name+", 64-bit length 2^40 (too large)", 1009, op.first, rawHeader(op.b0, 127, 1<<40))
		add(op.name+", 64-bit length 2^63-1 (too large)", 1009, op.first, rawHeader(op.b0, 127, 1<<63-1))
	}
	add("continuation without a message", 1002, rawHeader(0x80, 0, 2))
	add("text inside a fragmented message", 1002, open, rawHeader(0x81, 0, 2))
	add("binary inside a fragmented message", 1002, open, rawHeader(0x82, 0, 2))
	add("fragments over the limit", 1009, maskedFrame(0x01, make([]byte, 60<<10)), rawHeader(0x80, 126, 8<<10))
	add("unmasked text", 1002, []byte{0x81, 0x7F})
	add("unmasked ping", 1002, []byte{0x89, 0x00})
	for _, rsv := range []byte{0x40, 0x20, 0x10} {
		add(fmt.Sprintf("reserved bit %#x", rsv), 1002, rawHeader(0x81|rsv, 0, 2))
	}
	for op := byte(3); op <= 0xF; op++ {
		if op < 8 || op > 0xA {
			add(fmt.Sprintf("reserved opcode %#x", op), 1002, rawHeader(0x80|op, 0, 0))
		}
	}
	return hs
}

// Hogs announce a frame of hogAnnounced bytes whose payload never comes.
// The node reserves the frame's read buffer (the payload plus 4 bytes,
// rounded up to a power of two: hogCharge) from its node-wide frame budget
// until the connection ends.
const (
	hogAnnounced = 64 << 10
	hogCharge    = 128 << 10
	hogs         = 16
)

// hostileFrames attacks a node: hogs hold part of its frame budget, then
// one attacker per header class writes its header; each attacker must get
// its close code, half the hogs close their end and the other half are
// dropped by the node's heartbeat (no frame can complete behind a header
// whose payload never comes). Afterwards the node is alive, counted no read
// loop panic, holds no frame budget and no attacker's session.
func hostileFrames(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	k := s.specials.Add(1)
	st0, err := n.stats()
	if err != nil {
		res.violate("%v", err)
		return res
	}
	t0 := time.Now()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range hogs {
		c, err := rawUpgrade(n.addr, fmt.Sprintf("%shog%d-%d", hostilePrefix, k, i), 0)
		if err != nil {
			res.violate("hog %d: %v", i, err)
			continue
		}
		held = append(held, c)
		if _, err := c.Write(rawHeader(0x82, 127, hogAnnounced)); err != nil {
			res.violate("hog %d: %v", i, err)
		}
	}
	charged := st0.FrameBudgetUsed + int64(len(held))*hogCharge
	if _, ok := waitFor(ctx, 3*time.Second, func() bool {
		st, err := n.stats()
		return err == nil && st.FrameBudgetUsed == charged
	}); !ok {
		st, _ := n.stats()
		res.violate("%d hogs announcing %d bytes each: frame budget used %d bytes, want %d", len(held), hogAnnounced, st.FrameBudgetUsed, charged)
	}

	headers := hostileHeaders()
	if s.cfg.Duration > 0 {
		s.rng.Shuffle(len(headers), func(a, b int) { headers[a], headers[b] = headers[b], headers[a] })
	}
	got := make([]uint16, len(headers))
	errs := make([]error, len(headers))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, h := range headers {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got[i], errs[i] = attack(n.addr, fmt.Sprintf("%sattacker%d-%d", hostilePrefix, k, i), h.bytes)
		}()
	}
	wg.Wait()
	res.count++
	wrong := 0
	for i, h := range headers {
		if got[i] == h.code {
			continue
		}
		if wrong++; wrong <= 5 {
			res.violate("%s: close %d (%v), want %d", h.name, got[i], errs[i], h.code)
		}
	}
	if wrong > 5 {
		res.violate("%d more headers without their close code", wrong-5)
	}

	// Half the hogs hang up; the node must drop the others as silent
	// peers, and every hog's budget comes back either way.
	mine, left := held[:len(held)/2], held[len(held)/2:]
	for _, c := range mine {
		c.Close()
	}
	dropCodes := make([]uint16, len(left))
	bound := s.cfg.PingInterval + s.cfg.PongTimeout + 2*time.Second
	for i, c := range left {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dropCodes[i], _ = readCloseCode(c, bound)
		}()
	}
	wg.Wait()
	codes := map[uint16]int{}
	for _, c := range dropCodes {
		codes[c]++
	}
	if codes[1000] != len(left) {
		res.violate("hogs left to the heartbeat: close codes %v, want %d x 1000 within %v", codes, len(left), bound)
	}

	onNode := len(s.clientsOn(n))
	took, ok := waitFor(ctx, 5*time.Second, func() bool {
		st, err := n.stats()
		return err == nil && st.FrameBudgetUsed == st0.FrameBudgetUsed && int(st.LocalConnections) == onNode && int(st.OpenSockets) == onNode
	})
	st, err := n.stats()
	switch {
	case !n.alive():
		res.violate("%s is down after the attack: %v", n.nodeID(), n.exitError())
	case err != nil:
		res.violate("%s: /stats after the attack: %v", n.nodeID(), err)
	case !ok:
		res.violate("%s: 5 s after the attack, frame budget used %d bytes (before %d), %d sessions and %d sockets for %d clients",
			n.nodeID(), st.FrameBudgetUsed, st0.FrameBudgetUsed, st.LocalConnections, st.OpenSockets, onNode)
	}
	if err == nil && st.ReadLoopPanics != st0.ReadLoopPanics {
		res.violate("%s: %d read loop panics during the attack", n.nodeID(), st.ReadLoopPanics-st0.ReadLoopPanics)
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("%s: %d headers refused (%s), %d hogs (%d MiB) released in %v",
		n.nodeID(), len(headers)-wrong, codesString(headers, got), len(held), int64(len(held))*hogCharge>>20, took.Round(time.Millisecond))
	return res
}

// attack upgrades as user, writes b and returns the close code the node
// answers with.
func attack(addr, user string, b []byte) (uint16, error) {
	c, err := rawUpgrade(addr, user, 0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		return 0, err
	}
	return readCloseCode(c, 3*time.Second)
}

// readCloseCode reads server frames (welcome, presence, pings) until a
// close frame and returns its code: 0 with an error when the connection
// ended or within passed without one, 1005 for a close without a code.
func readCloseCode(c net.Conn, within time.Duration) (uint16, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	r := bufio.NewReader(c)
	var h [8]byte
	for {
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return 0, err
		}
		op, masked, length := h[0]&0x0F, h[1]&0x80 != 0, uint64(h[1]&0x7F)
		switch length {
		case 126:
			if _, err := io.ReadFull(r, h[:2]); err != nil {
				return 0, err
			}
			length = uint64(binary.BigEndian.Uint16(h[:2]))
		case 127:
			if _, err := io.ReadFull(r, h[:8]); err != nil {
				return 0, err
			}
			length = binary.BigEndian.Uint64(h[:8])
		}
		if masked || length > 1<<20 {
			return 0, errors.New("unexpected server frame header")
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return 0, err
		}
		if op == 0x8 {
			if len(payload) < 2 {
				return 1005, nil
			}
			return binary.BigEndian.Uint16(payload), nil
		}
	}
}

// codesString counts the close codes the attackers got ("1002=70 1009=11").
func codesString(hs []hostileHeader, got []uint16) string {
	c := map[uint16]int{}
	for i := range hs {
		c[got[i]]++
	}
	var parts []string
	for code, n := range c {
		parts = append(parts, fmt.Sprintf("%d=%d", code, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
