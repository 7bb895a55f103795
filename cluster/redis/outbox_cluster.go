package redis

import (
	"context"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// batchPipes are the transactions of one outbox round trip: one MULTI/EXEC
// on one Redis; on a cluster, where a transaction may only touch one hash
// slot, one per slot the batch touches, sent at the same time. The order
// that matters is kept: a channel's commands, a room's stream and presence
// commands, and the directory's all stay within one slot, in queue order.
type batchPipes struct {
	client  goredis.UniversalClient
	cluster bool
	one     goredis.Pipeliner
	bySlot  map[int]goredis.Pipeliner
}

func newBatchPipes(client goredis.UniversalClient, cluster bool) *batchPipes {
	return &batchPipes{client: client, cluster: cluster}
}

// at returns the transaction that key (or channel) belongs to.
func (b *batchPipes) at(key string) goredis.Pipeliner {
	if !b.cluster {
		if b.one == nil {
			b.one = b.client.TxPipeline()
		}
		return b.one
	}
	slot := keySlot(key)
	p := b.bySlot[slot]
	if p == nil {
		if b.bySlot == nil {
			b.bySlot = make(map[int]goredis.Pipeliner)
		}
		p = b.client.TxPipeline()
		b.bySlot[slot] = p
	}
	return p
}

// exec sends every transaction; each command holds its own reply or error.
func (b *batchPipes) exec(ctx context.Context) {
	if !b.cluster {
		if b.one != nil && b.one.Len() > 0 {
			_, _ = b.one.Exec(ctx)
		}
		return
	}
	if len(b.bySlot) == 1 {
		for _, p := range b.bySlot {
			_, _ = p.Exec(ctx)
		}
		return
	}
	// At most clusterPoolSize at a time: each takes a connection to its
	// slot's primary from the client's pool.
	sem := make(chan struct{}, clusterPoolSize)
	var wg sync.WaitGroup
	for _, p := range b.bySlot {
		if p.Len() == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _ = p.Exec(ctx)
		}()
	}
	wg.Wait()
}

// suspectSlotsIntact is checkSuspects' question on a cluster: does this
// node still listen where the batch's publishes heard by nobody went? It
// asks each of their slots, by the route the publish took (a transaction
// of that slot), whether this node's connection for the slot still hears
// its probe channel there. Asking every probe channel, as on one Redis,
// is not enough here: while a slot moves, a publish may already go to the
// new owner, where nobody has subscribed yet, and a probe to the old one,
// where this node still listens.
func (o *outbox) suspectSlotsIntact(ctx context.Context) bool {
	k := &o.r.keys
	b := newBatchPipes(o.conn(), true)
	seen := map[string]bool{}
	var checks []*goredis.IntCmd
	for i, st := range o.status {
		if st != itemSuspect {
			continue
		}
		probe := k.probeChannel(k.connIndex(o.batch[i].channel))
		if !seen[probe] {
			seen[probe] = true
			checks = append(checks, b.at(probe).SPublish(ctx, probe, "check"))
		}
	}
	b.exec(ctx)
	for _, c := range checks {
		if n, err := c.Result(); err != nil || n < 1 {
			return false
		}
	}
	return true
}
