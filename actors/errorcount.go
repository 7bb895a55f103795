package actors

import "sync/atomic"

// errorCodes lists every protocol error code, in docs/protocol.md order.
var errorCodes = [...]ErrorCode{
	CodeInvalidJSON, CodeInvalidMessage, CodeUnknownType, CodeInvalidRoom, CodeNotMember,
	CodeUserOffline, CodeForbidden, CodeRateLimited, CodeTooManyRooms, CodeUnavailable,
}

// ErrorCodes returns every protocol error code the node may send.
func ErrorCodes() []ErrorCode { return append([]ErrorCode(nil), errorCodes[:]...) }

// ErrorCounts counts error events by code: how often clients were refused
// a room (forbidden), hit a limit (too_many_rooms, rate_limited) or sent
// garbage (invalid_json, invalid_room, ...). Written by session actors,
// read by /metrics; every counter is atomic.
type ErrorCounts struct {
	n [len(errorCodes)]atomic.Int64
}

// Add counts one error event with code. Unknown codes are not counted.
func (c *ErrorCounts) Add(code ErrorCode) {
	for i, k := range errorCodes {
		if k == code {
			c.n[i].Add(1)
			return
		}
	}
}

// Load returns how many error events with code were sent.
func (c *ErrorCounts) Load(code ErrorCode) int64 {
	for i, k := range errorCodes {
		if k == code {
			return c.n[i].Load()
		}
	}
	return 0
}
