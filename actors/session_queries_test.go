package actors_test

import (
	"strconv"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
)

// A connection has at most MaxQueriesOut history queries waiting for the
// broker: the next is refused rate_limited at once (each costs a read of
// up to a reply's budget, and the broker serves few clients' reads at a
// time), and once an answer comes a query is taken again. Every query is
// answered. The reads are marked as a client's, bounded by the reply's
// budget.
func TestQueriesOutPerConnectionAreBounded(t *testing.T) {
	b := newScriptBroker()
	n := newNode(t, func(c *actors.Config) { c.Broker = b })
	c := connect(t, n, "alice")
	for i := 1; i <= actors.MaxQueriesOut+1; i++ {
		c.send(`{"type":"history","room":"r","id":` + strconv.Itoa(i) + `}`)
	}
	var reads []scriptRead
	for range actors.MaxQueriesOut {
		rd := b.nextRead(t)
		if !rd.q.Client || rd.q.MaxBytes <= 0 || rd.q.MaxBytes > actors.MaxReplyBytes {
			t.Fatalf("a history query's read %+v: want a client's, bounded by the reply's budget", rd.q)
		}
		reads = append(reads, rd)
	}
	over := strconv.Itoa(actors.MaxQueriesOut + 1)
	c.conn.waitEvent(t, "the refusal of the query over the bound", func(e event) bool {
		return e.Event == "error" && string(e.ID) == over && e.Code == "rate_limited"
	})
	select {
	case rd := <-b.reads:
		t.Fatalf("a query over the bound was read: %+v", rd.q)
	default:
	}
	reads[0].done(actors.StreamRead{}, nil)
	c.conn.waitEvent(t, "the first answer", func(e event) bool { return e.Event == "history" && string(e.ID) == "1" })
	c.send(`{"type":"history","room":"r","id":99}`)
	reads = append(reads[1:], b.nextRead(t))
	for _, rd := range reads {
		rd.done(actors.StreamRead{}, nil)
	}
	for _, id := range []string{"2", "3", "4", "99"} {
		c.conn.waitEvent(t, "the answer of "+id, func(e event) bool { return e.Event == "history" && string(e.ID) == id })
	}
}
