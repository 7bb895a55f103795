package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// baseline is the cluster's shape when nothing is wrong, taken before the
// first fault; every quiet check compares against it.
type baseline struct {
	empty    map[string]goroutineProfile // node id -> goroutines with no client connected
	busy     map[string]goroutineProfile // node id -> goroutines at quiet with every client home
	actors   map[string]map[string]int   // node id -> live actors by kind at quiet
	subs     map[string]int64            // channel (node ids normalised) -> subscribers, at quiet
	injected map[string]*panics          // node id -> panics injected into that incarnation
}

type panics struct{ session, room, hub int }

func (b *baseline) init() {
	b.empty = map[string]goroutineProfile{}
	b.busy = map[string]goroutineProfile{}
	b.actors = map[string]map[string]int{}
	b.injected = map[string]*panics{}
}

func (b *baseline) panicsOf(nodeID string) *panics {
	p := b.injected[nodeID]
	if p == nil {
		p = &panics{}
		b.injected[nodeID] = p
	}
	return p
}

// quietGoroutines samples a node's goroutines a few times and keeps the
// sample with the fewest: goroutines that come and go (a write in progress,
// a request being served) are not leaks.
func (s *suite) quietGoroutines(n *nodeProc) goroutineProfile {
	var low goroutineProfile
	for i := 0; i < 5; i++ {
		if p, err := n.goroutines(); err == nil && (low == nil || p.total() < low.total()) {
			low = p
		}
		time.Sleep(50 * time.Millisecond)
	}
	return low
}

// nodeIDInChannel matches a node incarnation's id inside a channel name
// (PREFIX:node:n1.2, PREFIX:probe:n1.2:0).
var nodeIDInChannel = regexp.MustCompile(`:(node|probe):n(\d+)\.\d+(:|$)`)

// normalisedSubs reads the Redis subscriptions of this run, with node
// incarnations folded (a restarted node subscribes to its new id's channel).
func (s *suite) normalisedSubs(ctx context.Context) (map[string]int64, error) {
	if s.redis == nil {
		return map[string]int64{}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	raw, err := s.redis.subscriptions(cctx, s.prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for ch, n := range raw {
		out[nodeIDInChannel.ReplaceAllString(ch, ":$1:n$2$3")] += n
	}
	return out, nil
}

// checkQuiet compares the cluster with what the clients know, once traffic
// has stopped and every client is home: each node's directory lists exactly
// its clients, every room member is a live session, counts and goroutines
// are back to the baseline, Redis holds exactly the baseline subscriptions,
// supervision counted every injected panic. Cleanup is asynchronous, so it
// polls until everything holds, up to a bound. Round 0 takes the baseline.
func (s *suite) checkQuiet(ctx context.Context, round int) []string {
	deadline := time.Now().Add(6 * time.Second)
	var problems []string
	for {
		final := time.Now().After(deadline) || ctx.Err() != nil
		problems = s.quietProblems(ctx, round, final)
		if len(problems) == 0 || final {
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	for _, n := range s.nodes {
		if n.isUp() {
			problems = append(problems, n.logProblems()...)
		}
	}
	return problems
}

// quietProblems is one pass of checkQuiet; the final pass saves the
// goroutine profiles of a leak for the report.
func (s *suite) quietProblems(ctx context.Context, round int, final bool) []string {
	var out []string
	for _, n := range s.nodes {
		if !n.isUp() {
			continue
		}
		out = append(out, s.nodeProblems(n, final)...)
	}
	subs, err := s.normalisedSubs(ctx)
	switch {
	case err != nil:
		out = append(out, fmt.Sprintf("redis subscriptions: %v", err))
	case round == 0 && s.base.subs == nil:
		if len(out) == 0 {
			s.base.subs = subs
		}
	default:
		if d := diffSubs(s.base.subs, subs); d != "" {
			out = append(out, "redis subscriptions differ from the baseline: "+d)
		}
	}
	return out
}

// nodeProblems checks one live node against the clients connected to it.
func (s *suite) nodeProblems(n *nodeProc, final bool) []string {
	var out []string
	id := n.nodeID()
	d, err := n.actors()
	if err != nil {
		return []string{fmt.Sprintf("%s: /debug/actors: %v", id, err)}
	}
	st, err := n.stats()
	if err != nil {
		return []string{fmt.Sprintf("%s: /stats: %v", id, err)}
	}
	// What the clients say.
	var users []string
	rooms := map[string][]string{}
	for _, c := range s.clients {
		_, cn, ready := c.state()
		if !ready || cn.node != n.idx {
			continue
		}
		users = append(users, c.user)
		for _, r := range c.rooms {
			rooms[r] = append(rooms[r], c.user)
		}
	}
	sort.Strings(users)
	// What the node says.
	sess := d.sessionUsers()
	var got []string
	for _, u := range sess {
		got = append(got, u)
	}
	sort.Strings(got)
	if !slices.Equal(users, got) {
		out = append(out, fmt.Sprintf("%s: sessions %v, clients connected %v", id, got, users))
	}
	seen := map[string]bool{}
	for _, r := range d.Rooms {
		seen[r.Name] = true
		if r.Error != "" {
			out = append(out, fmt.Sprintf("%s: room %s (%s): %s", id, r.Name, r.ID, r.Error))
			continue
		}
		var members []string
		for _, m := range r.Members {
			u, ok := sess[m]
			if !ok {
				out = append(out, fmt.Sprintf("%s: room %s lists %s, which is not a live session", id, r.Name, m))
				continue
			}
			members = append(members, u)
		}
		sort.Strings(members)
		want := rooms[r.Name]
		sort.Strings(want)
		if !slices.Equal(members, want) {
			out = append(out, fmt.Sprintf("%s: room %s members %v, clients in it %v", id, r.Name, members, want))
		}
	}
	for r := range rooms {
		if !seen[r] {
			out = append(out, fmt.Sprintf("%s: room %s has %d local clients but no room actor", id, r, len(rooms[r])))
		}
	}
	if int(st.LocalConnections) != len(users) || int(st.OpenSockets) != len(users) || int(st.Rooms) != len(rooms) {
		out = append(out, fmt.Sprintf("%s: stats say %d sessions, %d open sockets, %d rooms; want %d, %d, %d",
			id, st.LocalConnections, st.OpenSockets, st.Rooms, len(users), len(users), len(rooms)))
	}
	p := s.base.panicsOf(id)
	if int(st.SessionPanics) != p.session || int(st.RoomPanics) != p.room || int(st.HubPanics) != p.hub {
		out = append(out, fmt.Sprintf("%s: panics counted session=%d room=%d hub=%d, injected %d, %d, %d",
			id, st.SessionPanics, st.RoomPanics, st.HubPanics, p.session, p.room, p.hub))
	}
	// The registry (what is alive) agrees with the directory (what the hub
	// routes to): no zombie actor, no entry for a dead one.
	if a, b := sortedCopy(d.Actors["session"]), sortedKeys(sess); !slices.Equal(a, b) {
		out = append(out, fmt.Sprintf("%s: live session actors %v, directory %v", id, a, b))
	}
	var roomIDs []string
	for _, r := range d.Rooms {
		roomIDs = append(roomIDs, r.ID)
	}
	if a, b := sortedCopy(d.Actors["room"]), sortedCopy(roomIDs); !slices.Equal(a, b) {
		out = append(out, fmt.Sprintf("%s: live room actors %v, directory %v", id, a, b))
	}
	if len(out) > 0 {
		return out
	}
	// Every kind of actor is back to its count at the baseline.
	if b, ok := s.base.actors[id]; !ok {
		s.base.actors[id] = d.Counts
	} else if !maps.Equal(b, d.Counts) {
		out = append(out, fmt.Sprintf("%s: live actors by kind %v, baseline %v", id, d.Counts, b))
		return out
	}
	// Goroutines last: only once the directory is right is the count
	// comparable.
	g := s.quietGoroutines(n)
	if b, ok := s.base.busy[id]; !ok {
		s.base.busy[id] = g
	} else if g.total() > b.total() {
		saved := ""
		if final {
			saved = " (profiles in " + s.saveProfiles(id, b, g) + ")"
		}
		out = append(out, fmt.Sprintf("%s: %d goroutines at quiet, baseline %d: %s%s", id, g.total(), b.total(), g.grown(b), saved))
	}
	return out
}

// checkEmpty runs after every client has left: no session, no room, no
// room channel in Redis, goroutines back to the count of an empty node.
func (s *suite) checkEmpty(ctx context.Context) []string {
	deadline := time.Now().Add(8 * time.Second)
	for {
		final := time.Now().After(deadline) || ctx.Err() != nil
		var out []string
		for _, n := range s.nodes {
			if !n.isUp() {
				continue
			}
			id := n.nodeID()
			st, err := n.stats()
			if err != nil {
				out = append(out, fmt.Sprintf("%s: /stats: %v", id, err))
				continue
			}
			if st.LocalConnections != 0 || st.Rooms != 0 || st.OpenSockets != 0 || st.Users != 0 {
				out = append(out, fmt.Sprintf("%s: %d sessions, %d rooms, %d open sockets, %d users left",
					id, st.LocalConnections, st.Rooms, st.OpenSockets, st.Users))
				continue
			}
			if g, b := s.quietGoroutines(n), s.base.empty[id]; g.total() > b.total() {
				saved := ""
				if final {
					saved = " (profiles in " + s.saveProfiles(id, b, g) + ")"
				}
				out = append(out, fmt.Sprintf("%s: %d goroutines, %d when it started empty: %s%s", id, g.total(), b.total(), g.grown(b), saved))
			}
		}
		subs, err := s.normalisedSubs(ctx)
		if err != nil {
			out = append(out, fmt.Sprintf("redis: %v", err))
		}
		for ch, n := range subs {
			if strings.Contains(ch, ":room:") || strings.Contains(ch, ":part:") {
				out = append(out, fmt.Sprintf("redis: %s still has %d subscribers", ch, n))
			}
		}
		if len(out) == 0 || final {
			return append(out, s.checkPresenceEmpty(ctx)...)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// presenceReapBound is how long the presence directory may keep the users
// of a SIGKILLed node: the broker's PresenceTTL (15 s) plus a heartbeat
// period (5 s), plus slack.
const presenceReapBound = 25 * time.Second

// checkPresenceEmpty runs after every client has left: the presence
// directory lists no user. A drained node removes its users at once; a
// SIGKILLed node's users are reaped by the survivors within
// presenceReapBound of its death.
func (s *suite) checkPresenceEmpty(ctx context.Context) []string {
	if s.redis == nil {
		return nil
	}
	deadline := time.Now().Add(presenceReapBound)
	if s.lastNodeKill.IsZero() || time.Since(s.lastNodeKill) > presenceReapBound {
		// The leaves' removals queue in each node's outbox behind what is
		// there (after a mass exit: tens of thousands of user_left and
		// presence-share writes), which a race-built node on two shared
		// cores takes seconds to send.
		deadline = time.Now().Add(10 * time.Second)
	}
	for {
		var left []string
		for _, pattern := range []string{s.prefix + ":presence:user:*", s.prefix + ":presence:node:*"} {
			keys, err := s.redis.keys(ctx, pattern)
			if err != nil {
				return []string{fmt.Sprintf("redis presence: %v", err)}
			}
			left = append(left, keys...)
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if len(left) > 5 {
				left = append(left[:5], "...")
			}
			return []string{fmt.Sprintf("presence directory still lists users after every client left: %s", strings.Join(left, " "))}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// saveProfiles writes a baseline and a current goroutine profile next to
// the logs, for the report.
func (s *suite) saveProfiles(id string, base, now goroutineProfile) string {
	path := filepath.Join(s.report.LogDir, fmt.Sprintf("%s.goroutines.%d.txt", id, time.Now().UnixMilli()))
	var b strings.Builder
	for _, p := range []struct {
		name string
		prof goroutineProfile
	}{{"baseline", base}, {"now", now}} {
		fmt.Fprintf(&b, "== %s: %d goroutines\n", p.name, p.prof.total())
		sigs := make([]string, 0, len(p.prof))
		for sig := range p.prof {
			sigs = append(sigs, sig)
		}
		sort.Strings(sigs)
		for _, sig := range sigs {
			fmt.Fprintf(&b, "%4d %s\n", p.prof[sig], sig)
		}
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func diffSubs(want, got map[string]int64) string {
	var d []string
	for ch, n := range want {
		if got[ch] != n {
			d = append(d, fmt.Sprintf("%s %d->%d", ch, n, got[ch]))
		}
	}
	for ch, n := range got {
		if _, ok := want[ch]; !ok {
			d = append(d, fmt.Sprintf("%s 0->%d", ch, n))
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}
