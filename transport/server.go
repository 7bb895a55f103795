package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Server serves one node over HTTP: the WebSocket endpoints and the
// operational endpoints. It is an http.Handler; mount it on any mux.
type Server struct {
	node       port.Node
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
func New(node port.Node, cfg Config) (*Server, error) {
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
	s.frames = &frameLimits{maxMessage: uint64(cfg.MaxMessageBytes), budget: newFrameBudget(cfg.FrameBudgetBytes), wait: frameBudgetWait,
		reads: newReadBuffers(cfg.ReadBufferSize)}
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
func (s *Server) Node() port.Node { return s.node }

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
// deadlines do not outlive the upgrade: net/http clears them on Hijack, and
// no read deadline is set after it (silent peers are dropped by the
// sessions' heartbeat, port.HeardConn).
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
	if no == nil {
		opts.NoConnectionEvents, no = connectionEvents(r)
	}
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
	// (Upgrade would drop them). A reader over the frame gate replaces
	// net/http's (which is then garbage): the smallest one when the gate
	// reads the socket through its RawConn and lends itself a read buffer
	// of the configured size only while bytes wait, so that an idle
	// connection holds none; one of the configured size otherwise. Reads
	// come straight from the socket: the read loop parks under them, and
	// any frame more there would double its stack (2 to 4 KiB per idle
	// connection). No read deadline is set after the handshake, so no read
	// error carries the node's addresses into a close reason; silent peers
	// are dropped by the session's heartbeat check (port.HeardConn).
	// Every byte goes through the frame gate, which refuses hostile frame
	// headers before gws parses them (framegate.go).
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	gate := newFrameGate(nc, early, s.frames)
	br := bufio.NewReaderSize(gate, gate.bufioSize(s.cfg.ReadBufferSize))
	if s.cfg.noFrameGate {
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), nc), s.cfg.ReadBufferSize)
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
	rate, burst := s.node.CommandRate()
	st.pings = port.NewTokenBucket(rate, burst, time.Now())
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
	st.gate.end()
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
