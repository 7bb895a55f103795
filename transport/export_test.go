package transport

import "time"

// WithoutFrameGate hands client bytes to gws unchecked, so that a test can
// reach a panic in a read loop (the gate refuses every frame known to cause
// one).
func WithoutFrameGate(c *Config) { c.noFrameGate = true }

// SetFrameBudgetWait shortens how long a frame waits for the budget.
func SetFrameBudgetWait(s *Server, d time.Duration) { s.frames.wait = d }

// ReadBuffersLent is the number of read buffers the server's connections
// hold now.
func ReadBuffersLent(s *Server) int64 { return s.frames.reads.out.Load() }
