// Package wire is Switchboard's wire contract, docs/protocol.md in code:
// the client commands a node reads from a WebSocket, the server events it
// writes, and the envelopes nodes exchange over the broker. Every frame and
// envelope is a typed value with one encoder and one decoder, here; no
// other package builds, edits or parses their bytes, or relies on the order
// of their members.
//
//   - Client -> node: DecodeCommand turns one text frame into a Command
//     (or a *BadFrame with its ErrorCode). It never fails and never aliases
//     its input.
//   - Node -> client: an Event is encoded and framed once (NewEvent,
//     ChatEvent, ...); the same bytes go to every recipient.
//   - Node -> node: Envelope.Encode and DecodeEnvelope; EncodedFrom and
//     Envelope.From answer "is this envelope my own?", and a Template lets
//     a broker script fill in what only the broker knows without writing
//     JSON structure of its own.
//
// The decoders face untrusted bytes and are fuzzed, against encoding/json
// where it is the reference (make fuzz). Members are matched by their exact
// names, and of duplicate members the last wins, so that every node and
// proxy reading the same bytes agrees on what they say.
//
// The package depends on nothing but the standard library; it knows
// nothing of actors, sockets or Redis.
package wire
