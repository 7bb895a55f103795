package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
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
	// ReadBufferSize is the read buffer a connection borrows while it reads
	// a burst of bytes. Zero: 1024. On a socket read through its RawConn
	// (Unix), a connection holds one only while bytes wait in it, from a
	// fixed set of at most 256 KiB per server (at least one buffer), and
	// reads into a 128-byte buffer of its own otherwise (or when every
	// buffer is lent); elsewhere each connection holds one for its whole
	// life. Client frames are small commands (rate limited), and a frame
	// larger than the buffer is read straight into its own memory. Else
	// MinReadBuffer to MaxReadBuffer (256 B to 1 MiB).
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
