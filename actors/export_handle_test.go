package actors

import "github.com/asynkron/protoactor-go/actor"

// HandlePID is the actor behind a session handle, for tests that stop or
// watch it directly.
func HandlePID(h SessionHandle) *actor.PID { return pidOf(h) }
