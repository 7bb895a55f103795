package transport_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// hostileFrames are text frames a client may send, each with what the node
// must answer: an error code, or "pong" for frames that are valid pings
// once unknown fields are ignored. None may close the connection.
var hostileFrames = []struct {
	name, frame, want string
}{
	{"empty frame", ``, "invalid_json"},
	{"whitespace only", " \n\t", "invalid_json"},
	{"truncated object", `{"type":"chat","content":"x"`, "invalid_json"},
	{"unquoted key", `{type:"ping"}`, "invalid_json"},
	{"single quotes", `{'type':'ping'}`, "invalid_json"},
	{"trailing garbage", `{"type":"ping"} x`, "invalid_json"},
	{"two objects", `{"type":"ping"}{"type":"ping"}`, "invalid_json"},
	{"byte order mark", "\uFEFF{\"type\":\"ping\"}", "invalid_json"},
	{"NaN", `{"type":"ping","x":NaN}`, "invalid_json"},
	{"bad escape", `{"type":"chat","content":"\x"}`, "invalid_json"},
	{"raw control character in a string", "{\"type\":\"chat\",\"content\":\"a\x01b\"}", "invalid_json"},
	{"array", `[{"type":"ping"}]`, "invalid_message"},
	{"string", `"ping"`, "invalid_message"},
	{"number", `42`, "invalid_message"},
	{"null", `null`, "invalid_message"},
	{"true", `true`, "invalid_message"},
	{"empty object", `{}`, "invalid_message"},
	{"type number", `{"type":42}`, "invalid_message"},
	{"type null", `{"type":null}`, "invalid_message"},
	{"type array", `{"type":["chat"]}`, "invalid_message"},
	{"type object", `{"type":{"$ne":null}}`, "invalid_message"},
	{"chat without content", `{"type":"chat"}`, "invalid_message"},
	{"content number", `{"type":"chat","content":42}`, "invalid_message"},
	{"content object", `{"type":"chat","content":{"a":1}}`, "invalid_message"},
	{"content array", `{"type":"chat","content":["x"]}`, "invalid_message"},
	{"content null", `{"type":"chat","content":null}`, "invalid_message"},
	{"room_message without content", `{"type":"room_message","room":"obs"}`, "invalid_message"},
	{"direct without target", `{"type":"direct_message","content":"x"}`, "invalid_message"},
	{"direct to empty target", `{"type":"direct_message","target_user":"","content":"x"}`, "invalid_message"},
	{"direct target number", `{"type":"direct_message","target_user":7,"content":"x"}`, "invalid_message"},
	{"id object", `{"type":"ping","id":{"a":1}}`, "invalid_message"},
	{"id array", `{"type":"ping","id":[1]}`, "invalid_message"},
	{"id bool", `{"type":"ping","id":true}`, "invalid_message"},
	{"id of 65 characters", `{"type":"ping","id":"` + strings.Repeat("i", 65) + `"}`, "invalid_message"},
	{"id number out of range", `{"type":"ping","id":1e999}`, "invalid_message"},
	{"unknown type", `{"type":"shutdown"}`, "unknown_type"},
	{"type in upper case", `{"type":"CHAT","content":"x"}`, "unknown_type"},
	{"type with a trailing space", `{"type":"ping "}`, "unknown_type"},
	{"type __proto__", `{"type":"__proto__"}`, "unknown_type"},
	{"type with NUL", `{"type":"ping\u0000"}`, "unknown_type"},
	{"room with a space", `{"type":"join_room","room":"a b"}`, "invalid_room"},
	{"room with a slash", `{"type":"join_room","room":"../etc"}`, "invalid_room"},
	{"room with a wildcard", `{"type":"join_room","room":"*"}`, "invalid_room"},
	{"room with unicode", `{"type":"join_room","room":"caf\u00e9"}`, "invalid_room"},
	{"room of 129 characters", `{"type":"join_room","room":"` + strings.Repeat("r", 129) + `"}`, "invalid_room"},
	{"send to a room not joined", `{"type":"room_message","room":"elsewhere","content":"x"}`, "not_member"},
	{"leave a room not joined", `{"type":"leave_room","room":"elsewhere"}`, "not_member"},
	{"direct to nobody", `{"type":"direct_message","target_user":"ghost","content":"x"}`, "user_offline"},
	{"array nested 20,000 deep", `{"type":"ping","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "invalid_json"},
	{"object nested 20,000 deep", `{"type":"ping","x":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}`, "invalid_json"},

	{"unknown fields", `{"type":"ping","foo":1,"bar":[1,2,{"x":null}],"baz":{"q":"w"}}`, "pong"},
	{"array nested 5,000 deep in an unknown field", `{"type":"ping","x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, "pong"},
	{"5,000 unknown keys", `{"type":"ping",` + manyKeys(5000) + `}`, "pong"},
	{"60 KiB of padding", `{"type":"ping","pad":"` + strings.Repeat("p", 60<<10) + `"}`, "pong"},
	{"duplicate type: the last wins", `{"type":"chat","type":"ping"}`, "pong"},
	{"leading whitespace", " \r\n\t{\"type\":\"ping\"}", "pong"},
	{"escaped NUL in an unknown field", `{"type":"ping","x":"\u0000"}`, "pong"},
	{"id of 30 digits", `{"type":"ping","id":123456789012345678901234567890}`, "pong"},
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

// Every hostile frame gets its error (or is ignored where harmless), the
// connection stays usable, and nobody else receives anything from it.
func TestHostileFrames(t *testing.T) {
	n := startNode(t, nil)
	attacker := n.dial("attacker")
	observer := n.dial("observer")
	for i, c := range []*wsclient.Client{attacker, observer} {
		send(t, c, map[string]any{"type": "join_room", "room": "obs", "id": i})
		expect(t, c, "join", isAck(fmt.Sprint(i)))
	}
	for _, tc := range hostileFrames {
		if err := attacker.SendText(tc.frame); err != nil {
			t.Fatalf("%s: send: %v", tc.name, err)
		}
		ev, err := attacker.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "error" || e.Event == "pong" })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := ev.Event
		if got == "error" {
			got = ev.Code
		}
		if got != tc.want {
			t.Errorf("%s: got %s (%s), want %s", tc.name, got, ev.Raw, tc.want)
		}
		if !utf8.Valid(ev.Raw) || !json.Valid(ev.Raw) {
			t.Fatalf("%s: the answer is not valid UTF-8 JSON: %q", tc.name, ev.Raw)
		}
	}
	// Content that is legal but nasty is delivered as valid JSON and UTF-8:
	// a lone surrogate becomes U+FFFD, control characters are escaped.
	nasty := `{"type":"room_message","room":"obs","content":"\ud800<script>\u0000\u001b[2J\u2028"}`
	if err := attacker.SendText(nasty); err != nil {
		t.Fatal(err)
	}
	ev := expect(t, observer, "the nasty message", isEvent("chat"))
	if !utf8.Valid(ev.Raw) || !json.Valid(ev.Raw) {
		t.Fatalf("delivered frame is not valid UTF-8 JSON: %q", ev.Raw)
	}
	if want := "\uFFFD<script>\x00\x1b[2J\u2028"; ev.Content != want {
		t.Fatalf("content %q, want %q", ev.Content, want)
	}
	if strings.ContainsAny(string(ev.Raw), "\x00\x1b\u2028") {
		t.Fatalf("raw control characters on the wire: %q", ev.Raw)
	}
	// Nothing else reached the observer: the next event is the marker.
	send(t, attacker, map[string]any{"type": "room_message", "room": "obs", "content": "marker"})
	if ev := expect(t, observer, "marker", func(*wsclient.Event) bool { return true }); ev.Content != "marker" {
		t.Fatalf("observer saw %s before the marker", ev.Raw)
	}
	if code, _ := attacker.CloseCode(); code != 0 {
		t.Fatalf("attacker was closed (%d) by frames that only deserve an error", code)
	}
	if p := n.node.Metrics().SessionPanic.Load(); p != 0 {
		t.Fatalf("%d session panics", p)
	}
}

// Frames that break the WebSocket protocol itself close only their own
// connection, with the RFC 6455 code.
func TestHostileWireFrames(t *testing.T) {
	n := startNode(t, nil)
	bystander := n.dial("bystander")
	unmasked := []byte{0x81, 0x0f}
	unmasked = append(unmasked, `{"type":"ping"}`...)
	cases := []struct {
		name   string
		frames [][]byte
		want   uint16
	}{
		{"invalid UTF-8 text", [][]byte{frame(true, 0x1, []byte("{\"type\":\"chat\",\"content\":\"\xff\xfe\"}"))}, 1007},
		{"overlong UTF-8 encoding", [][]byte{frame(true, 0x1, []byte("{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}"))}, 1007},
		{"UTF-8 surrogate half", [][]byte{frame(true, 0x1, []byte("\xed\xa0\x80"))}, 1007},
		{"invalid UTF-8 in the second fragment", [][]byte{
			frame(false, 0x1, []byte(`{"type":"chat","content":"`)),
			frame(true, 0x0, []byte("\xff\"}")),
		}, 1007},
		{"unmasked client frame", [][]byte{unmasked}, 1002},
		{"reserved opcode", [][]byte{frame(true, 0x3, []byte("x"))}, 1002},
		{"continuation without a start", [][]byte{frame(true, 0x0, []byte("x"))}, 1002},
		{"new message inside a fragmented one", [][]byte{frame(false, 0x1, []byte("{")), frame(true, 0x1, []byte("{}"))}, 1002},
		{"fragmented ping", [][]byte{frame(false, 0x9, []byte("x"))}, 1002},
		{"ping longer than 125 bytes", [][]byte{frame(true, 0x9, make([]byte, 126))}, 1002},
		{"RSV1 without an extension", [][]byte{append([]byte{0xC1}, frame(true, 0x1, []byte("{}"))[1:]...)}, 1002},
		{"frame length of 2^63", [][]byte{{0x81, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}}, 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := rawUpgrade(t, n, "/ws?client_id=wire", nil)
			if _, err := rc.event(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.frames {
				_ = rc.write(f)
			}
			code, _, err := rc.waitClose(5 * time.Second)
			if err != nil {
				t.Fatalf("no close frame: %v", err)
			}
			if code != tc.want {
				t.Fatalf("close %d, want %d", code, tc.want)
			}
		})
	}
	// A message split into fragments with a ping between them is fine.
	rc, _ := rawUpgrade(t, n, "/ws?client_id=frag", nil)
	if _, err := rc.event(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = rc.write(frame(false, 0x1, []byte(`{"type":`)))
	_ = rc.write(frame(true, 0x9, []byte("mid")))
	_ = rc.write(frame(false, 0x0, []byte(`"pi`)))
	_ = rc.write(frame(true, 0x0, []byte(`ng"}`)))
	if ev, err := rc.event(5 * time.Second); err != nil || ev.Event != "pong" {
		t.Fatalf("fragmented ping command: %+v %v", ev, err)
	}
	send(t, bystander, map[string]any{"type": "ping"})
	expect(t, bystander, "bystander pong", isEvent("pong"))
	waitFor(t, "the 1007 closes counted", 5*time.Second, func() bool {
		return metricValue(t, n, `switchboard_closes_total{code="1007"}`) == 4
	})
}

// Thousands of connects and disconnects, clean and dirty, leave nothing
// behind: no session, room, socket or slot while the node runs, and no
// goroutine once it has stopped. (Goroutines are counted after the stop
// because the node keeps a bounded pool of parked mailbox goroutines; a
// connection's read loop or writer that never ended would outlive the stop.)
func TestConnectDisconnectBurst(t *testing.T) {
	// Registered before the node, so it runs after the node's own cleanup.
	t.Cleanup(goroutineBaseline(t))
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}), withGuests(),
		withTransport(func(c *transport.Config) { c.ReadHeaderTimeout = 2 * time.Second }))

	const cycles, workers = 2000, 8
	addr := strings.TrimPrefix(n.url, "http://")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < cycles; i += workers {
				if err := cycle(n, addr, i); err != nil {
					errs <- fmt.Errorf("cycle %d (kind %d): %w", i, i%6, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := n.node.Metrics()
	waitFor(t, "every session, room and socket gone", 10*time.Second, func() bool {
		return m.Sessions.Load() == 0 && m.Rooms.Load() == 0 && m.Users.Load() == 0 && n.srv.OpenConnections() == 0 &&
			metricValue(t, n, "switchboard_http_heads_pending") == 0
	})
	// The node still works.
	c := n.dial("after")
	send(t, c, map[string]any{"type": "ping"})
	expect(t, c, "pong", isEvent("pong"))
	_ = c.Close()
	t.Logf("%d cycles; %d sessions were opened", cycles, m.Connections.Load())
}

// cycle runs one connect/disconnect of kind i%6.
func cycle(n *testNode, addr string, i int) error {
	switch i % 6 {
	case 0, 1, 2: // upgrade, then: close handshake / drop / join a room and drop
		rc, resp, err := tryUpgrade(n, fmt.Sprintf("/ws?client_id=u%d", i%50), nil)
		if err != nil || rc == nil {
			return fmt.Errorf("upgrade: %v %v", resp, err)
		}
		defer rc.nc.Close()
		switch i % 6 {
		case 0:
			if _, err := rc.event(5 * time.Second); err != nil {
				return err
			}
			_ = rc.write(frame(true, 0x8, []byte{0x03, 0xe8}))
			if _, _, err := rc.waitClose(5 * time.Second); err != nil {
				return fmt.Errorf("close handshake: %w", err)
			}
		case 2:
			_ = rc.text(fmt.Sprintf(`{"type":"join_room","room":"burst%d"}`, i%10))
		}
		return nil
	case 3: // half a request head, then hang up
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_, _ = nc.Write([]byte("GET /ws?client_id=half HTTP/1.1\r\nHost: x\r\n"))
		return nc.Close()
	case 4: // a refused token
		rc, resp, err := tryUpgrade(n, "/ws/secure?token=forged.token.here", nil)
		if err != nil {
			return err
		}
		if rc != nil || resp.StatusCode != 401 {
			return fmt.Errorf("forged token: %d", resp.StatusCode)
		}
		return nil
	default: // connect and hang up at once
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return nc.Close()
	}
}

// Envelopes from the broker are untrusted: malformed ones are dropped
// without effect, and the node keeps delivering the valid ones.
func TestHostileBrokerEnvelopes(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	n := startNode(t, fabric.Broker())
	c := n.dial("member")
	send(t, c, map[string]any{"type": "join_room", "room": "r", "id": 1})
	expect(t, c, "join", isAck("1"))

	room, bcast := "websocket:room:r", "websocket:broadcast"
	bad := map[string][]byte{
		"not JSON":              []byte("PUBLISH"),
		"empty":                 {},
		"array":                 []byte(`[]`),
		"null":                  []byte(`null`),
		"empty object":          []byte(`{}`),
		"type number":           []byte(`{"type":1,"room":"r","payload":{"event":"chat"}}`),
		"unknown type":          []byte(`{"type":"exec","room":"r","payload":{"event":"chat"}}`),
		"room missing":          []byte(`{"type":"room_message","payload":{"event":"chat"}}`),
		"room invalid":          []byte(`{"type":"room_message","room":"r r","payload":{"event":"chat"}}`),
		"room number":           []byte(`{"type":"room_message","room":7,"payload":{"event":"chat"}}`),
		"payload missing":       []byte(`{"type":"room_message","room":"r"}`),
		"payload string":        []byte(`{"type":"room_message","room":"r","payload":"{\"event\":\"chat\"}"}`),
		"payload array":         []byte(`{"type":"room_message","room":"r","payload":[{"event":"chat"}]}`),
		"payload without event": []byte(`{"type":"room_message","room":"r","payload":{"content":"x"}}`),
		"event number":          []byte(`{"type":"room_message","room":"r","payload":{"event":5}}`),
		"payload invalid UTF-8": []byte("{\"type\":\"room_message\",\"room\":\"r\",\"payload\":{\"event\":\"chat\",\"content\":\"\xff\"}}"),
		"payload nested 20,000": []byte(`{"type":"room_message","room":"r","payload":{"event":"chat","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`),
		"over 1 MiB":            []byte(`{"type":"broadcast","payload":{"event":"chat","content":"` + strings.Repeat("x", 1<<20) + `"}}`),
		"sender_id object":      []byte(`{"type":"broadcast","sender_id":{},"payload":{"event":"chat"}}`),
		"direct without target": []byte(`{"type":"direct_message","payload":{"event":"direct_message"}}`),
		"truncated":             []byte(`{"type":"broadcast","payload":{"event":"chat"`),
	}
	for _, data := range bad {
		for _, ch := range []string{room, bcast} {
			fabric.PublishEncoded(ch, data)
		}
	}
	// A valid envelope from a node that adds none of Switchboard's fields.
	fabric.PublishEncoded(room, []byte(`{"type":"room_message","room":"r","payload":{"event":"chat","from":"backend","room":"r","content":"ok"}}`))
	ev := expect(t, c, "the valid envelope", func(e *wsclient.Event) bool { return e.Event != "user_connected" })
	if ev.Event != "chat" || ev.Content != "ok" {
		t.Fatalf("first event after the garbage: %s", ev.Raw)
	}
	if got := n.node.Metrics().BrokerIn.Load(); got != 1 {
		t.Fatalf("%d envelopes accepted from the broker, want 1", got)
	}
}
