package transport_test

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// withGuests lets /ws accept connections without a token on a node that
// verifies tokens.
func withGuests() nodeOpt {
	return withTransport(func(c *transport.Config) { c.AllowAnonymous = true })
}

// clusterKinds are the brokers a cluster test runs on: the in-process
// fabric, and a real redis-server when one is installed.
func clusterKinds(t *testing.T) []string {
	if _, err := redistest.Binary(); err != nil {
		t.Logf("no redis-server: the in-process fabric only (%v)", err)
		return []string{"fabric"}
	}
	return []string{"fabric", "redis"}
}

// twoNodes starts a node that refuses anonymous clients and one that takes
// them as guests, both verifying HS256 tokens, joined by the kind of broker.
func twoNodes(t *testing.T, kind string) (strict, guests *testNode) {
	t.Helper()
	var brokers [2]actors.Broker
	switch kind {
	case "fabric":
		fabric := cluster.NewFabric()
		t.Cleanup(fabric.Close)
		brokers = [2]actors.Broker{fabric.Broker(), fabric.Broker()}
	case "redis":
		rs := redistest.Start(t) // this test's own server: no channel prefix needed
		for i := range brokers {
			b, err := redis.New(redis.Config{URL: rs.URL()})
			if err != nil {
				t.Fatal(err)
			}
			brokers[i] = b
		}
	}
	auth := withAuth(t, transport.AuthConfig{Secret: testSecret})
	strict = startNode(t, brokers[0], auth)
	guests = startNode(t, brokers[1], auth, withGuests())
	for _, n := range []*testNode{strict, guests} {
		waitFor(t, "the broker connected", 5*time.Second, func() bool { return n.node.BrokerState().Connected })
	}
	return strict, guests
}

// An anonymous client can never receive or send as an authenticated user,
// on any node of a cluster: a node with a key refuses anonymous clients
// unless told to take guests, and guests' ids all start with "guest:",
// which no token's sub may.
func TestGuestsCannotTakeAuthenticatedIDs(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			// Registered first, so it runs once the nodes and the broker are gone.
			t.Cleanup(goroutineBaseline(t))
			strict, guests := twoNodes(t, kind)
			for _, path := range []string{"/ws?client_id=alice", "/ws"} {
				if st := handshakeStatus(t, strict, path, nil); st != http.StatusUnauthorized {
					t.Fatalf("anonymous %s on a node with a key: %d, want 401", path, st)
				}
			}
			alice := dialToken(t, strict, "alice")
			bob := dialToken(t, guests, "bob") // tokens work on a guest node too

			guest, welcome, err := dialWS(t, guests.wsURL("/ws?client_id=alice"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if welcome.Client != "guest:alice" {
				t.Fatalf("guest asking for alice is %q, want guest:alice", welcome.Client)
			}
			// A token cannot enter the guest namespace either.
			forged := hsToken(t, claims("guest:alice", time.Hour))
			for _, n := range []*testNode{strict, guests} {
				if st := handshakeStatus(t, n, "/ws/secure?token="+forged, nil); st != http.StatusUnauthorized {
					t.Fatalf("token with sub guest:alice: %d, want 401", st)
				}
			}

			// bob writes to alice, then to the guest: the guest's first direct
			// message is the second one.
			// Alice's node registers her in the cluster's directory
			// through its outbox: until it has, bob's node rightly
			// answers user_offline, and bob sends again.
			deadline := time.Now().Add(5 * time.Second)
			for try := 1; ; try++ {
				id := fmt.Sprint(`"to-alice-`, try, `"`)
				send(t, bob, map[string]any{"type": "direct_message", "target_user": "alice", "content": "for alice", "id": json.RawMessage(id)})
				ev := expect(t, bob, "the answer to the message to alice", func(e *wsclient.Event) bool {
					return string(e.ID) == id && (e.Event == "ack" || e.Event == "error")
				})
				if ev.Event == "ack" {
					break
				}
				if ev.Code != "user_offline" || time.Now().After(deadline) {
					t.Fatalf("the message to alice: %s", ev.Raw)
				}
				time.Sleep(20 * time.Millisecond)
			}
			expect(t, alice, "alice's message", dmFrom("bob", "for alice"))
			send(t, bob, map[string]any{"type": "direct_message", "target_user": "guest:alice", "content": "for the guest", "id": 2})
			expect(t, bob, "ack of the message to the guest", isAck("2"))
			if ev := expect(t, guest, "the guest's message", isEvent("direct_message")); ev.Content != "for the guest" {
				t.Fatalf("the guest received %s, meant for alice", ev.Raw)
			}
			// What the guest sends is signed guest:alice.
			send(t, guest, map[string]any{"type": "direct_message", "target_user": "alice", "content": "it is me", "id": 3})
			expect(t, guest, "ack of the guest's message", isAck("3"))
			expect(t, alice, "the guest's message, from the guest", dmFrom("guest:alice", "it is me"))
			send(t, alice, map[string]any{"type": "join_room", "room": "lobby", "id": 4})
			expect(t, alice, "alice's join", isAck("4"))
			send(t, guest, map[string]any{"type": "join_room", "room": "lobby", "id": 5})
			expect(t, guest, "the guest's join", isAck("5"))
			send(t, guest, map[string]any{"type": "room_message", "room": "lobby", "content": "hello", "id": 6})
			expect(t, alice, "the guest's room message", chatFrom("guest:alice", "hello"))
		})
	}
}

func dialToken(t *testing.T, n *testNode, sub string) *wsclient.Client {
	t.Helper()
	c, welcome, err := dialWS(t, n.wsURL("/ws?token="+hsToken(t, claims(sub, time.Hour))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if welcome.Client != sub {
		t.Fatalf("token for %s connected as %q", sub, welcome.Client)
	}
	return c
}

func dmFrom(from, content string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool {
		return e.Event == "direct_message" && e.From == from && e.Content == content
	}
}

// Guests' ids: the client's name behind "guest:" (a name already spelled
// with the prefix keeps it, so a page that reconnects with its welcome id
// stays the same guest), or a random one; 128 bytes in all. Without a key,
// ids are the client's own, as they always were.
func TestGuestIDs(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}), withGuests())
	keyless := startNode(t, nil)
	random := regexp.MustCompile(`^guest:[A-Za-z0-9_-]{12}$`)
	for _, tc := range []struct {
		node *testNode
		id   string // client_id, query-escaped
		want string // "" for a random guest id
	}{
		{n, "", ""},
		{n, "zoe", "guest:zoe"},
		{n, "guest:zoe", "guest:zoe"},
		{n, "guest%3Aguest%3Azoe", "guest:guest:zoe"},
		{n, "Guest:zoe", "guest:Guest:zoe"},
		{n, strings.Repeat("x", 122), "guest:" + strings.Repeat("x", 122)},
		{keyless, "zoe", "zoe"},
		{keyless, "guest:zoe", "guest:zoe"},
		{keyless, strings.Repeat("x", 128), strings.Repeat("x", 128)},
	} {
		path := "/ws"
		if tc.id != "" {
			path += "?client_id=" + tc.id
		}
		_, welcome, err := dialWS(t, tc.node.wsURL(path), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if tc.want == "" && !random.MatchString(welcome.Client) || tc.want != "" && welcome.Client != tc.want {
			t.Fatalf("%s: client id %q, want %q", path, welcome.Client, tc.want)
		}
	}
	for _, id := range []string{"guest:", strings.Repeat("x", 123), "guest:" + strings.Repeat("x", 123), "%20zoe"} {
		if st := handshakeStatus(t, n, "/ws?client_id="+id, nil); st != http.StatusBadRequest {
			t.Fatalf("guest client_id %q: %d, want 400", id, st)
		}
	}
	// --auth-required wins over guests.
	strict := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}), withGuests(),
		withTransport(func(c *transport.Config) { c.AuthRequired = true }))
	if st := handshakeStatus(t, strict, "/ws?client_id=zoe", nil); st != http.StatusUnauthorized {
		t.Fatalf("guest with auth required: %d, want 401", st)
	}
}

// Ids are shown to other users, so an id may not be made to look like
// another: no format characters (bidi overrides, zero-width characters),
// no controls, no U+FFFD (what a decoder leaves for bytes it could not
// read), no leading or trailing spaces. The same rule holds for client_id
// (400) and for a token's sub (401).
func TestUserIDsCannotLookLikeOthers(t *testing.T) {
	open := startNode(t, nil)
	authed := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}))
	bad := []string{
		"\u202Eecila",       // right-to-left override
		"alice\u2066",       // left-to-right isolate
		"al\u200Bice",       // zero-width space
		"al\u200Dice",       // zero-width joiner
		"\uFEFFalice",       // byte order mark
		"al\u00ADice",       // soft hyphen
		"alice\u061C",       // Arabic letter mark
		"alice ",            // trailing space
		" alice",            // leading space
		"alice\u00A0",       // trailing no-break space
		"\u3000alice",       // leading ideographic space
		"alice\t",           // a control
		"al\u0085ice",       // next line (a C1 control)
		"al\uFFFDice",       // replacement character
		"\U000E0061lice",    // tag character
		"\u2028",            // line separator
		" ",                 // only a space
		"alice\u200E\u200F", // directional marks
	}
	for _, id := range bad {
		if st := handshakeStatus(t, open, "/ws?client_id="+url.QueryEscape(id), nil); st != http.StatusBadRequest {
			t.Errorf("client_id %+q: %d, want 400", id, st)
		}
		if st := handshakeStatus(t, authed, "/ws/secure?token="+hsToken(t, claims(id, time.Hour)), nil); st != http.StatusUnauthorized {
			t.Errorf("sub %+q: %d, want 401", id, st)
		}
	}
	for _, id := range []string{"alice bob", "Zoë", "李雷", "a:b@c", "Ωmega", "x"} {
		if _, w, err := dialWS(t, open.wsURL("/ws?client_id="+url.QueryEscape(id)), nil); err != nil || w.Client != id {
			t.Errorf("client_id %+q: %v %+v", id, err, w)
		}
		if _, w, err := dialWS(t, authed.wsURL("/ws/secure?token="+hsToken(t, claims(id, time.Hour))), nil); err != nil || w.Client != id {
			t.Errorf("sub %+q: %v %+v", id, err, w)
		}
	}
}

// hs256 signs a token made of raw header and payload bytes, for what the
// jwt library would not encode.
func hs256(header, payload string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// A token the node cannot fully understand, or whose text is not text, is
// refused: a crit header names extensions the node would have to apply
// (RFC 7515, 4.1.11; it applies none), and a payload with invalid UTF-8 or
// a sub that decodes to U+FFFD would give the session an id other than the
// one the issuer wrote.
func TestTokensWithCritOrBrokenText(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}))
	exp := time.Now().Add(time.Hour).Unix()
	crit := func(v any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice", time.Hour))
		tok.Header["crit"] = v
		tok.Header["x-policy"] = "strict"
		s, err := tok.SignedString(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	// The control: the hand-made token is accepted when its text is good.
	if _, w, err := dialWS(t, n.wsURL("/ws/secure?token="+hs256(hdr, fmt.Sprintf(`{"sub":"alice","exp":%d}`, exp))), nil); err != nil || w.Client != "alice" {
		t.Fatalf("hand-made token: %v %+v", err, w)
	}
	for _, tc := range []struct{ name, tok string }{
		{"crit naming an extension", crit([]string{"x-policy"})},
		{"crit naming a registered claim", crit([]string{"exp"})},
		{"empty crit", crit([]string{})},
		{"crit that is not a list", crit("x-policy")},
		{"invalid UTF-8 in sub", hs256(hdr, fmt.Sprintf("{\"sub\":\"al\xffice\",\"exp\":%d}", exp))},
		{"a lone surrogate escape in sub", hs256(hdr, fmt.Sprintf(`{"sub":"al\ud800ice","exp":%d}`, exp))},
		{"an escaped U+FFFD in sub", hs256(hdr, fmt.Sprintf(`{"sub":"al\ufffdice","exp":%d}`, exp))},
		{"invalid UTF-8 in another claim", hs256(hdr, fmt.Sprintf("{\"sub\":\"alice\",\"exp\":%d,\"note\":\"\xc3\"}", exp))},
	} {
		if st := handshakeStatus(t, n, "/ws/secure?token="+tc.tok, nil); st != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", tc.name, st)
		}
	}
}

// An ECDSA signature (r, s) has a twin (r, N-s) that verifies as well, so
// an ES256 token has two spellings. Both are accepted on purpose: issuers
// do not normalise s (Go's crypto/ecdsa, OpenSSL and most JWT libraries
// give the high one about half of the time), refusing one form would
// refuse half of their tokens, and the node keys nothing on the token's
// spelling (no replay cache, no deny list), so the twin grants nothing the
// original does not.
func TestES256SignatureTwinsAreBothAccepted(t *testing.T) {
	_, ecPriv := testKeys(t)
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{PublicKeyPEM: publicPEM(t, &ecPriv.PublicKey)}))
	tok := sign(t, jwt.SigningMethodES256, ecPriv, claims("eve", time.Hour))
	twin := ecdsaTwin(t, tok, ecPriv)
	for _, s := range []string{tok, twin} {
		if _, w, err := dialWS(t, n.wsURL("/ws/secure?token="+s), nil); err != nil || w.Client != "eve" {
			t.Fatalf("%v %+v", err, w)
		}
	}
}

// ecdsaTwin re-spells an ES256 token with the signature (r, N-s).
func ecdsaTwin(t *testing.T, tok string, key *ecdsa.PrivateKey) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature: %v (%d bytes)", err, len(sig))
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(key.Curve.Params().N, s)
	twin := append(sig[:32:32], s.FillBytes(make([]byte, 32))...)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(twin)
}
