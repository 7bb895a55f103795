package actors

import (
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// Supervision, by actor kind:
//
//   - Session: stopSessionOnPanic. A restarted session would keep its PID (so
//     rooms would still count it) but lose its state (rooms, user), so a panic
//     stops it instead. The session's Stopped tells the hub (sessionEnded)
//     and its rooms (roomLeave): the same cleanup as a normal close. The
//     client gets close 1011.
//   - Room: resumeRoomOnPanic, the node's room guardian (rooms are not the
//     hub's children). The room's member set cannot be rebuilt from inside,
//     so the failing message is dropped and the room carries on with its
//     members. A room that panics more than roomMaxPanics times within
//     roomPanicWindow is stopped; its Stopped tells its members (roomGone),
//     which re-join a fresh room (the sessions are the source of truth for
//     membership), and the hub (roomEnded).
//   - Hub: resumeHubOnPanic. The directory of live sessions and rooms
//     survives a panic.

const (
	roomMaxPanics   = 10
	roomPanicWindow = 10 * time.Second
)

// stopSessionOnPanic is the guardian strategy of session actors.
func stopSessionOnPanic(m *Metrics) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
		m.SessionPanic.Add(1)
		return actor.StopDirective
	})
}

// resumeRoomOnPanic is the guardian strategy of rooms.
type resumeRoomOnPanic struct{ metrics *Metrics }

func (s resumeRoomOnPanic) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, _ any, _ any) {
	s.metrics.RoomPanic.Add(1)
	rs.Fail()
	if rs.NumberOfFailures(roomPanicWindow) > roomMaxPanics {
		rs.Reset()
		sup.StopChildren(child)
		return
	}
	s.metrics.Restarts.Add(1)
	sup.ResumeChildren(child)
}

// resumeHubOnPanic is the guardian strategy of the hub.
func resumeHubOnPanic(m *Metrics) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
		m.HubPanic.Add(1)
		m.Restarts.Add(1)
		return actor.ResumeDirective
	})
}

// Crash makes the receiving actor panic. Chaos tests and operators (behind a
// flag that is off by default) use it to exercise supervision. The
// cluster's actors handle it too (port.Crash).
type Crash = port.Crash

// crashError is the panic value raised for a Crash.
type crashError struct{ reason string }

func (c crashError) Error() string { return "injected crash: " + c.reason }

// logPanics logs a panic with its stack (protoactor logs only the reason) and
// re-raises it so supervision still applies. Use as: defer logPanics(log, kind).
func logPanics(log *slog.Logger, kind string) {
	if r := recover(); r != nil {
		repanic(log, kind, r)
	}
}

// repanic logs a recovered panic r (unless a test injected it) and panics
// again, so that supervision sees it.
func repanic(log *slog.Logger, kind string, r any) {
	if _, injected := r.(crashError); !injected {
		log.Error("actor panic", KeyActor, kind, "panic", r, "stack", string(debug.Stack()))
	}
	panic(r)
}
