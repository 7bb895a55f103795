package transport_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// A token is accepted from each of its three places, on /ws/secure, and the
// client id is the token's sub.
func TestAuthTokenSources(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}))
	tok := hsToken(t, claims("alice", time.Hour))
	secure := n.wsURL("/ws/secure")

	cases := []struct {
		name string
		url  string
		hdr  http.Header
	}{
		{"query", secure + "?token=" + tok, nil},
		{"authorization", secure, http.Header{"Authorization": {"Bearer " + tok}}},
		{"authorization lower case scheme", secure, http.Header{"Authorization": {"bearer " + tok}}},
		{"subprotocol", secure, header("Sec-WebSocket-Protocol", "bearer, "+tok)},
		{"query with matching client_id", secure + "?client_id=alice&token=" + tok, nil},
	}
	// What a browser sees: the server selects "bearer" and nothing else.
	rc, resp := rawUpgrade(t, n, "/ws/secure", header("Sec-WebSocket-Protocol", "bearer, "+tok))
	if rc == nil || resp.Header.Get("Sec-WebSocket-Protocol") != "bearer" {
		t.Fatalf("subprotocol handshake: %d, selected %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, welcome, err := dialWS(t, tc.url, tc.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if welcome.Client != "alice" {
				t.Fatalf("welcome client_id %q, want the token's sub", welcome.Client)
			}
			if tc.name == "subprotocol" {
				// The server selects "bearer", so a browser's handshake succeeds;
				// the gws client checks the selection itself.
				if got := c.Conn().SubProtocol(); got != "bearer" {
					t.Fatalf("selected subprotocol %q, want bearer", got)
				}
			}
			send(t, c, map[string]any{"type": "ping", "id": 1})
			expect(t, c, "pong", isEvent("pong"))
		})
	}
}

// Every bad token is an HTTP 401 before any upgrade, never an accepted
// socket that is closed afterwards; no session is created.
func TestAuthRefusedBeforeUpgrade(t *testing.T) {
	rsaPriv, ecPriv := testKeys(t)
	rsaPub := publicPEM(t, &rsaPriv.PublicKey)
	hs := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret, Issuer: "idp", Audience: "switchboard"}))
	rs := startNode(t, nil, withAuth(t, transport.AuthConfig{PublicKeyPEM: rsaPub}))
	es := startNode(t, nil, withAuth(t, transport.AuthConfig{PublicKeyPEM: publicPEM(t, &ecPriv.PublicKey)}))
	open := startNode(t, nil) // no authenticator configured

	good := func() jwt.MapClaims {
		c := claims("alice", time.Hour)
		c["iss"], c["aud"] = "idp", "switchboard"
		return c
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	valid := hsToken(t, good())
	parts := strings.Split(valid, ".")
	sig2, ok := nonCanonical(parts[2])
	if !ok {
		t.Fatal("an HS256 signature always has unused bits in its last base64 character")
	}
	// The RS256 node's public key is no secret: a forger signs HS256 with it,
	// hoping the verifier uses the key bytes as an HMAC secret.
	confused := sign(t, jwt.SigningMethodHS256, rsaPub, claims("alice", time.Hour))

	type bad struct {
		name  string
		node  *testNode
		query string
		hdr   http.Header
		want  string // expected start of the response body
	}
	q := func(tok string) string { return "?token=" + tok }
	cases := []bad{
		{"missing on /ws/secure", hs, "", nil, "token required"},
		{"empty query token and no other", hs, "?token=", nil, "token required"},
		{"empty bearer", hs, "", http.Header{"Authorization": {"Bearer "}}, "token required"},
		{"bearer offered without a token", hs, "", header("Sec-WebSocket-Protocol", "bearer"), "token required"},
		{"not a JWT", hs, q("hello"), nil, "invalid token"},
		{"three empty segments", hs, q(".."), nil, "invalid token"},
		{"garbage segments", hs, q("a.b.c"), nil, "invalid token"},
		{"signature of another secret", hs, q(sign(t, jwt.SigningMethodHS256, []byte("another secret, just as long as it"), good())), nil, "invalid token"},
		{"signature cut", hs, q(valid[:len(valid)-4]), nil, "invalid token"},
		{"payload swapped", hs, q(parts[0] + "." + strings.Split(hsToken(t, claims("mallory", time.Hour)), ".")[1] + "." + parts[2]), nil, "invalid token"},
		{"padded base64 (non-canonical spelling)", hs, q(parts[0] + "." + parts[1] + "." + parts[2] + "%3D"), nil, "invalid token"},
		{"non-canonical base64 signature (same bytes)", hs, q(parts[0] + "." + parts[1] + "." + sig2), nil, "invalid token"},
		{"alg none", hs, q(noneTok), nil, "invalid token"},
		{"alg none, bearer header", hs, "", http.Header{"Authorization": {"Bearer " + noneTok}}, "invalid token"},
		{"expired", hs, q(hsToken(t, with("exp", time.Now().Add(-time.Minute).Unix()))), nil, "token expired"},
		{"not yet valid", hs, q(hsToken(t, with("nbf", time.Now().Add(time.Minute).Unix()))), nil, "invalid token"},
		{"issued in the future", hs, q(hsToken(t, with("iat", time.Now().Add(time.Minute).Unix()))), nil, "invalid token"},
		{"exp of the wrong type", hs, q(hsToken(t, with("exp", "tomorrow"))), nil, "invalid token"},
		{"no sub", hs, q(hsToken(t, with("sub", nil))), nil, "invalid token"},
		{"sub too long", hs, q(hsToken(t, with("sub", strings.Repeat("a", 129)))), nil, "invalid token"},
		{"sub with a control character", hs, q(hsToken(t, with("sub", "al\x1bice"))), nil, "invalid token"},
		{"rooms claim not a list", hs, q(hsToken(t, with("rooms", "lobby"))), nil, "invalid token"},
		{"wrong issuer", hs, q(hsToken(t, with("iss", "someone-else"))), nil, "invalid token"},
		{"no issuer", hs, q(hsToken(t, with("iss", nil))), nil, "invalid token"},
		{"audience of another service", hs, q(hsToken(t, with("aud", "billing"))), nil, "invalid token"},
		{"client_id differs from sub", hs, "?client_id=bob&token=" + valid, nil, "client_id does not match"},
		{"HS256 signed with the RSA public key (alg confusion)", rs, q(confused), nil, "invalid token"},
		{"HS256 with the shared secret at an RS256 node", rs, q(hsToken(t, claims("alice", time.Hour))), nil, "invalid token"},
		{"ES256 at an RS256 node", rs, q(sign(t, jwt.SigningMethodES256, ecPriv, claims("alice", time.Hour))), nil, "invalid token"},
		{"RS256 at an ES256 node", es, q(sign(t, jwt.SigningMethodRS256, rsaPriv, claims("alice", time.Hour))), nil, "invalid token"},
		{"PS256 with the right RSA key", rs, q(sign(t, jwt.SigningMethodPS256, rsaPriv, claims("alice", time.Hour))), nil, "invalid token"},
		{"a token at a node without an authenticator", open, q(valid), nil, "token authentication is not configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, resp := rawUpgrade(t, tc.node, "/ws/secure"+tc.query, tc.hdr)
			if rc != nil {
				t.Fatalf("upgraded (101), want 401")
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			// The same refusal on /ws when a token is offered there: a bad
			// token is never downgraded to an anonymous session.
			if tc.want != "token required" {
				if st := handshakeStatus(t, tc.node, "/ws"+tc.query, tc.hdr); st != http.StatusUnauthorized {
					t.Fatalf("/ws with the same token: status %d, want 401", st)
				}
			}
		})
	}
	// Response bodies say why, without echoing the token.
	rc, resp := rawUpgrade(t, hs, "/ws/secure?token="+hsToken(t, with("exp", time.Now().Add(-time.Minute).Unix())), nil)
	if rc != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatal("expired token upgraded")
	}
	for _, n := range []*testNode{hs, rs, es, open} {
		if s := n.node.Metrics().Sessions.Load(); s != 0 {
			t.Fatalf("a refused handshake created %d sessions", s)
		}
		if c := n.node.Metrics().Connections.Load(); c != 0 {
			t.Fatalf("a refused handshake opened %d sessions", c)
		}
	}
}

// RS256 and ES256 tokens verified with a public key, in every accepted place.
func TestAuthPublicKeyAlgorithms(t *testing.T) {
	rsaPriv, ecPriv := testKeys(t)
	rs := startNode(t, nil, withAuth(t, transport.AuthConfig{PublicKeyPEM: publicPEM(t, &rsaPriv.PublicKey)}))
	es := startNode(t, nil, withAuth(t, transport.AuthConfig{PublicKeyPEM: publicPEM(t, &ecPriv.PublicKey)}))
	for _, tc := range []struct {
		name string
		n    *testNode
		tok  string
	}{
		{"RS256", rs, sign(t, jwt.SigningMethodRS256, rsaPriv, claims("rita", time.Hour))},
		{"ES256", es, sign(t, jwt.SigningMethodES256, ecPriv, claims("eve", time.Hour))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, hdr := range []http.Header{
				{"Authorization": {"Bearer " + tc.tok}},
				header("Sec-WebSocket-Protocol", "bearer, "+tc.tok),
			} {
				c, welcome, err := dialWS(t, tc.n.wsURL("/ws/secure"), hdr)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]string{"RS256": "rita", "ES256": "eve"}[tc.name]; welcome.Client != want {
					t.Fatalf("client id %q, want %q", welcome.Client, want)
				}
				_ = c.Close()
			}
		})
	}
	if _, err := transport.NewAuthenticator(transport.AuthConfig{PublicKeyPEM: []byte("not a key")}); err == nil {
		t.Fatal("a PEM-less key was accepted")
	}
	small, err := rsaKeyOfBits(1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transport.NewAuthenticator(transport.AuthConfig{PublicKeyPEM: publicPEM(t, &small.PublicKey)}); err == nil {
		t.Fatal("a 1024-bit RSA key was accepted")
	}
	if _, err := transport.NewAuthenticator(transport.AuthConfig{Secret: testSecret, PublicKeyPEM: publicPEM(t, &rsaPriv.PublicKey)}); err == nil {
		t.Fatal("a secret and a public key together were accepted")
	}
}

// --auth-required: /ws needs a token too. Without it, a node with a key
// still refuses clients without a token unless it takes guests
// (TestGuestsCannotTakeAuthenticatedIDs); a node without a key is open and
// the client picks its id.
func TestAuthRequiredOnWS(t *testing.T) {
	strict := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}),
		withTransport(func(c *transport.Config) { c.AuthRequired = true }))
	if st := handshakeStatus(t, strict, "/ws?client_id=alice", nil); st != http.StatusUnauthorized {
		t.Fatalf("/ws without a token with auth required: %d, want 401", st)
	}
	if _, _, err := dialWS(t, strict.wsURL("/ws?token="+hsToken(t, claims("alice", time.Hour))), nil); err != nil {
		t.Fatal(err)
	}

	lax := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}), withGuests())
	_, welcome, err := dialWS(t, lax.wsURL("/ws?client_id=anyone"), nil)
	if err != nil || welcome.Client != "guest:anyone" {
		t.Fatalf("/ws taking guests: %v %+v", err, welcome)
	}
	if st := handshakeStatus(t, lax, "/ws/secure?client_id=anyone", nil); st != http.StatusUnauthorized {
		t.Fatalf("/ws/secure without a token: %d, want 401", st)
	}
	keyless := startNode(t, nil)
	if _, welcome, err := dialWS(t, keyless.wsURL("/ws?client_id=anyone"), nil); err != nil || welcome.Client != "anyone" {
		t.Fatalf("/ws without a key: %v %+v", err, welcome)
	}
	// Client ids chosen by the client are text: no invalid UTF-8, no control
	// characters, at most 128 bytes (TestUserIDsCannotLookLikeOthers has the
	// rest).
	for _, n := range []*testNode{lax, keyless} {
		for _, id := range []string{"%FF%FE", "a%00b", "a%1Bb", strings.Repeat("x", 129), "%E2%80%A8"} {
			if st := handshakeStatus(t, n, "/ws?client_id="+id, nil); st != http.StatusBadRequest {
				t.Fatalf("client_id %q: %d, want 400", id, st)
			}
		}
	}
}

// A token that expires during the session ends it with 4001.
func TestAuthExpiryDuringSession(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}))
	// exp has one-second precision: this token expires 1 to 2 s from now.
	tok := hsToken(t, jwt.MapClaims{"sub": "short", "exp": time.Now().Add(2 * time.Second).Unix()})
	c, _, err := dialWS(t, n.wsURL("/ws/secure?token="+tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	long, _, err := dialWS(t, n.wsURL("/ws/secure?token="+hsToken(t, claims("long", time.Hour))), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := c.WaitClosed(10 * time.Second)
	if err != nil {
		t.Fatal("the session outlived its token")
	}
	if code != 4001 {
		t.Fatalf("close code %d, want 4001", code)
	}
	// The other session is untouched.
	send(t, long, map[string]any{"type": "ping"})
	expect(t, long, "pong", isEvent("pong"))
}

// The rooms claim decides which rooms a user may join and send to; without
// it, and without auth, every room is open.
func TestRoomsClaim(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}), withGuests())
	limited := hsToken(t, jwt.MapClaims{"sub": "lim", "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{"lobby", "team:*"}})
	none := hsToken(t, jwt.MapClaims{"sub": "nobody", "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{}})
	free := hsToken(t, claims("free", time.Hour))

	lim, _, err := dialWS(t, n.wsURL("/ws/secure?token="+limited), nil)
	if err != nil {
		t.Fatal(err)
	}
	fr, _, err := dialWS(t, n.wsURL("/ws/secure?token="+free), nil)
	if err != nil {
		t.Fatal(err)
	}
	nb, _, err := dialWS(t, n.wsURL("/ws/secure?token="+none), nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := n.dial("anon")

	// A free user (no rooms claim) and an anonymous one sit in "secret".
	for i, c := range []*wsclient.Client{fr, anon} {
		send(t, c, map[string]any{"type": "join_room", "room": "secret", "id": i})
		expect(t, c, "join ack", isEvent("ack"))
	}
	for _, room := range []string{"lobby", "team:a", "team:"} {
		send(t, lim, map[string]any{"type": "join_room", "room": room, "id": room})
		expect(t, lim, "join "+room, isAck(`"`+room+`"`))
	}
	for _, room := range []string{"secret", "team", "lobby2", "Lobby", "xteam:a"} {
		send(t, lim, map[string]any{"type": "join_room", "room": room, "id": room})
		ev := expect(t, lim, "refusal of "+room, func(e *wsclient.Event) bool { return e.Event == "error" || e.Event == "ack" })
		if ev.Code != "forbidden" || string(ev.ID) != `"`+room+`"` {
			t.Fatalf("join %s: %+v, want forbidden", room, ev)
		}
		// Sending without joining is forbidden too, not merely not_member.
		send(t, lim, map[string]any{"type": "room_message", "room": room, "content": "psst", "id": 7})
		ev = expect(t, lim, "send refusal", isEvent("error"))
		if ev.Code != "forbidden" {
			t.Fatalf("room_message to %s: %+v, want forbidden", room, ev)
		}
		// Nor may it read the room's history or presence.
		for _, typ := range []string{"history", "presence"} {
			send(t, lim, map[string]any{"type": typ, "room": room, "id": typ})
			if ev := expect(t, lim, typ+" refusal", isEvent("error")); ev.Code != "forbidden" {
				t.Fatalf("%s of %s: %+v, want forbidden", typ, room, ev)
			}
		}
	}
	send(t, nb, map[string]any{"type": "join_room", "room": "lobby"})
	if ev := expect(t, nb, "refusal", isEvent("error")); ev.Code != "forbidden" {
		t.Fatalf("empty rooms claim: %+v, want forbidden", ev)
	}
	// Allowed traffic flows; nothing of the refused traffic reached "secret".
	send(t, lim, map[string]any{"type": "room_message", "room": "team:a", "content": "hi team"})
	expect(t, lim, "own room message", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Room == "team:a" })
	send(t, fr, map[string]any{"type": "room_message", "room": "secret", "content": "marker"})
	for _, c := range []*wsclient.Client{fr, anon} {
		ev := expect(t, c, "marker", func(e *wsclient.Event) bool {
			return e.Event == "chat" || e.Event == "user_joined" && e.UserID == "lim"
		})
		if ev.Content != "marker" {
			t.Fatalf("secret room saw %+v before the marker", ev)
		}
	}
	if got := n.node.Metrics().ErrorsByCode.Load("forbidden"); got != 21 {
		t.Fatalf("forbidden errors counted: %d, want 21", got)
	}
}

// Browsers send Origin; a page from another site gets 403 before the upgrade.
func TestOriginAllowlist(t *testing.T) {
	n := startNode(t, nil, withTransport(func(c *transport.Config) {
		c.AllowedOrigins = []string{"https://app.example.com", "https://*.example.org/"}
	}))
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols}, // a non-browser client
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"HTTPS://APP.EXAMPLE.COM", http.StatusSwitchingProtocols},
		{"https://a.example.org", http.StatusSwitchingProtocols},
		{"https://a.b.example.org", http.StatusSwitchingProtocols},
		{"https://evil.com", http.StatusForbidden},
		{"http://app.example.com", http.StatusForbidden}, // another scheme is another origin
		{"https://app.example.com.evil.com", http.StatusForbidden},
		{"https://app.example.com:8443", http.StatusForbidden},
		{"https://example.org", http.StatusForbidden},
		{"https://evilexample.org", http.StatusForbidden},
		{"http://a.example.org", http.StatusForbidden},
		{"null", http.StatusForbidden}, // sandboxed iframes, file:// pages
	} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		if st := handshakeStatus(t, n, "/ws?client_id=o", hdr); st != tc.want {
			t.Errorf("Origin %q: %d, want %d", tc.origin, st, tc.want)
		}
	}
	waitFor(t, "no session left", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 0 })
}
