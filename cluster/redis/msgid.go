package redis

// Message ids make a resend harmless. Redis discards what it had not yet
// written to a subscriber connection it closes (CLIENT KILL, a crash), even
// though PUBLISH already counted that subscriber: the publisher cannot tell
// those messages from delivered ones. So when a node notices such a fault,
// its outbox sends again what it published just before (see
// Config.ResendWindow), and each envelope carries a "msg_id" (PROTOCOL.md
// section 5 allows it) with which a receiving subscription drops the copies
// it already had.
//
// The id is a wire.MsgID, ORIGIN:SEQ: ORIGIN is the node id and a random
// incarnation (keyspace.origin: a restarted node starts a new sequence),
// SEQ counts the node's publishes in the order they are queued. The outbox
// numbers each envelope as it queues it, then encodes it, once
// (outbox.push). One origin's envelopes on one channel reach a subscriber
// in SEQ order, and a fault cuts that stream at some point: what came
// before it arrived, what came after did not. A subscription therefore
// keeps, per origin, the highest SEQ seen, and drops anything at or below
// it (subscription.deliver). Envelopes from anyone else (tutorial nodes,
// backends) have no id, or one of another shape, and are delivered as they
// are.
