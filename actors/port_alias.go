package actors

import (
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// The types and helpers of the seam to the transport live in actors/port,
// which does not import protoactor; these names keep them where the core
// and the programs that embed it have always found them.

type (
	// Conn is port.Conn: the outbound side of one client connection.
	Conn = port.Conn
	// HeardConn is port.HeardConn: a Conn that knows when its peer last
	// sent a frame.
	HeardConn    = port.HeardConn
	BudgetedConn = port.BudgetedConn
	// SessionHandle is port.SessionHandle: one session, as Connect names
	// it to the transport.
	SessionHandle = port.SessionHandle
	// SessionOptions is port.SessionOptions: one accepted connection.
	SessionOptions = port.SessionOptions
	// SocketClosed is port.SocketClosed: a session's connection is gone.
	SocketClosed = port.SocketClosed
	// PublishResult is port.PublishResult: what a server-side publish
	// reached.
	PublishResult = port.PublishResult
	// Metrics is port.Metrics: the node's counters.
	Metrics = port.Metrics
	// Histogram is port.Histogram: a lock-free power-of-two histogram.
	Histogram = port.Histogram
	// HistogramSnapshot is port.HistogramSnapshot.
	HistogramSnapshot = port.HistogramSnapshot
	// ErrorCounts is port.ErrorCounts: error events by code.
	ErrorCounts = port.ErrorCounts
	// TokenBucket is port.TokenBucket: events per second with a burst.
	TokenBucket = port.TokenBucket
)

// LatencySampleEvery and HistogramBuckets: see port.
const (
	LatencySampleEvery = port.LatencySampleEvery
	HistogramBuckets   = port.HistogramBuckets
)

// Structured log keys (port.KeyActor, ...).
const (
	KeyActor   = port.KeyActor
	KeySession = port.KeySession
	KeyUser    = port.KeyUser
	KeyRoom    = port.KeyRoom
	KeyNode    = port.KeyNode
	KeyErr     = port.KeyErr
)

// Publish errors (port.ErrInvalidRoom, ...).
var (
	ErrInvalidRoom    = port.ErrInvalidRoom
	ErrInvalidUser    = port.ErrInvalidUser
	ErrInvalidPayload = port.ErrInvalidPayload
)

// NewTokenBucket returns a full bucket (port.NewTokenBucket).
func NewTokenBucket(rate float64, burst int, now time.Time) TokenBucket {
	return port.NewTokenBucket(rate, burst, now)
}

// RandomID returns n random bytes as URL-safe base64 (port.RandomID).
func RandomID(nbytes int) string { return port.RandomID(nbytes) }
