package transport_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

const testAPIKey = "k3y-for-tests"

// withAPI mounts the publish API with key on n.
func withAPI(n *testNode, key string) *testNode {
	n.srv.Handle(transport.PublishPath, n.srv.PublishAPI(key))
	return n
}

type apiReply struct {
	Local   *int    `json:"local_recipients"`
	Broker  *bool   `json:"broker_accepted"`
	Offset  *uint64 `json:"offset"`
	Epoch   *string `json:"epoch"`
	Error   string  `json:"error"`
	Message string  `json:"message"`
}

// post sends body to n's publish API with the Authorization header auth (none
// when empty) and decodes the JSON reply.
func post(t *testing.T, n *testNode, method, auth, body string) (int, apiReply, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, n.url+transport.PublishPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r apiReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("reply %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, r, resp.Header
}

func bearer(key string) string { return "Bearer " + key }

func TestPublishAPIOffWithoutKey(t *testing.T) {
	n := withAPI(startNode(t, nil), "")
	status, r, _ := post(t, n, http.MethodPost, bearer(""), `{"broadcast":true,"payload":{"event":"x"}}`)
	if status != http.StatusNotFound || r.Error != "not_found" {
		t.Fatalf("no key configured: got %d %+v, want 404 not_found", status, r)
	}
}

func TestPublishAPIKey(t *testing.T) {
	n := withAPI(startNode(t, nil), testAPIKey)
	body := `{"broadcast":true,"payload":{"event":"x"}}`
	for name, auth := range map[string]string{
		"missing":       "",
		"wrong":         bearer("k3y-for-test"),
		"longer":        bearer(testAPIKey + "x"),
		"not bearer":    "Basic " + testAPIKey,
		"empty bearer":  "Bearer ",
		"key in scheme": testAPIKey,
	} {
		status, r, h := post(t, n, http.MethodPost, auth, body)
		if status != http.StatusUnauthorized || r.Error != "unauthorized" {
			t.Errorf("%s key: got %d %+v, want 401 unauthorized", name, status, r)
		}
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s key: WWW-Authenticate = %q", name, h.Get("WWW-Authenticate"))
		}
		if r.Local != nil || r.Broker != nil {
			t.Errorf("%s key: a refused request must not report a result: %+v", name, r)
		}
	}
	if status, _, h := post(t, n, http.MethodGet, bearer(testAPIKey), ""); status != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" {
		t.Errorf("GET: got %d Allow=%q, want 405 Allow=POST", status, h.Get("Allow"))
	}
	// The scheme is case-insensitive (RFC 7235).
	if status, r, _ := post(t, n, http.MethodPost, "bearer "+testAPIKey, body); status != http.StatusOK {
		t.Errorf("lower-case scheme: got %d %+v", status, r)
	}
}

// TestPublishAPIReachesClientsOnEveryNode publishes through node A's API to a
// room, a user and everyone, with recipients on A and on B (two nodes on one
// in-process fabric): each receives the payload as sent, and the reply counts
// A's local recipients.
func TestPublishAPIReachesClientsOnEveryNode(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	a := withAPI(startNode(t, fabric.Broker()), testAPIKey)
	b := startNode(t, fabric.Broker())

	alice, carol := a.dial("alice"), a.dial("carol")
	bob := b.dial("bob")
	for _, c := range []*wsclient.Client{alice, carol, bob} {
		_ = c.SendJSON(map[string]any{"type": "join_room", "room": "news", "id": "j"})
		expect(t, c, "join ack", isEvent("ack"))
	}
	// Bob's join has reached node A once alice sees it.
	expect(t, alice, "bob joined", func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == "bob" })

	payload := `{"event":"deploy","version":"1.4.2","meta":{"by":"ci","ok":true}}`
	status, r, _ := post(t, a, http.MethodPost, bearer(testAPIKey), `{"room":"news","payload":`+payload+`}`)
	if status != http.StatusOK || r.Local == nil || *r.Local != 2 || r.Broker == nil || !*r.Broker {
		t.Fatalf("room publish: got %d %+v, want 200 with 2 local recipients and the broker's acceptance", status, r)
	}
	if r.Offset == nil || *r.Offset != 1 || r.Epoch == nil || *r.Epoch == "" {
		t.Fatalf("room publish: got %+v, want its place in the room's stream (offset 1 and an epoch)", r)
	}
	// The payload as sent, with its place in the stream as its last members.
	want := strings.TrimSuffix(payload, "}") + `,"offset":1,"epoch":"` + *r.Epoch + `"}`
	for name, c := range map[string]*wsclient.Client{"alice": alice, "carol": carol, "bob": bob} {
		ev := expect(t, c, name+" gets the room event", isEvent("deploy"))
		if string(ev.Raw) != want {
			t.Errorf("%s got %s, want the payload as sent: %s", name, ev.Raw, want)
		}
	}

	status, r, _ = post(t, a, http.MethodPost, bearer(testAPIKey), `{"user":"bob","payload":{"event":"notice","text":"for bob"}}`)
	if status != http.StatusOK || *r.Local != 0 || !*r.Broker {
		t.Fatalf("user publish: got %d %+v, want 200, 0 local, broker accepted", status, r)
	}
	ev := expect(t, bob, "bob's notice", isEvent("notice"))
	if !bytes.Contains(ev.Raw, []byte(`"for bob"`)) {
		t.Errorf("bob got %s", ev.Raw)
	}

	status, r, _ = post(t, a, http.MethodPost, bearer(testAPIKey), `{"broadcast":true,"payload":{"event":"maintenance","in_minutes":5}}`)
	if status != http.StatusOK || *r.Local != 2 || !*r.Broker {
		t.Fatalf("broadcast: got %d %+v, want 200, 2 local, broker accepted", status, r)
	}
	for name, c := range map[string]*wsclient.Client{"alice": alice, "carol": carol, "bob": bob} {
		expect(t, c, name+" gets the broadcast", isEvent("maintenance"))
	}
	// Nobody received the user event but bob: it would have come before the
	// broadcast on the same connection.
	for name, c := range map[string]*wsclient.Client{"alice": alice, "carol": carol} {
		for _, e := range c.Drain() {
			if e.Event == "notice" {
				t.Errorf("%s received bob's notice", name)
			}
		}
	}
}

func TestPublishAPIRefusesBadRequests(t *testing.T) {
	n := withAPI(startNode(t, nil, func(_ *actors.Config, tc *transport.Config) { tc.MaxMessageBytes = 1024 }), testAPIKey)
	watcher := n.dial("watcher")
	_ = watcher.SendJSON(map[string]any{"type": "join_room", "room": "ok", "id": 1})
	expect(t, watcher, "ack", isEvent("ack"))

	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not JSON", `{"room":`, 400, "invalid_json"},
		{"two objects", `{"broadcast":true,"payload":{"event":"x"}} {}`, 400, "invalid_json"},
		{"array", `[1]`, 400, "invalid_json"},
		{"no target", `{"payload":{"event":"x"}}`, 400, "invalid_message"},
		{"broadcast false", `{"broadcast":false,"payload":{"event":"x"}}`, 400, "invalid_message"},
		{"two targets", `{"room":"ok","user":"u","payload":{"event":"x"}}`, 400, "invalid_message"},
		{"invalid room", `{"room":"no spaces allowed","payload":{"event":"x"}}`, 400, "invalid_room"},
		{"room too long", `{"room":"` + strings.Repeat("r", 129) + `","payload":{"event":"x"}}`, 400, "invalid_room"},
		{"user too long", `{"user":"` + strings.Repeat("u", 129) + `","payload":{"event":"x"}}`, 400, "invalid_message"},
		{"no payload", `{"room":"ok"}`, 400, "invalid_message"},
		{"payload not object", `{"room":"ok","payload":"hello"}`, 400, "invalid_message"},
		{"payload without event", `{"room":"ok","payload":{"text":"x"}}`, 400, "invalid_message"},
		{"event not string", `{"room":"ok","payload":{"event":7}}`, 400, "invalid_message"},
		{"too large", `{"room":"ok","payload":{"event":"x","pad":"` + strings.Repeat("p", 1100) + `"}}`, 413, "too_large"},
	}
	for _, c := range cases {
		status, r, _ := post(t, n, http.MethodPost, bearer(testAPIKey), c.body)
		if status != c.status || r.Error != c.code || r.Message == "" {
			t.Errorf("%s: got %d %+v, want %d %s with a message", c.name, status, r, c.status, c.code)
		}
	}
	// None of them reached the room: the next valid publish is the first
	// event the watcher sees.
	if status, r, _ := post(t, n, http.MethodPost, bearer(testAPIKey), `{"room":"ok","payload":{"event":"first"}}`); status != 200 || *r.Local != 1 {
		t.Fatalf("valid publish: got %d %+v", status, r)
	}
	ev, err := watcher.Next(5 * time.Second)
	if err != nil || ev.Event != "first" {
		t.Fatalf("watcher's next event: %v %+v, want the valid publish", err, ev)
	}
}

// TestPublishAPIBrokerDown: with the broker refusing, local recipients still
// get the event and the reply says the other nodes were not reached (503).
func TestPublishAPIBrokerDown(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	n := withAPI(startNode(t, fabric.Broker()), testAPIKey)
	alice := n.dial("alice")
	fabric.SetDown(true)
	status, r, h := post(t, n, http.MethodPost, bearer(testAPIKey), `{"broadcast":true,"payload":{"event":"alert"}}`)
	if status != http.StatusServiceUnavailable || r.Error != "unavailable" || r.Broker == nil || *r.Broker || r.Local == nil || *r.Local != 1 {
		t.Fatalf("broker down: got %d %+v, want 503 unavailable, 1 local, broker not accepted", status, r)
	}
	if h.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	expect(t, alice, "local delivery while the broker is down", isEvent("alert"))
	fabric.SetDown(false)
	if status, _, _ := post(t, n, http.MethodPost, bearer(testAPIKey), `{"broadcast":true,"payload":{"event":"alert"}}`); status != http.StatusOK {
		t.Fatalf("broker back: got %d", status)
	}
}
