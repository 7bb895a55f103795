// Package port holds the seams between Switchboard's core and its edges:
// the types and interfaces that the transport (WebSocket, HTTP) and the
// cluster (brokers) packages use to talk to the actor system, without
// importing protoactor. The actors package implements them; a program
// wires the pieces together (cmd/switchboard, docs/embedding.md).
package port
