package port

import (
	"sync/atomic"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// ErrorCounts counts error events by code: how often clients were refused
// a room (forbidden), hit a limit (too_many_rooms, rate_limited) or sent
// garbage (invalid_json, invalid_room, ...). Written by session actors,
// read by /metrics; every counter is atomic.
type ErrorCounts struct {
	n [wire.NumErrorCodes]atomic.Int64
}

// Add counts one error event with code. Unknown codes are not counted.
func (c *ErrorCounts) Add(code wire.ErrorCode) {
	if i := code.Index(); i >= 0 {
		c.n[i].Add(1)
	}
}

// Load returns how many error events with code were sent.
func (c *ErrorCounts) Load(code wire.ErrorCode) int64 {
	if i := code.Index(); i >= 0 {
		return c.n[i].Load()
	}
	return 0
}
