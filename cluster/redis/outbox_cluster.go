package redis

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// batchPipes are the transactions of one outbox round trip: one MULTI/EXEC
// on one Redis; on a cluster, where a transaction may only touch one hash
// slot, one per slot the batch touches. The order that matters is kept: a
// channel's commands, a room's stream and presence commands, and the
// directory's all stay within one slot, in queue order.
//
// On a cluster the transactions of the slots one primary owns go to it in
// one pipelined round trip, MULTI ... EXEC per slot back to back on one
// connection, and the primaries are sent to at the same time. A batch of
// the outbox spans up to one slot per partition (128 by default): sent as
// one round trip per slot, at most clusterPoolSize at once, 10,000 rooms
// at 20 k messages/s filled the outbox and 12-17 % of the publishes were
// refused (docs/benchmarks.md), where one Redis takes the batch in one.
//
// go-redis's cluster client refuses a transaction over several slots and
// sends each of its transactions in its own round trip, so the back-to-back
// transactions are written as plain commands on the primary's own client
// (MasterForKey) and their replies handed to the commands the outbox
// queued (settle). A transaction that did not run because its slot moved
// or is moving (MOVED, ASK, TRYAGAIN) is sent again by go-redis's cluster
// transaction, which follows the redirect; nothing that may have run is
// sent twice.
type batchPipes struct {
	client  goredis.UniversalClient
	cluster bool
	one     goredis.Pipeliner
	bySlot  map[int]*slotTx
	slots   []*slotTx // in the order the batch first touched them
}

// slotTx is one slot's transaction in a batch. pipe (a cluster
// transaction of go-redis, executed only when a redirect must be
// followed) holds the commands the outbox reads; multi, queued and exec
// are their copies on the wire of the slot's primary.
type slotTx struct {
	key    string // a key of the slot: where the transaction goes
	pipe   goredis.Pipeliner
	multi  *goredis.Cmd
	queued []*goredis.Cmd // queued[i]: pipe.Cmds()[i]'s +QUEUED (or an error)
	exec   *goredis.Cmd
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
	s := b.bySlot[slot]
	if s == nil {
		if b.bySlot == nil {
			b.bySlot = make(map[int]*slotTx)
		}
		s = &slotTx{key: key, pipe: b.client.TxPipeline()}
		b.bySlot[slot] = s
		b.slots = append(b.slots, s)
	}
	return s.pipe
}

// exec sends every transaction; each command holds its own reply or error.
func (b *batchPipes) exec(ctx context.Context) {
	if !b.cluster {
		if b.one != nil && b.one.Len() > 0 {
			_, _ = b.one.Exec(ctx)
		}
		return
	}
	cc, _ := b.client.(*goredis.ClusterClient)
	var byNode map[*goredis.Client][]*slotTx
	var nodes []*goredis.Client
	var follow []*slotTx // sent by go-redis's cluster transactions
	for _, s := range b.slots {
		if s.pipe.Len() == 0 {
			continue
		}
		if cc == nil || !mirrorable(s.pipe.Cmds()) {
			follow = append(follow, s)
			continue
		}
		node, err := cc.MasterForKey(ctx, s.key)
		if err != nil {
			follow = append(follow, s) // the cluster client reports it per command
			continue
		}
		if byNode == nil {
			byNode = make(map[*goredis.Client][]*slotTx)
		}
		if byNode[node] == nil {
			nodes = append(nodes, node)
		}
		byNode[node] = append(byNode[node], s)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, node := range nodes {
		run := func() {
			moved := execOnNode(ctx, node, byNode[node])
			mu.Lock()
			follow = append(follow, moved...)
			mu.Unlock()
		}
		if i == len(nodes)-1 {
			run() // the last one on this goroutine
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	execEach(ctx, follow)
}

// execOnNode sends txs, transactions of slots node owns, in one pipelined
// round trip on one of node's connections, and returns those that did not
// run because their slot is elsewhere now (or moving).
func execOnNode(ctx context.Context, node *goredis.Client, txs []*slotTx) (moved []*slotTx) {
	pipe := node.Pipeline()
	for _, s := range txs {
		cmds := s.pipe.Cmds()
		s.multi = pipe.Do(ctx, "multi")
		s.queued = make([]*goredis.Cmd, len(cmds))
		for i, c := range cmds {
			s.queued[i] = pipe.Do(ctx, c.Args()...)
		}
		s.exec = pipe.Do(ctx, "exec")
	}
	_, _ = pipe.Exec(ctx)
	for _, s := range txs {
		if s.settle() {
			moved = append(moved, s)
		}
	}
	return moved
}

// settle hands the replies of s's transaction to the commands the outbox
// queued, as go-redis's cluster transaction would have. It returns true,
// setting nothing, when the transaction did not run because of a redirect
// (the slot moved, or is moving) that go-redis must follow.
func (s *slotTx) settle() bool {
	cmds := s.pipe.Cmds()
	if err := s.multi.Err(); err != nil {
		setErrs(cmds, err) // LOADING, or the connection failed
		return false
	}
	vals, err := s.exec.Slice()
	if err == nil && len(vals) != len(cmds) {
		err = errBadReply
	}
	if err != nil {
		var reply goredis.Error
		if !errors.As(err, &reply) {
			setErrs(cmds, err) // the connection failed: fate unknown
			return false
		}
		if redirected(err) {
			return true // the slot moved between the queueing and EXEC
		}
		if goredis.HasErrorPrefix(err, "EXECABORT") {
			// A command was refused while queued. A redirect did it if
			// nothing else was refused; otherwise the refused command
			// keeps its own error and the others get EXECABORT.
			var refused, moved bool
			for i, q := range s.queued {
				switch qerr := q.Err(); {
				case qerr == nil:
				case redirected(qerr):
					moved = true
				default:
					refused = true
					cmds[i].SetErr(qerr)
				}
			}
			if moved && !refused {
				return true
			}
		}
		for _, c := range cmds {
			if c.Err() == nil {
				c.SetErr(err)
			}
		}
		return false
	}
	for i, v := range vals {
		setReply(cmds[i], v)
	}
	return false
}

// redirected reports whether err says the command was not run because its
// slot is served elsewhere now, or is moving: what go-redis follows.
func redirected(err error) bool {
	return goredis.HasErrorPrefix(err, "MOVED") || goredis.HasErrorPrefix(err, "ASK") || goredis.HasErrorPrefix(err, "TRYAGAIN")
}

// mirrorable reports whether settle can hand every reply of cmds to its
// command: the kinds of command the outbox queues. A transaction with
// another kind is sent by go-redis's cluster transaction.
func mirrorable(cmds []goredis.Cmder) bool {
	for _, c := range cmds {
		switch c.(type) {
		case *goredis.Cmd, *goredis.IntCmd, *goredis.StatusCmd:
		default:
			return false
		}
	}
	return true
}

// setReply gives c its reply v, an element of EXEC's reply as go-redis
// reads an untyped reply: what c would have read itself.
func setReply(c goredis.Cmder, v any) {
	if err, ok := v.(error); ok {
		c.SetErr(err)
		return
	}
	switch c := c.(type) {
	case *goredis.Cmd:
		if v == nil {
			c.SetErr(goredis.Nil)
			return
		}
		c.SetVal(v)
	case *goredis.IntCmd:
		if n, ok := v.(int64); ok {
			c.SetVal(n)
			return
		}
		c.SetErr(errBadReply)
	case *goredis.StatusCmd:
		if s, ok := v.(string); ok {
			c.SetVal(s)
			return
		}
		c.SetErr(errBadReply)
	}
}

func setErrs(cmds []goredis.Cmder, err error) {
	for _, c := range cmds {
		c.SetErr(err)
	}
}

// execEach sends txs as go-redis's cluster transactions, each in its own
// round trip, following MOVED and ASK; at most clusterPoolSize at a time:
// each takes a connection to its slot's primary from the client's pool.
func execEach(ctx context.Context, txs []*slotTx) {
	if len(txs) == 1 {
		_, _ = txs[0].pipe.Exec(ctx)
		return
	}
	sem := make(chan struct{}, clusterPoolSize)
	var wg sync.WaitGroup
	for _, s := range txs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _ = s.pipe.Exec(ctx)
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
