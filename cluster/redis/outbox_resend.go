package redis

import (
	"slices"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// sentItem is a confirmed publish or direct message, kept for ResendWindow.
type sentItem struct {
	it outItem
	at time.Time
}

// maxRecent bounds the confirmed publishes kept for a resend.
const maxRecent = 8192

// trimRecent forgets the confirmed publishes older than ResendWindow.
func (o *outbox) trimRecent(now time.Time) {
	cut := 0
	for cut < len(o.recent) && (now.Sub(o.recent[cut].at) > o.r.cfg.ResendWindow || len(o.recent)-cut > maxRecent) {
		cut++
	}
	if cut > 0 {
		n := copy(o.recent, o.recent[cut:])
		clear(o.recent[n:])
		o.recent = o.recent[:n]
	}
}

// resendRecent runs when the writer first sees an outage of this node's
// connections (the transitions marked * in outState's table): the
// publishes confirmed during ResendWindow before may not have reached
// subscribers that Redis closed meanwhile (see msgid.go). They go back
// to the head of the queue, in order, ahead of everything queued since, and
// leave again after the recovery; subscribers that had them drop the copies.
// Their senders were answered already: a direct message is not answered
// twice.
func (o *outbox) resendRecent() {
	o.trimRecent(time.Now())
	if len(o.recent) == 0 {
		return
	}
	again := make([]outItem, len(o.recent))
	for i, s := range o.recent {
		again[i] = s.it
		again[i].resent, again[i].done, again[i].deadline = true, nil, time.Time{}
	}
	clear(o.recent)
	o.recent = o.recent[:0]
	o.r.stats.resent.Add(int64(len(again)))
	o.mu.Lock()
	o.items = slices.Insert(o.items, o.head+o.sending, again...)
	o.mu.Unlock()
}

// untilExpiry returns how long until a queued direct message may be due to
// be given up, and false when none is queued.
func (o *outbox) untilExpiry() (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.expireAt.IsZero() {
		return 0, false
	}
	return time.Until(o.expireAt), true
}

// expireDirects gives up the direct messages that have waited in the
// queue past their deadline (Redis down, or the outbox holding after a
// recovery): each sender is answered unavailable, and the message is not
// sent later, so that the client that was told unavailable may send it
// again without it arriving twice. Messages whose earlier round trip may
// have run (unsure) are kept: they are sent again and deduplicated. It
// runs on the writer goroutine, between round trips.
func (o *outbox) expireDirects(now time.Time) {
	o.mu.Lock()
	if o.expireAt.IsZero() || now.Before(o.expireAt) {
		o.mu.Unlock()
		return
	}
	var late []outItem
	var next time.Time
	w := o.head + o.sending
	for _, it := range o.items[w:] {
		if it.kind == outDirect && it.done != nil && !it.unsure && !it.deadline.IsZero() {
			if !now.Before(it.deadline) {
				late = append(late, it)
				continue
			}
			if next.IsZero() || it.deadline.Before(next) {
				next = it.deadline
			}
		}
		o.items[w] = it
		w++
	}
	clear(o.items[w:])
	o.items = o.items[:w]
	o.expireAt = next
	o.mu.Unlock()
	o.r.stats.expired.Add(int64(len(late)))
	for i := range late {
		late[i].answer(0, port.ErrUnavailable)
	}
}
