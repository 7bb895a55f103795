package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A join overtakes what waits in the hub's mailbox: queued behind a
// directory query (and, in a mass exit, behind hundreds of thousands of
// rooms going idle), it is handled first, so the query already sees its
// room.
func TestJoinOvertakesTheHubsBacklog(t *testing.T) {
	n := startQuietNode(t, Config{Broker: newBenchBroker(), NodeID: "n1", PingInterval: time.Hour})
	mb := *n.hubMailbox.Load()
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	for i := 0; i < 1000; i++ {
		n.root.Send(n.hub, &roomIdle{name: "gone"})
	}
	answer := n.root.RequestFuture(n.hub, &DirectoryQuery{}, 5*time.Second)
	sess := n.root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	n.root.Send(n.hub, &joinRoom{room: "urgent", session: sess, user: "u"})
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	res, err := answer.Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.(*Directory).Rooms["urgent"]; !ok {
		t.Fatal("the join waited behind the hub's backlog")
	}
}
