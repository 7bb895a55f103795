package redis

import (
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// Supervision of the Redis broker's actors:
//
//   - bus: resumeBusOnPanic. The bus owns the registry of subscriptions (the
//     source of truth for every re-subscription); a restart would lose it, so
//     a panic drops the failing message and the bus carries on.
//   - pub/sub connections and channel subscriptions (the bus's children):
//     restartSubscriptionWithBackoff. A connection fails by design when its
//     Redis connection breaks or a probe is not answered (it panics with a
//     linkFault); a subscription fails only through a bug. Either is
//     restarted after a backoff that doubles with each failure in a row, and
//     the new incarnation rebuilds its state from the bus: a connection
//     re-subscribes every channel the registry holds now, a subscription
//     asks for its current targets. The mailbox is kept across the restart,
//     so nothing already read from Redis is lost.

// backoffResetAfter is how long a child must run without failing for its
// next failure to count as the first again.
const backoffResetAfter = 30 * time.Second

// restartSubscriptionWithBackoff is the bus's strategy for its children
// (port.Spec.RestartChild): it returns how long the failed child waits
// before its restart. It runs on the bus's goroutine; the restart itself
// is sent from a timer.
func restartSubscriptionWithBackoff(r *Broker) func(port.Ref, port.RestartStats, any) time.Duration {
	return func(child port.Ref, rs port.RestartStats, _ any) time.Duration {
		if rs.NumberOfFailures(backoffResetAfter) == 0 {
			rs.Reset()
		}
		rs.Fail()
		if strings.HasPrefix(strings.TrimPrefix(child.ID(), r.busName+"/"), "conn-") {
			r.stats.reconnects.Add(1)
		} else {
			r.stats.subRestarts.Add(1)
		}
		return backoff(rs.FailureCount(), r.cfg.ReconnectMin, r.cfg.ReconnectMax)
	}
}

// backoff is min x 2^(failures-1), capped at max, with +-20% jitter.
func backoff(failures int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	jitter := time.Duration(float64(d) * 0.2 * (2*rand.Float64() - 1))
	return d + jitter
}

// resumeBusOnPanic is the bus's guardian strategy (port.Spec.ResumeOnPanic):
// the bus resumes, the failing message dropped.
func resumeBusOnPanic(st *counters) func(reason any) {
	return func(any) { st.busPanics.Add(1) }
}

// linkFault is the panic value of a pub/sub connection actor whose Redis
// connection failed: an expected fault, restarted without a stack trace.
type linkFault struct{ err error }

func (f linkFault) Error() string { return "redis pub/sub connection failed: " + f.err.Error() }

// logPanics logs an unexpected panic with its stack and re-raises it so that
// supervision applies. Use as: defer logPanics(log, kind).
func logPanics(log *slog.Logger, kind string) {
	if r := recover(); r != nil {
		_, fault := r.(linkFault)
		_, injected := r.(crashError)
		if !fault && !injected {
			log.Error("actor panic", keyActor, kind, "panic", r, "stack", string(debug.Stack()))
		}
		panic(r)
	}
}
