package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Every client command with an id gets its answer within the join retry,
// whatever Redis does: never reachable, killed, or paused. The join retry
// of these tests is answerRetry; answers get answerSlack more, for a
// loaded machine under the race detector.
const (
	answerRetry = time.Second
	answerSlack = time.Second
)

func withJoinRetry(d time.Duration) nodeOpt {
	return func(_ *redis.Config, a *actors.Config) { a.JoinRetry = d }
}

// command is one client command with an id, and the answers it may get.
type command struct {
	msg  map[string]any
	want []string // "ack", or the error code
}

// everyCommand is one command of each type that takes an id. The join
// comes first, to a room new to the node, so that the commands behind it
// wait for it: the longest way to an answer. A node that knows Redis is
// down takes the join at once, for its local members (the room subscribes
// when Redis is back); one that cannot get the room's channel confirmed
// in time refuses it. joined is a room the client is in already: its
// messages are queued in the outbox and acknowledged, as is chat. The
// direct message goes to a user on another node, whom only Redis can
// reach.
func everyCommand(fresh, joined, target string) []command {
	return []command{
		{map[string]any{"type": "join_room", "room": fresh}, []string{"ack", "unavailable"}},
		{map[string]any{"type": "room_message", "room": fresh, "content": "x"}, []string{"ack", "not_member"}},
		{map[string]any{"type": "direct_message", "target_user": target, "content": "x"}, []string{"unavailable"}},
		{map[string]any{"type": "room_message", "room": joined, "content": "x"}, []string{"ack"}},
		{map[string]any{"type": "chat", "content": "x"}, []string{"ack"}},
		{map[string]any{"type": "leave_room", "room": fresh}, []string{"ack", "not_member"}},
		{map[string]any{"type": "ping"}, []string{"ack"}},
	}
}

// sendAndExpectAnswers sends cmds with ids and checks that each gets one
// of its answers within the join retry (plus slack) of being sent.
func sendAndExpectAnswers(t *testing.T, c *wsclient.Client, tag string, cmds []command) {
	t.Helper()
	want := map[string]command{}
	sent := time.Now()
	for i, cmd := range cmds {
		id := fmt.Sprintf("%s-%d-%s", tag, i, cmd.msg["type"])
		cmd.msg["id"] = id
		want[`"`+id+`"`] = cmd
		if err := c.SendJSON(cmd.msg); err != nil {
			t.Fatal(err)
		}
	}
	deadline := sent.Add(answerRetry + answerSlack)
	var report []string
	for len(want) > 0 {
		ev, err := c.WaitFor(time.Until(deadline), func(e *wsclient.Event) bool {
			_, ours := want[string(e.ID)]
			return ours && (e.Event == "ack" || e.Event == "error")
		})
		if err != nil {
			var missing []string
			for id := range want {
				missing = append(missing, id)
			}
			t.Fatalf("%s: no answer within %v to %v (answered: %v)", tag, answerRetry+answerSlack, missing, report)
		}
		cmd := want[string(ev.ID)]
		delete(want, string(ev.ID))
		got := ev.Event
		if got == "error" {
			got = ev.Code
		}
		report = append(report, fmt.Sprintf("%s: %s in %v", ev.ID, got, ev.At.Sub(sent).Round(time.Millisecond)))
		if !strings.Contains(" "+strings.Join(cmd.want, " ")+" ", " "+got+" ") {
			t.Errorf("%s: %s answered %s, want one of %v", tag, ev.ID, ev.Raw, cmd.want)
		}
	}
	t.Logf("%s: %s", tag, strings.Join(report, "; "))
}

// TestRedisAnswersWhileNeverReachable: a node whose Redis never answers
// (nothing listens on its port) answers every command.
func TestRedisAnswersWhileNeverReachable(t *testing.T) {
	checkGoroutines(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", redistest.FreePort(t))
	n := startNodeNoWait(t, url, "n1", withJoinRetry(answerRetry))
	a := n.dial("alice")
	join(t, a, "lobby")
	sendAndExpectAnswers(t, a, "unreachable", everyCommand("fresh", "lobby", "bob"))
	if got := n.broker.Stats().DirectsExpired; got != 1 {
		t.Errorf("%d direct messages given up in the outbox, want 1", got)
	}
}

// TestRedisAnswersAfterKill: Redis is killed under two nodes. Every
// command gets its answer; the direct message answered unavailable was
// given up, so it never arrives, even once Redis is back.
func TestRedisAnswersAfterKill(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1", withJoinRetry(answerRetry))
	n2 := startNode(t, rs.URL(), "n2", withJoinRetry(answerRetry))
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "lobby")
	waitFor(t, "nodes know each other", 5*time.Second, func() bool {
		return n1.broker.Stats().Peers == 1 && n2.broker.Stats().Peers == 1
	})

	rs.Kill()
	waitFor(t, "n1 notices", 5*time.Second, func() bool { return !n1.node.BrokerState().Connected })
	sendAndExpectAnswers(t, a, "killed", everyCommand("fresh", "lobby", "bob"))

	rs.Restart()
	n1.waitConnected(10 * time.Second)
	n2.waitConnected(10 * time.Second)
	waitFor(t, "a direct message after the restart", 10*time.Second, func() bool {
		_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "after", "id": "after"})
		ev, err := a.WaitFor(5*time.Second, isIDOf("after"))
		return err == nil && ev.Event == "ack"
	})
	ev := expect(t, b, "bob's first direct message", isEvent("direct_message"))
	if ev.Content != "after" {
		t.Fatalf("bob received %s: a direct message answered unavailable was sent after all", ev.Raw)
	}
}

// TestRedisAnswersWhilePaused: Redis holds every command (CLIENT PAUSE)
// longer than the join retry. The direct message's round trip is under
// way and stays there; the session answers it anyway.
func TestRedisAnswersWhilePaused(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1", withJoinRetry(answerRetry))
	n2 := startNode(t, rs.URL(), "n2", withJoinRetry(answerRetry))
	a := n1.dial("alice")
	n2.dial("bob")
	join(t, a, "lobby")

	rs.Pause(answerRetry + answerSlack + time.Second)
	sendAndExpectAnswers(t, a, "paused", everyCommand("fresh", "lobby", "bob"))
	// A command answered means the pause is over.
	if err := rs.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	n1.waitConnected(10 * time.Second)
}

func isIDOf(id string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return string(e.ID) == `"`+id+`"` }
}
