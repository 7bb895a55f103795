package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RecoveryStats describe the recover scenario: C clients that were away
// while M publications went into each of their rooms reconnect at once and
// rejoin with since (the thundering herd after a drain).
type RecoveryStats struct {
	Clients int   `json:"clients"`           // clients in the herd
	Missed  int64 `json:"missed_per_client"` // publications each client missed while away
	// Recovered counts acks with recovered:true that came after exactly the
	// missed publications, in offset order, in the room's epoch.
	Recovered int64 `json:"recovered"`
	// NotRecovered counts acks with recovered:false (history too short,
	// expired, or another epoch): the client knows that it missed something.
	NotRecovered int64 `json:"not_recovered"`
	// Wrong counts acks with recovered:true whose publications were not
	// exactly the missed ones in order: the silent failures Lost and
	// Disordered detail.
	Wrong        int64 `json:"wrong"`
	Failed       int64 `json:"failed"`       // dial, join or ack failed, or an ack without "recovered"
	Publications int64 `json:"publications"` // chat events received before the acks
	Lost         int64 `json:"lost"`         // publications missing from recovered:true answers
	// Disordered counts chats out of offset order, repeated, of another
	// epoch, beyond the missed ones, or sent with recovered:false.
	Disordered int64 `json:"disordered"`
	// LiveLost counts publications members did not get before the
	// disconnection (their since is then older and they recover more).
	LiveLost int64   `json:"live_lost"`
	Seconds  float64 `json:"seconds"` // first reconnect to the last recovered:true ack
	PerSec   float64 `json:"recovered_per_sec"`
	Latency  Latency `json:"latency"` // of one recovery, dial to the recovered:true ack
	// RedisCPUPerRecovery is Redis's CPU time (used_cpu_sys + used_cpu_user
	// of INFO CPU) during the herd divided by the recoveries, in
	// microseconds; only with --redis.
	RedisCPUPerRecovery *float64 `json:"redis_cpu_us_per_recovery,omitempty"`
	// RedisCommands are the Redis commands that ran during the herd, by
	// name (INFO commandstats); only with --redis.
	RedisCommands map[string]RedisCommand `json:"redis_commands,omitempty"`
	// ServerCPUPerRecovery is the nodes' CPU time likewise, in microseconds;
	// only when the nodes run in a child process (--spawn).
	ServerCPUPerRecovery float64 `json:"server_cpu_us_per_recovery,omitempty"`
}

// recoverScenario: R publishers (one extra connection per room, a member
// for the whole run) and C clients, client i in room i mod R on node
// i mod N. Phase 1: every client joins, each publisher sends M
// publications, every client notes the offset and epoch of the last one it
// got. Phase 2: every client disconnects, and each publisher sends M more.
// Phase 3, measured: all C clients reconnect at once (--dial-concurrency at
// a time), client i to node (i+1) mod N (with several nodes, the node it
// did not leave, as after a drain), and rejoin with since; each must get
// exactly the M publications it missed, in order, then recovered:true.
func (r *run) recoverScenario(ctx context.Context) (*Result, error) {
	o := r.o
	n := len(r.t.urls)
	res := r.result(o.clients)
	st := &RecoveryStats{Clients: o.clients, Missed: int64(o.messages)}
	res.Recovery = st
	before, err := sumStats(ctx, r.t.urls)
	if err != nil {
		return res, err
	}
	specs := make([]clientSpec, 0, o.rooms+o.clients)
	for room := 0; room < o.rooms; room++ {
		specs = append(specs, clientSpec{user: "b" + r.runID + "-pub" + strconv.Itoa(room), node: room % n, room: room})
	}
	for i := 0; i < o.clients; i++ {
		specs = append(specs, clientSpec{user: r.userID(i), node: i % n, room: i % o.rooms})
	}
	all, cs, err := r.connect(ctx, specs, nil)
	res.Connect = cs
	pubs, clients := all[:o.rooms], all[o.rooms:]
	defer func() { r.closeAll(pubs) }()
	if err != nil {
		r.closeAll(clients)
		return res, err
	}
	if cs.Failed > 0 {
		r.closeAll(clients)
		return res, fmt.Errorf("%d of %d connections failed", cs.Failed, len(specs))
	}
	if err := r.joinAll(ctx, all); err != nil {
		r.closeAll(clients)
		return res, err
	}
	r.quiesce(ctx, 30*time.Second)

	// Phase 1: M publications to members.
	if err := r.publishBurst(ctx, pubs, 0, o.messages); err != nil {
		r.closeAll(clients)
		return res, err
	}
	st.LiveLost = r.waitChats(ctx, all, int64(o.messages))
	since := make([]recoverFrom, o.clients)
	for i, c := range clients {
		since[i] = recoverFrom{user: c.user, room: c.room, offset: c.pos.lastOffset.Load(), epoch: loadEpoch(c, pubs[c.room])}
	}

	// Phase 2: every client away, M more publications.
	r.closeAll(clients)
	r.setPhase("waiting for the disconnections", nil)
	if err := r.waitGone(ctx, before.LocalConnections+int64(o.rooms), 10*time.Second); err != nil {
		return res, err
	}
	if err := r.publishBurst(ctx, pubs, o.messages, 2*o.messages); err != nil {
		return res, err
	}
	if lost := r.waitChats(ctx, pubs, 2*int64(o.messages)); lost > 0 {
		return res, fmt.Errorf("publishers got %d of their own publications fewer than sent", lost)
	}
	top := make([]recoverFrom, o.rooms)
	for room, p := range pubs {
		top[room] = recoverFrom{offset: p.pos.lastOffset.Load(), epoch: loadEpoch(p, p)}
	}
	r.quiesce(ctx, 30*time.Second)

	// Phase 3, measured: the herd.
	redis0, redisErr := sampleRedis(ctx, o.singleRedis())
	r.startCPU()
	herd, outcomes, start := r.herd(ctx, since)
	defer func() { r.closeAll(herd) }()
	redis1, redisErr1 := sampleRedis(ctx, o.singleRedis())
	var firstErr error
	var lastOK time.Time
	var lat histogram
	for i, oc := range outcomes {
		if oc.err != nil {
			st.Failed++
			firstErr = cmpOr(firstErr, oc.err)
			continue
		}
		if judgeRecovery(st, since[i], top[since[i].room], oc) {
			lat.Record(oc.at.Sub(oc.start))
			if oc.at.After(lastOK) {
				lastOK = oc.at
			}
		}
	}
	st.Latency = lat.Summary()
	if st.Recovered > 0 {
		st.Seconds = lastOK.Sub(start).Seconds()
		st.PerSec = float64(st.Recovered) / st.Seconds
		st.ServerCPUPerRecovery = r.cpuPerDelivery(st.Recovered)
		if redis0 != nil && redis1 != nil {
			cpu, cmds := redis0.since(redis1)
			v := cpu.Seconds() * 1e6 / float64(st.Recovered)
			st.RedisCPUPerRecovery, st.RedisCommands = &v, cmds
		}
	}
	if firstErr != nil && !o.quiet {
		fmt.Fprintf(r.log, "recover: %d failed; first: %v\n", st.Failed, firstErr)
	}
	res.Seconds = st.Seconds
	res.Received = st.Publications
	res.Lost = st.Lost + st.LiveLost
	clientTotals(res, herd)
	for _, c := range herd {
		if c != nil {
			res.Errors += c.errors.Load()
		}
	}
	return res, errors.Join(redisErr, redisErr1)
}

// recoverFrom is a stream position: where a client left its room, or the
// room's last publication before the herd.
type recoverFrom struct {
	user   string
	room   int
	offset int64
	epoch  string
}

// loadEpoch is the epoch c last saw, or the one its room's publisher saw if
// c got no publication.
func loadEpoch(c, pub *loadClient) string {
	if e := c.pos.epoch.Load(); e != nil {
		return *e
	}
	if e := pub.pos.epoch.Load(); e != nil {
		return *e
	}
	return ""
}

// herdOutcome is what one reconnecting client saw: its ack and the chats
// before it, or the error that ended its attempt.
type herdOutcome struct {
	start, at time.Time // dial started; ack received
	ack       ctlEvent
	chats     int64
	gaps      int64
	epochs    int64
	last      int64
	err       error
}

// herd reconnects every client at once, --dial-concurrency at a time, and
// rejoins with since. It returns the clients (to close), one outcome each
// and the time the first dial started.
func (r *run) herd(ctx context.Context, since []recoverFrom) ([]*loadClient, []herdOutcome, time.Time) {
	o := r.o
	n := len(r.t.urls)
	frames := make([][]byte, len(since))
	for i, s := range since {
		epoch, _ := json.Marshal(s.epoch)
		frames[i] = fmt.Appendf(nil, `{"type":"join_room","room":"%s","since":{"offset":%d,"epoch":%s},"id":"r%d"}`, r.roomName(s.room), s.offset, epoch, i)
	}
	clients := make([]*loadClient, len(since))
	outcomes := make([]herdOutcome, len(since))
	var done, recovered atomic.Int64
	r.setPhase("recovering", func() string {
		return fmt.Sprintf("%d/%d acks, %d recovered", done.Load(), len(since), recovered.Load())
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < min(o.dialWorkers, len(since)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(since) || ctx.Err() != nil {
					return
				}
				s := since[i]
				c := &loadClient{index: i, user: s.user, room: s.room, trackPos: true}
				c.pos.lastOffset.Store(s.offset)
				c.pos.epoch.Store(&s.epoch)
				oc := &outcomes[i]
				oc.start = time.Now()
				oc.err = r.rejoin(ctx, c, (i+1)%n, frames[i], oc)
				if c.conn != nil {
					clients[i] = c
				}
				if oc.ack.recovered == ackRecovered {
					recovered.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return clients, outcomes, start
}

// rejoin dials node as c, sends the join with since and waits for its ack,
// noting the chats that came before it (the read loop counts them before
// it posts the ack, so they are all counted when await returns).
func (r *run) rejoin(ctx context.Context, c *loadClient, node int, frame []byte, oc *herdOutcome) error {
	url, err := wsURL(r.t.urls[node], c.user)
	if err != nil {
		return err
	}
	do := dialOptions{url: url, timeout: r.o.timeout, readBuf: 4096}
	if k := len(r.o.sourceIPs); k > 0 {
		do.localIP = r.o.sourceIPs[c.index%k]
	}
	if err := dialClient(ctx, do, c); err != nil {
		return fmt.Errorf("client %d: %w", c.index, err)
	}
	if err := c.send(frame); err != nil {
		return fmt.Errorf("client %d: join: %w", c.index, err)
	}
	ack, err := c.await(ctx, r.o.timeout, "ack", "r"+strconv.Itoa(c.index))
	oc.at = time.Now()
	if err != nil {
		return fmt.Errorf("client %d: join with since: %w", c.index, err)
	}
	oc.ack = ack
	oc.chats, oc.gaps, oc.epochs, oc.last = c.pos.chats.Load(), c.pos.gaps.Load(), c.pos.epochs.Load(), c.pos.lastOffset.Load()
	if ack.recovered == ackNoRecovery {
		return fmt.Errorf("client %d: the ack of a join with since has no \"recovered\" (history off?)", c.index)
	}
	return nil
}

// judgeRecovery adds one client's rejoin to st: it left at since, and its
// room's last publication is top. It reports whether the client recovered
// exactly what it missed.
func judgeRecovery(st *RecoveryStats, since, top recoverFrom, oc herdOutcome) bool {
	st.Publications += oc.chats
	switch oc.ack.recovered {
	case ackRecovered:
		want := top.offset - since.offset
		if top.epoch != since.epoch {
			want = 0 // another epoch cannot be recovered
		}
		if oc.chats == want && oc.gaps == 0 && oc.epochs == 0 && oc.last == top.offset &&
			oc.ack.offset == top.offset && oc.ack.epoch == top.epoch {
			st.Recovered++
			return true
		}
		st.Wrong++
		if oc.chats < want {
			st.Lost += want - oc.chats
		} else {
			st.Disordered += oc.chats - want
		}
		st.Disordered += oc.gaps + oc.epochs
	case ackNotRecovered:
		st.NotRecovered++
		st.Disordered += oc.chats // recovered:false sends none of them
	}
	return false
}

// publishBurst has each publisher send its room's publications seq from..to-1
// as fast as it can.
func (r *run) publishBurst(ctx context.Context, pubs []*loadClient, from, to int) error {
	r.setPhase("publishing", nil)
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := r.roomName(p.room)
			buf := make([]byte, 0, r.o.size+256)
			for seq := from; seq < to && ctx.Err() == nil; seq++ {
				buf = appendRoomMessage(buf[:0], name, p.room, seq, time.Now(), r.o.size)
				if err := p.send(buf); err != nil {
					errs[i] = fmt.Errorf("publisher %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// waitChats waits, up to --drain, until every client has received want
// publications, and returns how many are missing.
func (r *run) waitChats(ctx context.Context, clients []*loadClient, want int64) int64 {
	missing := func() int64 {
		var m int64
		for _, c := range clients {
			m += max(0, want-c.pos.chats.Load())
		}
		return m
	}
	r.setPhase("delivering", func() string { return fmt.Sprintf("%d publications missing", missing()) })
	deadline := time.Now().Add(r.o.drain)
	for missing() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	return missing()
}

// waitGone waits until the nodes hold at most want connections, or within
// passes. At most, not exactly: connections of an earlier run (--repeat)
// may still have been closing when want was counted.
func (r *run) waitGone(ctx context.Context, want int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st, err := sumStats(ctx, r.t.urls)
		if err != nil || st.LocalConnections <= want || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
