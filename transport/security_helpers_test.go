package transport_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// testSecret is the HS256 secret of the security tests' nodes.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// Keys are generated once per test binary: RSA generation is slow under -race.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func testKeys(t testing.TB) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, ecKey
}

func publicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims builds a claim set for sub valid for ttl from now.
func claims(sub string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
}

func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hsToken(t testing.TB, c jwt.Claims) string {
	return sign(t, jwt.SigningMethodHS256, testSecret, c)
}

// withAuth configures a node's token verification.
func withAuth(t testing.TB, cfg transport.AuthConfig) nodeOpt {
	t.Helper()
	a, err := transport.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ *actors.Config, tc *transport.Config) { tc.Auth = a }
}

func withTransport(f func(*transport.Config)) nodeOpt {
	return func(_ *actors.Config, tc *transport.Config) { f(tc) }
}

func withActors(f func(*actors.Config)) nodeOpt {
	return func(ac *actors.Config, _ *transport.Config) { f(ac) }
}

// dialWS connects with wsclient and returns the client and its welcome, or
// the handshake error.
func dialWS(t testing.TB, url string, hdr http.Header) (*wsclient.Client, *wsclient.Event, error) {
	t.Helper()
	c, err := wsclient.Dial(url, wsclient.Options{Header: hdr})
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	ev, err := c.WaitFor(5*time.Second, isEvent("welcome"))
	if err != nil {
		return nil, nil, fmt.Errorf("welcome: %w", err)
	}
	return c, ev, nil
}

// send marshals v as one text frame, failing the test on a write error.
func send(t testing.TB, c *wsclient.Client, v any) {
	t.Helper()
	if err := c.SendJSON(v); err != nil {
		t.Fatalf("send %v: %v", v, err)
	}
}

func isError(code string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == "error" && e.Code == code }
}

func isAck(id string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == id }
}

// rawConn is a WebSocket client written against the wire, for what a well
// behaved client library will not do: half requests, fragments, floods,
// invalid frames, never reading.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
}

// rawUpgrade sends an upgrade request for path with extra header lines and
// reads the response head. The connection stays open only on 101.
func rawUpgrade(t testing.TB, n *testNode, path string, hdr http.Header) (*rawConn, *http.Response) {
	t.Helper()
	rc, resp, err := tryUpgrade(n, path, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if rc != nil {
		t.Cleanup(func() { rc.nc.Close() })
	}
	return rc, resp
}

// tryUpgrade is rawUpgrade for goroutines other than the test's: it reports
// errors instead of failing, and the caller closes the connection.
func tryUpgrade(n *testNode, path string, hdr http.Header) (*rawConn, *http.Response, error) {
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	return upgradeOn(nc, path, hdr)
}

// upgradeOn sends the upgrade request on an open connection.
func upgradeOn(nc net.Conn, path string, hdr http.Header) (*rawConn, *http.Response, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, nc.RemoteAddr())
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("reading the handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		nc.Close()
		return nil, resp, nil
	}
	_ = nc.SetDeadline(time.Time{})
	return &rawConn{nc: nc, br: br}, resp, nil
}

// handshakeStatus is the HTTP status a raw upgrade request gets.
func handshakeStatus(t testing.TB, n *testNode, path string, hdr http.Header) int {
	t.Helper()
	rc, resp := rawUpgrade(t, n, path, hdr)
	if rc != nil {
		rc.nc.Close()
	}
	return resp.StatusCode
}

// frame encodes one masked client frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+14)
	h := op
	if fin {
		h |= 0x80
	}
	b = append(b, h)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func (r *rawConn) write(p []byte) error {
	_ = r.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.nc.Write(p)
	return err
}

func (r *rawConn) text(s string) error { return r.write(frame(true, 0x1, []byte(s))) }

// readFrame reads one server frame (never masked, never fragmented by this
// server) within d.
func (r *rawConn) readFrame(d time.Duration) (byte, []byte, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}

// event reads frames until a text event, within d; a close frame is an error.
func (r *rawConn) event(d time.Duration) (*wsclient.Event, error) {
	deadline := time.Now().Add(d)
	for {
		op, p, err := r.readFrame(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x1:
			ev := &wsclient.Event{Raw: p}
			if err := json.Unmarshal(p, ev); err != nil {
				return nil, fmt.Errorf("server sent invalid JSON %q: %w", p, err)
			}
			return ev, nil
		case 0x8:
			return nil, &closedError{code: closeCode(p), reason: string(p[min(2, len(p)):])}
		}
	}
}

// closeCode reads the code of a close frame payload.
func closeCode(p []byte) uint16 {
	if len(p) < 2 {
		return 1005
	}
	return binary.BigEndian.Uint16(p)
}

type closedError struct {
	code   uint16
	reason string
}

func (e *closedError) Error() string { return fmt.Sprintf("closed %d %q", e.code, e.reason) }

// waitClose reads until the server's close frame and returns its code; text
// frames before it are returned too. A connection that ends without a close
// frame is an error.
func (r *rawConn) waitClose(d time.Duration) (uint16, [][]byte, error) {
	deadline := time.Now().Add(d)
	var texts [][]byte
	for {
		op, p, err := r.readFrame(time.Until(deadline))
		if err != nil {
			return 0, texts, err
		}
		switch op {
		case 0x1:
			texts = append(texts, p)
		case 0x8:
			return closeCode(p), texts, nil
		}
	}
}

// closedBy reports whether err is the server closing with code.
func closedBy(err error, code uint16) bool {
	var ce *closedError
	return errors.As(err, &ce) && ce.code == code
}

// expectEOF waits (bounded) until the server closes the TCP connection,
// reading and dropping whatever it sends.
func expectEOF(t testing.TB, nc net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s: the server kept the connection open for %v", what, d)
			}
			return
		}
	}
}

func rsaKeyOfBits(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }

// nonCanonical re-spells a base64url segment whose last character carries
// unused low bits: a lenient decoder reads the same bytes, a strict one
// refuses it. ok is false when the segment has no unused bits.
func nonCanonical(seg string) (string, bool) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		return "", false
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1]), true
}

// header builds a one-line header with a canonical key (gws's client looks
// its own request headers up with Get, so literal keys would be missed).
func header(k, v string) http.Header {
	h := http.Header{}
	h.Set(k, v)
	return h
}
