package actors

import "github.com/asynkron/protoactor-go/actor"

// What a stopped actor leaves behind must not keep it, or anything it held,
// reachable. Three protoactor behaviours call for care:
//
//   - An *actor.PID caches the process it was sent to (the mailbox, the
//     context, the actor itself), and the PID an actor was spawned with is
//     its ctx.Self(): the pointer that ends up wherever the actor is known
//     (a watcher entry, the parent's children set, the hub's directory, a
//     broker's subscriber list, a timer in flight). The cache is emptied
//     only when a message is sent through that PID after the actor died.
//   - PIDSet.Remove shortens its slice without clearing the slot it
//     vacates, so a set that has lost members keeps PIDs of actors that
//     have gone (a children set keeps as many as it once held).
//   - A watcher that stops stays in the watched actor's set: a room that
//     lives for days would collect one entry for every session that ever
//     closed while in it.
//
// Together they kept stopped rooms and sessions, their connections
// included, reachable: after 2,000 connections had each joined 100 rooms
// and closed, 105,496 of the 202,100 stopped actors were still reachable
// and the live heap stayed at 303 MB (TestRoomChurnReleasesMemory at that
// scale; 6 MB before the connections). So:
//
//   - every session and room calls releaseSelf when it stops, after which
//     a PID left anywhere costs about 100 bytes, not the actor;
//   - sessions and rooms do not watch each other (they tell each other
//     when they end: roomLeave, roomGone), nor does the hub watch either;
//   - an actor of the actor API (a broker's bus, with a child per channel)
//     clears the slot its children set vacates when a child stops
//     (clearVacatedChildSlot), and the hub rebuilds its maps once they
//     have shrunk well below their peak (compacted).
//
// With these, every stopped actor is collected and the live heap after the
// same run is 71 MB: what stays is sized by the peak, not by the churn
// (protoactor's registry shards, the hub's mailbox, the
// in-process broker's channel map, the runtime's goroutine records).

// processGone is what a stopped actor sends to its own PID. The registry
// no longer knows the PID, so protoactor drops the cached process on the
// way and hands the message to the dead-letter process, which ignores it.
type processGone struct{}

func (processGone) IgnoreDeadLetterLogging() {}

// releaseSelf empties the process cache of a stopped actor's own PID. Call
// it from the actor's *actor.Stopped case: protoactor has removed the actor
// from its registry by then, and empties a PID's cache only when it finds
// the cached process dead.
func releaseSelf(ctx actor.Context) {
	ctx.Send(ctx.Self(), processGone{})
}

// clearVacatedChildSlot nils the slot of ctx's children set that the last
// removal vacated. protoactor removes a child from the set (moving the last
// one into its place and shortening the slice) just before the parent
// receives the child's *actor.Terminated, so, called first thing on every
// Terminated, it keeps every slot past the slice's end empty: the next
// child is appended there.
func clearVacatedChildSlot(ctx actor.Context) {
	if c := ctx.Children(); len(c) < cap(c) {
		c[:len(c)+1][len(c)] = nil
	}
}

// compactMinPeak is the smallest peak at which compacted rebuilds a map:
// below it the memory kept is not worth a copy.
const compactMinPeak = 1024

// compacted returns m, or a copy of it sized for what it holds now once it
// holds less than a quarter of its peak (the largest size it has had since
// it was last rebuilt), which *peak tracks. Go maps never give back the
// memory of their largest size; the copy costs one entry per three
// deleted since the last rebuild.
func compacted[K comparable, V any](m map[K]V, peak *int) map[K]V {
	n := len(m)
	if n > *peak {
		*peak = n
	}
	if *peak < compactMinPeak || n >= *peak/4 {
		return m
	}
	fresh := make(map[K]V, n)
	for k, v := range m {
		fresh[k] = v
	}
	*peak = n
	return fresh
}
