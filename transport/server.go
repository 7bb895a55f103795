package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Config configures the HTTP side of a node. Zero values are documented and
// filled in by New.
type Config struct {
	// MaxMessageBytes bounds one client frame; larger closes with 1009.
	// Zero: 65536; else at least MinMessageBytes (64).
	MaxMessageBytes int
	// WriteTimeout bounds one write to a client. Zero: 10 s.
	WriteTimeout time.Duration
	// MaxPendingBytes is each session's outbound budget: bytes queued and not
	// yet written. Over it, the client is a slow consumer and is closed with
	// 1013. Zero: 4 MiB; else at least MinPendingBytes (1024).
	MaxPendingBytes int
	// MaxConnections refuses upgrades with 503 past this many open
	// connections. Zero: unlimited.
	MaxConnections int
	// MaxConnectionsPerIP refuses upgrades with 429 past this many open
	// connections from one remote address. Behind a load balancer every
	// client shares the balancer's address, so leave it off there.
	// Zero: unlimited.
	MaxConnectionsPerIP int
	// HandshakeTimeout bounds reading the whole HTTP request, head and body
	// (a client that drips a body is cut), and writing the upgrade response.
	// Zero: 10 s.
	HandshakeTimeout time.Duration
	// ReadHeaderTimeout bounds reading the request head, from the moment the
	// connection is accepted: a slowloris client that sends half a head, or
	// nothing, is cut. Zero: 5 s, or HandshakeTimeout if that is shorter.
	ReadHeaderTimeout time.Duration
	// Auth verifies tokens. Nil: no tokens are accepted, so /ws is open and
	// /ws/secure refuses everyone (401).
	Auth *Authenticator
	// AuthRequired makes /ws require a token too.
	AuthRequired bool
	// AllowAnonymous lets /ws take clients without a token on a node with
	// Auth, as guests: their ids are GuestPrefix + client_id (or + a random
	// id), a namespace no token's sub may enter, so a guest never receives
	// or sends as an authenticated user. False: with Auth, /ws without a
	// token is refused (401). Ignored without Auth (every client is
	// anonymous, ids unprefixed) and under AuthRequired.
	AllowAnonymous bool
	// AllowedOrigins, when not empty, is the allowlist of Origin header
	// values ("https://app.example.com", or "*"). Requests without an Origin
	// (non-browser clients) are accepted. Empty: every origin is accepted.
	AllowedOrigins []string
	// AllowBinary accepts binary frames as JSON commands. False: a binary
	// frame closes the connection with 1008.
	AllowBinary bool
	// ReadBufferSize is gws's per-connection read buffer. Zero: 1024. Client
	// frames are small commands (rate limited), and a frame larger than the
	// buffer is read straight into its own memory, so a larger buffer only
	// costs memory on every connection, idle or not: 3 KiB more per
	// connection at gws's default of 4096. Else MinReadBuffer to
	// MaxReadBuffer (256 B to 1 MiB).
	ReadBufferSize int
	// FrameBudgetBytes bounds the memory that all connections together may
	// reserve for client frames whose header has arrived and whose payload
	// has not (the library reserves a frame's buffer from its header). A
	// frame that finds the budget spent waits up to 5 s, its connection's
	// reads paused, then its connection is closed with 1013. Frames whose
	// buffer is at most 4 KiB, and frames that arrive whole, are not
	// charged. Zero: 64 MiB, or four of the largest messages if that is
	// more.
	FrameBudgetBytes int64
	// Logger receives transport logs. Zero: discard.
	Logger *slog.Logger

	// noFrameGate hands client bytes to gws unchecked; only tests set it,
	// to prove that a panic in a read loop costs only its connection.
	noFrameGate bool
}

// The smallest settings the node accepts (the command line's limits too):
// a message must hold any command with its longest id, a connection's
// outbound budget a few events, and a read buffer a frame header with room.
const (
	MinMessageBytes = 64
	MinPendingBytes = 1024
	MinReadBuffer   = 256
	MaxReadBuffer   = 1 << 20
)

// outOfRange reports one Config field out of its range, with the value
// given and what is allowed (zero always means the default).
func outOfRange(field string, v any, allowed string) error {
	return fmt.Errorf("transport: config: %s %v is out of range: %s", field, v, allowed)
}

func (c *Config) normalize() error {
	var errs []error
	check := func(ok bool, field string, v any, allowed string) {
		if !ok {
			errs = append(errs, outOfRange(field, v, allowed))
		}
	}
	check(c.MaxMessageBytes == 0 || c.MaxMessageBytes >= MinMessageBytes && c.MaxMessageBytes <= MaxMessageLimit, "MaxMessageBytes", c.MaxMessageBytes, "0 (65536) or 64 to 268435456 (256 MiB)")
	check(c.WriteTimeout >= 0, "WriteTimeout", c.WriteTimeout, "0 (10s) or more")
	check(c.MaxPendingBytes == 0 || c.MaxPendingBytes >= MinPendingBytes, "MaxPendingBytes", c.MaxPendingBytes, "0 (4 MiB) or at least 1024")
	check(c.MaxConnections >= 0, "MaxConnections", c.MaxConnections, "0 (unlimited) or more")
	check(c.MaxConnectionsPerIP >= 0, "MaxConnectionsPerIP", c.MaxConnectionsPerIP, "0 (unlimited) or more")
	check(c.HandshakeTimeout >= 0, "HandshakeTimeout", c.HandshakeTimeout, "0 (10s) or more")
	check(c.ReadHeaderTimeout >= 0, "ReadHeaderTimeout", c.ReadHeaderTimeout, "0 (5s) or more")
	check(c.ReadBufferSize == 0 || c.ReadBufferSize >= MinReadBuffer && c.ReadBufferSize <= MaxReadBuffer,
		"ReadBufferSize", c.ReadBufferSize, "0 (1024) or 256 to 1048576")
	check(c.FrameBudgetBytes >= 0, "FrameBudgetBytes", c.FrameBudgetBytes, "0 (64 MiB) or more")
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = 4 << 20
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = min(5*time.Second, c.HandshakeTimeout)
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = 1024
	}
	if one := maxMessageCost(c.MaxMessageBytes); c.FrameBudgetBytes == 0 {
		c.FrameBudgetBytes = max(64<<20, 4*one)
	} else if c.FrameBudgetBytes < one {
		return outOfRange("FrameBudgetBytes", c.FrameBudgetBytes, fmt.Sprintf("0 (64 MiB) or at least what one message of MaxMessageBytes costs (%d)", one))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Server serves one node over HTTP: the WebSocket endpoints and the
// operational endpoints. It is an http.Handler; mount it on any mux.
type Server struct {
	node       *actors.Node
	cfg        Config
	log        *slog.Logger
	upgrader   *gws.Upgrader
	upgraderSP *gws.Upgrader // echoes the "bearer" subprotocol
	mux        *http.ServeMux
	metrics    *promMetrics
	started    time.Time
	inbox      *inbox
	frames     *frameLimits // shared by every connection's frame gate
	socketSeq  atomic.Uint64
	readPanics atomic.Uint64 // read loops that panicked (each cost its connection only)

	origins originPolicy // immutable after New
	slots   *slots       // counts open (below) against the connection limits
	heads   headWatch    // connections still sending their request head
	closes  *prometheus.CounterVec

	open     atomic.Int64 // WebSockets upgrading or open: slots taken and not yet given back
	draining atomic.Bool
}

// New builds the HTTP side of node.
func New(node *actors.Node, cfg Config) (*Server, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &Server{node: node, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), started: time.Now()}
	s.origins = newOriginPolicy(cfg.AllowedOrigins)
	s.slots = newSlots(cfg.MaxConnections, cfg.MaxConnectionsPerIP, &s.open)
	opt := func(sub []string) *gws.ServerOption {
		return &gws.ServerOption{
			ReadMaxPayloadSize: cfg.MaxMessageBytes,
			ReadBufferSize:     cfg.ReadBufferSize,
			CheckUtf8Enabled:   true,
			HandshakeTimeout:   cfg.HandshakeTimeout,
			SubProtocols:       sub,
			NewSession:         func() gws.SessionStorage { return &socketState{} },
			Recovery:           gws.Recovery,
			Logger:             gwsLogger{s.log},
		}
	}
	s.inbox = newInbox(node, s.log)
	s.frames = &frameLimits{maxMessage: uint64(cfg.MaxMessageBytes), budget: newFrameBudget(cfg.FrameBudgetBytes), wait: frameBudgetWait}
	ev := &events{srv: s}
	s.upgrader = gws.NewUpgrader(ev, opt(nil))
	s.upgraderSP = gws.NewUpgrader(ev, opt([]string{bearerProtocol}))
	s.metrics = newPromMetrics(s)
	s.registerSecurityMetrics()

	s.mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r, cfg.AuthRequired) })
	s.mux.HandleFunc("GET /ws/secure", func(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r, true) })
	s.mux.HandleFunc("GET /stats", s.serveStats)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeText(w, http.StatusOK, "ok") })
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	return s, nil
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.heads.served(r)
	s.mux.ServeHTTP(w, r)
}

// Handle adds a route to the server's mux (the demo page, the publish API).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Node is the node this server serves.
func (s *Server) Node() *actors.Node { return s.node }

// OpenConnections is the number of upgraded connections still open.
func (s *Server) OpenConnections() int64 { return s.open.Load() }

// StartDrain makes /readyz answer 503 and refuses new WebSockets (503).
func (s *Server) StartDrain() { s.draining.Store(true) }

// Drain refuses new connections, closes every session with 1001 and waits
// for them to go, bounded by ctx.
func (s *Server) Drain(ctx context.Context) error {
	s.StartDrain()
	return s.node.Drain(ctx)
}

// NewHTTPServer returns an http.Server for s with the timeouts that protect a
// WebSocket node: a bounded request head read and a bounded whole-request
// read (slowloris, dripped bodies), a bounded head size, and no write
// timeout (it would leak into hijacked connections' lifetimes). The read
// deadlines do not outlive the upgrade: net/http clears them on Hijack and
// the socket's read deadline is the heartbeat's from then on.
func (s *Server) NewHTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.HandshakeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes, // a 16 KiB head, net/http's slack included
		ConnState:         s.heads.connState,
		ConnContext:       s.heads.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serveWS decides everything before the upgrade, cheapest check first:
// the request's shape, draining, origin, connection slots, then the token.
// A refusal is a plain HTTP error, never an accepted socket that is closed
// afterwards.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, requireToken bool) {
	if s.malformedUpgrade(w, r) {
		return
	}
	if s.draining.Load() || s.node.Draining() {
		s.refuse(w, &refusal{http.StatusServiceUnavailable, "node is draining", "draining"})
		return
	}
	if !s.origins.allows(r.Header.Get("Origin")) {
		s.refuse(w, &refusal{http.StatusForbidden, "origin not allowed", "origin"})
		return
	}
	ip := remoteIP(r)
	if no := s.slots.take(ip); no != nil {
		s.refuse(w, no)
		return
	}
	// From here every path gives the slot back, or hands it to the socket,
	// whose OnClose gives it back.
	opts, no := s.authenticate(r, requireToken)
	if no != nil {
		s.slots.give(ip)
		s.refuse(w, no)
		return
	}
	up := s.upgrader
	if hasBearerProtocol(r) {
		up = s.upgraderSP
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.slots.give(ip)
		writeText(w, http.StatusInternalServerError, "connection cannot be upgraded")
		return
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		s.slots.give(ip)
		return
	}
	wire := newWireConn(nc, s.cfg.MaxPendingBytes, s.cfg.WriteTimeout, time.Second)
	// UpgradeFromConn keeps bytes the client pipelined behind its request
	// (Upgrade would drop them). Without such bytes, a reader of the
	// configured size replaces net/http's (which is then garbage). Reads
	// come straight from the socket: the read loop parks under them, and
	// any frame more there would double its stack (2 to 4 KiB per idle
	// connection). No read deadline is set after the handshake, so no read
	// error carries the node's addresses into a close reason; silent peers
	// are dropped by the session's heartbeat check (actors.HeardConn).
	// Every byte goes through the frame gate, which refuses hostile frame
	// headers before gws parses them (framegate.go).
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	gate := newFrameGate(nc, early, s.frames)
	br := bufio.NewReaderSize(gate, s.cfg.ReadBufferSize)
	if s.cfg.noFrameGate {
		br.Reset(io.MultiReader(bytes.NewReader(early), nc))
	}
	socket, err := up.UpgradeFromConn(wire, br, r)
	if err != nil {
		s.slots.give(ip)
		s.metrics.refused.WithLabelValues("handshake").Inc()
		return
	}
	gate.conn = socket
	st := stateOf(socket)
	st.wire = wire
	st.gate = gate
	st.ip = ip
	st.hear()
	st.shard = s.inbox.shardFor(s.socketSeq.Add(1))
	st.pings = actors.NewTokenBucket(s.node.Config().RatePerSecond, s.node.Config().RateBurst, time.Now())
	opts.Remote = r.RemoteAddr
	st.session = s.node.Connect(&sessionConn{socket: socket, wire: wire, st: st}, opts)
	go s.readLoop(socket)
}

// readLoop runs gws's read loop for one connection. A panic in it (gws
// recovers only OnMessage) costs that connection alone: endReadLoop closes
// it with 1011, counts it and ends it the way OnClose ends a connection,
// and the process goes on. Its frame stays small, with the deferred call
// in a method of its own: an idle connection's whole stack is the read
// loop parked under this frame (see frameGate.Read).
func (s *Server) readLoop(socket *gws.Conn) {
	defer s.endReadLoop(socket)
	socket.ReadLoop()
}

// endReadLoop runs when a read loop ends, normally or by a panic.
func (s *Server) endReadLoop(socket *gws.Conn) {
	st := stateOf(socket)
	st.gate.release()
	r := recover()
	if r == nil {
		return
	}
	s.readPanics.Add(1)
	s.log.Error("panic in a connection's read loop; closing that connection", "panic", r, "remote", st.ip)
	_ = socket.WriteClose(uint16(wire.CloseInternal), []byte("internal error"))
	_ = st.wire.Close()
	if !st.ended.Load() {
		(&events{srv: s}).OnClose(socket, errReadLoopPanic)
	}
}

// errReadLoopPanic ends a session whose read loop panicked.
var errReadLoopPanic = errors.New("transport: read loop panicked")

// refuse answers a refused handshake and counts it by reason.
func (s *Server) refuse(w http.ResponseWriter, no *refusal) {
	s.metrics.refused.WithLabelValues(no.reason).Inc()
	switch no.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "5")
	}
	writeText(w, no.status, no.msg)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// gwsLogger adapts gws's logger (used by its panic recovery) to slog.
type gwsLogger struct{ log *slog.Logger }

func (l gwsLogger) Error(v ...any) { l.log.Error("websocket", "detail", v) }

// remoteIP is the peer's address without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
