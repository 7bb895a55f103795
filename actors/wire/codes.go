package wire

// ErrorCode is a protocol error code sent in {"event":"error","code":...}.
// The values match docs/protocol.md, section 3.
type ErrorCode string

// Protocol error codes.
const (
	CodeInvalidJSON    ErrorCode = "invalid_json"
	CodeInvalidMessage ErrorCode = "invalid_message"
	CodeUnknownType    ErrorCode = "unknown_type"
	CodeInvalidRoom    ErrorCode = "invalid_room"
	CodeNotMember      ErrorCode = "not_member"
	CodeUserOffline    ErrorCode = "user_offline"
	CodeForbidden      ErrorCode = "forbidden"
	CodeRateLimited    ErrorCode = "rate_limited"
	CodeTooManyRooms   ErrorCode = "too_many_rooms"
	CodeUnavailable    ErrorCode = "unavailable"
	// CodeHistoryDisabled answers a history query on a node without
	// history (--history-size 0).
	CodeHistoryDisabled ErrorCode = "history_disabled"
)

// errorCodes lists every protocol error code, in docs/protocol.md order.
var errorCodes = [...]ErrorCode{
	CodeInvalidJSON, CodeInvalidMessage, CodeUnknownType, CodeInvalidRoom, CodeNotMember,
	CodeUserOffline, CodeForbidden, CodeRateLimited, CodeTooManyRooms, CodeUnavailable,
	CodeHistoryDisabled,
}

// NumErrorCodes is how many error codes the protocol has.
const NumErrorCodes = len(errorCodes)

// ErrorCodes returns every protocol error code, in docs/protocol.md order.
func ErrorCodes() []ErrorCode { return append([]ErrorCode(nil), errorCodes[:]...) }

// Index returns c's place in ErrorCodes, or -1 for a code the protocol
// does not have: counters indexed by code need no map.
func (c ErrorCode) Index() int {
	for i, k := range errorCodes {
		if k == c {
			return i
		}
	}
	return -1
}

// CloseCode is a WebSocket close code the node sends (docs/protocol.md, section 4).
type CloseCode uint16

// Close codes.
const (
	CloseNormal        CloseCode = 1000
	CloseGoingAway     CloseCode = 1001
	ClosePolicy        CloseCode = 1008
	CloseTooBig        CloseCode = 1009
	CloseInternal      CloseCode = 1011
	CloseTryAgainLater CloseCode = 1013
	CloseTokenExpired  CloseCode = 4001
)

// SilentReason is the close reason (code 1000) of a peer dropped by the
// heartbeat: nothing came from it within PongTimeout of a ping.
const SilentReason = "no frame within ping interval + pong timeout"

// Limits of the wire format.
const (
	MaxRoomNameLen = 128
	MaxIDLen       = 64
	// MaxUserIDLen bounds a user id (the transport's client_id or token
	// sub); a direct message to a longer target can reach nobody.
	MaxUserIDLen = 128
	// MaxHistoryLimit bounds a history query's limit and the node's
	// --history-size.
	MaxHistoryLimit = 10000
)
