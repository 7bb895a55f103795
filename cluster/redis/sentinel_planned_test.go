package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// withProductionProbes gives the broker its default liveness probe and
// flush wait (ProbeIdle 5 s, ProbeTimeout 2 s, FlushWait 3 s) instead of
// the tests' short ones: a planned failover is caught by following the
// sentinels, not by a probe that fires within a few hundred milliseconds.
func withProductionProbes() nodeOpt {
	return withBroker(func(c *redis.Config) {
		c.ProbeIdle, c.ProbeTimeout, c.FlushWait = 0, 0, 0
	})
}

// TestRedisSentinelPlannedFailover moves the primary to the replica with
// SENTINEL FAILOVER under traffic. The old primary stays up, and a master,
// until the sentinels demote it (about 10 s later); the nodes' writes
// follow the switch at once. A pub/sub connection left on the old primary
// meanwhile hears none of them: its rooms must be resubscribed on the new
// primary within a couple of seconds, and catch up what they missed, so
// that no listener's room stream has a gap (the new primary starts a new
// epoch; a listener must see it from offset 1).
func TestRedisSentinelPlannedFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	f := newFaultScenario(t, s.Servers[0], withSentinel(s), withProductionProbes())
	f.waitListenersJoined()
	f.start(6000, 4*time.Millisecond)
	f.waitSent(60)
	var promoted *redistest.Server
	f.inject(func() { promoted = s.Failover() })
	switched := time.Now()
	ch := roomChannel(trafficRoom)
	waitFor(t, "both nodes subscribed on the new primary", 20*time.Second, func() bool {
		return f.allConnected() && promoted.NumSub(ch)[ch] == 2
	})
	moved := time.Since(switched)
	f.waitSent(f.senders[0].count() + 100)
	for _, s := range f.senders {
		close(s.stop)
		<-s.done
	}
	// Every listener hears the last message of each sender: the stream
	// went on past the failover.
	for li, l := range f.listeners {
		for _, s := range f.senders {
			last := ""
			for i := s.count() - 1; i >= 0; i -= 1 {
				if i%2 == 0 {
					if a, _ := s.rec.outcome(seq(s.name, i)); a {
						last = seq(s.name, i)
						break
					}
				}
			}
			if last == "" {
				continue
			}
			waitFor(t, fmt.Sprintf("listener%d: %s's last room message", li+1, s.name), 15*time.Second, func() bool { return l.count(s.name, last) > 0 })
		}
	}
	for li, l := range f.listeners {
		l.mu.Lock()
		if len(l.breaks) > 0 {
			t.Errorf("listener%d: the room's stream has gaps or repeats: %v", li+1, l.breaks)
		}
		l.mu.Unlock()
	}
	t.Logf("SENTINEL FAILOVER to %s: both nodes subscribed on it %v after the sentinels named it", promoted, moved.Round(time.Millisecond))
}
