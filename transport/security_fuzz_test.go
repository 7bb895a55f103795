package transport_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
)

// FuzzClientFrames sends each input to a real node over loopback as the
// payload of one text frame, three ways: one frame in one write; the frame's
// bytes in two writes split in the middle; and two fragments (the input's
// two halves) in one write. gws parses the frames, the node decodes the
// message: all three must leave the same transcript (every frame the node
// sends until it answers a sentinel command, or the close code), and the node
// must survive. The decoder alone is fuzzed by the actors package; this is
// the path an attacker actually reaches.
func FuzzClientFrames(f *testing.F) {
	n := startNode(f, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	for _, h := range hostileFrames {
		if len(h.frame) <= 2048 {
			f.Add([]byte(h.frame))
		}
	}
	for _, s := range []string{
		`{"type":"chat","content":"hello"}`,
		`{"type":"join_room","room":"r","id":1}`,
		`{"type":"leave_room","room":"r","id":"x"}`,
		`{"type":"room_message","room":"r","content":"c","id":2}`,
		`{"type":"direct_message","target_user":"fz","content":"me","id":3}`,
		`{"type":"pong"}`,
		"{\"type\":\"chat\",\"content\":\"\xff\"}",
		"\xe2\x82", // a rune cut in two
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2048 {
			// Larger messages add nothing to parsing; kept small, the input
			// and the sentinel behind it reach the node in one read, so a
			// node that closes leaves no unread bytes (which TCP would turn
			// into a reset that loses the close frame).
			return
		}
		h := len(data) / 2
		whole := frame(true, 0x1, data)
		ways := []struct {
			name   string
			writes [][]byte
		}{
			{"one frame", [][]byte{whole}},
			{"one frame in two writes", [][]byte{whole[:len(whole)/2], whole[len(whole)/2:]}},
			{"two fragments", [][]byte{append(frame(false, 0x1, data[:h]), frame(true, 0x0, data[h:])...)}},
		}
		var first string
		for i, w := range ways {
			got, err := transcript(n, w.writes)
			if err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("%s differs from one frame:\n%s\nvs\n%s", w.name, got, first)
			}
		}
	})
}

// transcript connects as "fz", reads its welcome, writes the given bytes
// with a sentinel command behind the last of them, and records every text
// frame until the sentinel's answer, or the close code if the node closes
// first. It waits until the session is gone, so that the
// next transcript starts from the same state.
func transcript(n *testNode, writes [][]byte) (string, error) {
	rc, resp, err := tryUpgrade(n, "/ws?client_id=fz", nil)
	if err != nil || rc == nil {
		return "", fmt.Errorf("upgrade: %v %v", resp, err)
	}
	defer func() {
		rc.nc.Close()
		_ = waitSessions(n, 0)
	}()
	// The welcome first: an input that makes gws close the socket at once
	// would otherwise race with it.
	if ev, err := rc.event(5 * time.Second); err != nil || ev.Event != "welcome" {
		return "", fmt.Errorf("welcome: %+v %v", ev, err)
	}
	// The sentinel is a direct message to nobody: its answer takes the same
	// asynchronous path (hub, broker) as a direct message in the input, and
	// comes after it, so every answer to the input precedes the sentinel's.
	sentinel := frame(true, 0x1, []byte(`{"type":"direct_message","target_user":"nobody","content":"","id":"sentinel"}`))
	for i, w := range writes {
		if i == len(writes)-1 {
			w = append(w[:len(w):len(w)], sentinel...)
		}
		if err := rc.write(w); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	for {
		op, p, err := rc.readFrame(5 * time.Second)
		if err != nil {
			return "", fmt.Errorf("after %q: %w", b.String(), err)
		}
		switch op {
		case 0x1:
			if bytes.Equal(p, sentinelAnswer) {
				return b.String(), nil
			}
			b.Write(p)
			b.WriteByte('\n')
		case 0x8:
			fmt.Fprintf(&b, "close %d\n", closeCode(p))
			return b.String(), nil
		}
	}
}

var sentinelAnswer = []byte(`{"event":"error","code":"user_offline","message":"user is not connected","id":"sentinel"}`)

// waitSessions waits (bounded) until the node has at most want sessions.
func waitSessions(n *testNode, want int64) error {
	deadline := time.Now().Add(5 * time.Second)
	for n.node.Metrics().Sessions.Load() > want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions left", n.node.Metrics().Sessions.Load())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
