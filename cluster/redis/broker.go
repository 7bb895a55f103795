package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Broker is the port.Broker for a cluster of nodes sharing one Redis.
// Channels PREFIX:broadcast and PREFIX:room:ROOM carry the tutorial's
// envelopes, and direct messages go to PREFIX:node:ID of the nodes that the
// presence directory says hold the user. The package doc lists its parts
// and their owners.
//
// Every method of the port.Broker interface may be called from any
// goroutine and returns without waiting on the network.
type Broker struct {
	cfg  Config
	opts *goredis.Options // parsed URL; each connection owner clones it
	log  *slog.Logger

	host port.BrokerHost
	keys keyspace
	bus  port.Ref
	// busName is the bus's actor id, set before it is spawned: its
	// children may fail (Redis unreachable) before Start has stored bus,
	// and their supervisor tells connections from subscriptions by it.
	busName string
	out     *outbox
	pres    *presence
	// reader runs the stream reads (stream.go), at most maxReads at a
	// time: reads holds a token per read in flight, and clientReads one
	// more per read a client asked for (at most maxClientReads).
	reader      goredis.UniversalClient
	reads       chan struct{}
	clientReads chan struct{}
	clientWaits atomic.Int64  // clients' reads waiting for a turn (readAsync)
	pinned      sentinelReads // behind Sentinel, the reads follow the links (link_sentinel.go)

	stats counters
	// inflight counts the bytes read from Redis and not yet delivered by a
	// subscription actor: added by the read loops, released by the
	// subscription actors (or the connection actor, for a message it cannot
	// route). It bounds the inbound hand-off (Config.InboundBytes).
	inflight atomic.Int64

	health health
	outage outageLog // reports the pub/sub connections' outages (outage.go)
	// carry[i] holds the deliveries pub/sub connection actor i had read but
	// not routed when it restarted, for its next incarnation. Only that
	// actor touches carry[i]; its incarnations follow one another.
	carry [][]*delivery

	ctx     context.Context // cancelled by Close: ends every goroutine
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine the broker starts
	started atomic.Bool    // Start was called
	running atomic.Bool    // Start completed: the parts below host exist
	closed  atomic.Bool
	layout  layout // on a cluster: whether this node's partitions match the others' (layout.go)
}

var _ port.Broker = (*Broker)(nil)

// New checks cfg and returns a broker that connects when the node
// starts it.
func New(cfg Config) (*Broker, error) {
	opts, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &Broker{cfg: cfg, opts: opts, log: cfg.Logger.With("broker", "redis")}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.health.init(cfg.PubSubConnections)
	r.carry = make([][]*delivery, cfg.PubSubConnections)
	return r, nil
}

// Config returns the normalised configuration.
func (r *Broker) Config() Config { return r.cfg }

// newClient returns a fresh go-redis client for one owner (a connection
// actor's incarnation, the outbox writer, the heartbeat). A fresh client per
// reconnect means no state of a failed connection (pool circuit breaker,
// remembered subscriptions) outlives it.
func (r *Broker) newClient(role string) goredis.UniversalClient {
	o := r.clientOptions(role)
	if len(r.cfg.ClusterAddrs) > 0 {
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: r.cfg.ClusterAddrs, ClientName: o.ClientName, Protocol: o.Protocol, Username: o.Username, Password: o.Password,
			// MOVED and ASK are followed (the command did not run);
			// nothing that may have run is sent twice.
			MaxRetries: -1, DialerRetries: o.DialerRetries, DialTimeout: o.DialTimeout,
			ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: clusterPoolSize,
			TLSConfig: o.TLSConfig, DisableIdentity: true, MaintNotificationsConfig: o.MaintNotificationsConfig,
			// go-redis learns of a new primary from MOVED, or from this
			// reload: a SIGKILLed primary answers nothing, and with the
			// default (60 s) the reader kept dialling it long after its
			// replica took over (/work/notes/redis-cluster-findings.md).
			ClusterStateReloadInterval: time.Second,
		})
	}
	if r.cfg.SentinelMaster == "" {
		return goredis.NewClient(o)
	}
	return goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: r.cfg.SentinelMaster, SentinelAddrs: r.cfg.Sentinels, SentinelPassword: r.cfg.SentinelPassword,
		ClientName: o.ClientName, Protocol: o.Protocol, Username: o.Username, Password: o.Password, DB: o.DB,
		MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize,
		TLSConfig: o.TLSConfig, DisableIdentity: true,
	})
}

// clientOptions is a private copy of the parsed options for one client.
func (r *Broker) clientOptions(role string) *goredis.Options {
	o := *r.opts
	o.ClientName = "switchboard:" + r.host.NodeID + ":" + role
	return &o
}

// goTracked runs f on a goroutine that Close waits for.
func (r *Broker) goTracked(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// Start implements port.Broker: it spawns the bus (and through it the
// pub/sub connections) in the node's actor system and starts the outbox
// writer and the presence heartbeat. It does not wait for Redis: a node
// whose Redis is unreachable starts, serves its local clients, and reports
// not ready until the connections are up.
func (r *Broker) Start(host port.BrokerHost) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("cluster: redis: Start called twice")
	}
	if r.closed.Load() {
		return errors.New("cluster: redis: closed")
	}
	parts := 0
	if len(r.cfg.ClusterAddrs) > 0 {
		parts = r.cfg.Partitions
		// On a cluster the names carry hash tags ({...}): a brace in the
		// prefix or the node id would move a stream's keys, or a probe,
		// to another slot than its partition's, and every append or probe
		// would fail.
		for what, v := range map[string]string{"channel prefix": host.Prefix, "node id": host.NodeID} {
			if strings.ContainsAny(v, "{}") {
				return fmt.Errorf("cluster: redis: on a Redis Cluster the %s may not contain { or }: %q", what, v)
			}
		}
	}
	r.host = host
	r.log = r.log.With(keyNode, host.NodeID)
	r.keys = newKeyspace(host.Prefix, host.NodeID, parts)
	r.out = newOutbox(r)
	r.pres = newPresence(r)
	r.reader = r.newClient("history")
	r.reads = make(chan struct{}, maxReads)
	r.clientReads = make(chan struct{}, maxClientReads)
	r.busName = "redis-" + host.NodeID
	bus, err := host.Actors.Spawn(port.Spec{
		New:           func() port.Behavior { return newBus(r) },
		Name:          r.busName,
		Priority:      true, // see subscribePriority
		ResumeOnPanic: resumeBusOnPanic(&r.stats),
		RestartChild:  restartSubscriptionWithBackoff(r),
	})
	if err != nil {
		return fmt.Errorf("cluster: redis: spawn bus: %w", err)
	}
	r.bus = bus
	r.goTracked(r.out.run)
	r.goTracked(r.pres.run)
	if parts > 0 {
		r.goTracked(r.checkLayout)
	}
	r.running.Store(true)
	return nil
}

// Publish implements port.Broker.
func (r *Broker) Publish(channel string, env *wire.Envelope) error {
	if !r.running.Load() {
		return port.ErrUnavailable
	}
	return r.out.publish(channel, env)
}

// PublishPresence implements port.PresencePublisher: membership events
// may queue past OutboxLimit (see outbox.publishPresence).
func (r *Broker) PublishPresence(channel string, env *wire.Envelope) error {
	if !r.running.Load() {
		return port.ErrUnavailable
	}
	return r.out.publishPresence(channel, env)
}

// Subscribe implements port.Broker.
func (r *Broker) Subscribe(channel string, target port.Ref) {
	if !r.running.Load() || r.closed.Load() {
		return
	}
	r.host.Actors.Send(r.bus, &busSubscribe{channel: channel, target: target, on: true})
}

// Unsubscribe implements port.Broker.
func (r *Broker) Unsubscribe(channel string, target port.Ref) {
	if !r.running.Load() || r.closed.Load() {
		return
	}
	r.host.Actors.Send(r.bus, &busSubscribe{channel: channel, target: target})
}

// SendDirect implements port.Broker: one round trip runs a script that
// reads the user's nodes from the presence directory and publishes env on
// each live one's PREFIX:node:ID channel. done runs on the outbox writer.
func (r *Broker) SendDirect(user string, env *wire.Envelope, done func(nodes int, err error)) {
	if !r.running.Load() {
		done(0, port.ErrUnavailable)
		return
	}
	r.out.direct(user, env, done)
}

// UserOnline implements port.Broker.
func (r *Broker) UserOnline(user string) {
	if r.running.Load() {
		r.out.presence(user, true)
	}
}

// UserOffline implements port.Broker.
func (r *Broker) UserOffline(user string) {
	if r.running.Load() {
		r.out.presence(user, false)
	}
}

// Subscriptions lists the channels this node subscribes, with the id of
// each channel's subscription actor (for actors.Node.Kill in chaos tests,
// and for operators).
func (r *Broker) Subscriptions(ctx context.Context) (map[string]string, error) {
	if !r.running.Load() {
		return nil, errors.New("cluster: redis: not started")
	}
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	res, err := r.host.Actors.Request(r.bus, &subscriptionsQuery{}, d)
	if err != nil {
		return nil, err
	}
	return res.(map[string]string), nil
}

// State implements port.Broker. Connected is true while every pub/sub
// connection is subscribed and answering probes and the last round trip of
// the outbox succeeded.
func (r *Broker) State() port.BrokerState {
	if !r.running.Load() {
		return port.BrokerState{Kind: "redis", Detail: "not started"}
	}
	up, total := r.health.upCount()
	st := port.BrokerState{Kind: "redis", Outbox: r.out.len()}
	st.Connected = !r.closed.Load() && up == total && !r.out.failing.Load()
	st.Detail = fmt.Sprintf("pubsub %d/%d up, %d channels", up, total, r.stats.subscriptions.Load())
	if r.out.failing.Load() {
		st.Detail += ", publishing failing"
	}
	if why := r.layout.wrong(); why != "" {
		st.Connected = false
		st.Detail += ", " + why
	}
	return st
}

// Close implements port.Broker. It sends what the outbox holds while
// Redis is reachable (bounded by ctx), and last removes this node from the
// presence directory (reporting user_disconnected for any user still listed
// under it); then it stops the actors and waits for every goroutine. It is
// idempotent.
func (r *Broker) Close(ctx context.Context) error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !r.running.Load() {
		r.cancel()
		return nil
	}
	left := r.out.close(ctx)
	_ = r.host.Actors.Stop(ctx, r.bus) // bounded by ctx; what is left is cancelled below
	r.cancel()
	waited := make(chan struct{})
	go func() {
		r.wg.Wait()
		// Every token taken: the reads in flight are done, and no other
		// starts.
		for range maxReads {
			r.reads <- struct{}{}
		}
		_ = r.reader.Close()
		r.pinned.close()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("cluster: redis: close: %w", ctx.Err())
	}
	if left > 0 {
		return fmt.Errorf("cluster: redis: close: %d publishes not sent", left)
	}
	return nil
}

// clusterPoolSize is the connections of a cluster client per shard: the
// outbox's transactions go in one round trip per primary, and those that
// must follow a redirect go by the cluster client, this many at a time
// (outbox_cluster.go).
const clusterPoolSize = 8

// slotPrimary asks the cluster where the primary of slot is now: a
// partition's pub/sub link dials it, so that a link made after a slot
// moved or a failover subscribes on the slot's new primary.
func (r *Broker) slotPrimary(ctx context.Context, slot int) (string, error) {
	cc, ok := r.reader.(*goredis.ClusterClient)
	if !ok {
		return "", errors.New("cluster: redis: not a cluster client")
	}
	ranges, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, rg := range ranges {
		if rg.Start <= slot && slot <= rg.End && len(rg.Nodes) > 0 {
			return rg.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("cluster: redis: no primary serves slot %d", slot)
}
