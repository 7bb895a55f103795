package actors

import "github.com/switchboard-rt/switchboard/actors/wire"

// The wire contract lives in package wire; these names stay only for
// callers that have not moved to it yet.

// Envelope is wire.Envelope.
//
// Deprecated: use wire.Envelope.
type Envelope = wire.Envelope

// Envelope types.
//
// Deprecated: use wire.EnvBroadcast and wire.EnvRoom.
const (
	EnvBroadcast = wire.EnvBroadcast
	EnvRoom      = wire.EnvRoom
)

// AppendJSONString is wire.AppendJSONString.
//
// Deprecated: use wire.AppendJSONString.
func AppendJSONString(dst []byte, s string) []byte { return wire.AppendJSONString(dst, s) }

// PresenceEvent is wire.PresenceEvent.
//
// Deprecated: use wire.PresenceEvent.
func PresenceEvent(event, user string) *wire.Event { return wire.PresenceEvent(event, user) }

// ChatEvent is wire.ChatEvent.
//
// Deprecated: use wire.ChatEvent.
func ChatEvent(from, room, content string) *wire.Event { return wire.ChatEvent(from, room, content) }

// DecodeEnvelope is wire.DecodeEnvelope.
//
// Deprecated: use wire.DecodeEnvelope.
func DecodeEnvelope(data []byte) (*wire.Envelope, error) { return wire.DecodeEnvelope(data) }
