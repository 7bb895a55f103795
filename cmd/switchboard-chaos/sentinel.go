package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sentinelMaster is the name the sentinels watch the primary under.
const sentinelMaster = "switchboard"

// sentinelServerArgs are every data server's extra arguments. Redis 7
// waits repl-diskless-sync-delay (5 s by default) before each full sync,
// for more replicas to share it: with one replica that is 5 s for nothing,
// at the start and every time a killed primary comes back as a replica.
var sentinelServerArgs = []string{"--repl-diskless-sync-delay", "0"}

// sentinelTopology is a Redis Sentinel set-up: two data servers (one
// primary, one replica of it; which is which changes with every failover)
// and three sentinels watching them under sentinelMaster, quorum 2. The
// sentinels call a primary down after 1 s of silence
// (down-after-milliseconds) and give a failover 5 s (failover-timeout),
// the set-up of cluster/redistest's StartSentinel. The nodes ask the
// sentinels where the primary is (--redis-sentinel-master,
// --redis-sentinels). Owned by the controller.
type sentinelTopology struct {
	servers   [2]*redisProc
	sentinels []*redisProc
}

func newSentinelTopology(dir string) (*sentinelTopology, error) {
	t := &sentinelTopology{}
	for i, name := range []string{"redis-a", "redis-b"} {
		// A directory each: a replica writes the primary's data set to
		// dump.rdb in its directory before loading it.
		r, err := newRedisProc(filepath.Join(dir, name), name)
		if err != nil {
			return nil, err
		}
		t.servers[i] = r
	}
	for i := range 3 {
		name := fmt.Sprintf("sentinel-%d", i+1)
		r, err := newRedisProc(filepath.Join(dir, name), name)
		if err != nil {
			return nil, err
		}
		t.sentinels = append(t.sentinels, r)
	}
	return t, nil
}

func (t *sentinelTopology) kind() string { return topoSentinel }

// start runs the primary, its replica once it is in sync, then the
// sentinels, and waits until every sentinel knows both.
func (t *sentinelTopology) start(ctx context.Context) error {
	for _, r := range slices.Concat(t.servers[:], t.sentinels) {
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return err
		}
	}
	primary, replica := t.servers[0], t.servers[1]
	primary.extra = sentinelServerArgs
	if err := primary.start(ctx); err != nil {
		return err
	}
	if err := t.startReplica(ctx, replica, primary); err != nil {
		return err
	}
	for _, sn := range t.sentinels {
		sn.sentinelConf = filepath.Join(sn.dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			sn.port, sn.dir, filepath.Join(sn.dir, sn.name+".log"), sentinelMaster, primary.port,
			sentinelMaster, sentinelMaster, sentinelMaster)
		if err := os.WriteFile(sn.sentinelConf, []byte(body), 0o600); err != nil {
			return err
		}
		if err := sn.start(ctx); err != nil {
			return err
		}
	}
	_, err := t.waitReplicaKnown(ctx, primary, replica, sentinelWait)
	return err
}

func (t *sentinelTopology) nodeArgs() []string {
	addrs := make([]string, len(t.sentinels))
	for i, sn := range t.sentinels {
		addrs[i] = sn.addr()
	}
	return []string{"--redis-sentinel-master", sentinelMaster, "--redis-sentinels", strings.Join(addrs, ",")}
}

// primary is the server most sentinels name, if it says it is a primary.
// One sentinel may lag behind a failover and still name the old primary,
// which, restarted as a replica, holds no subscription: asked there, the
// suite saw every subscription gone.
func (t *sentinelTopology) primary(ctx context.Context) (*redisProc, error) {
	var last error
	votes := map[string]int{}
	best := ""
	for _, sn := range t.sentinels {
		addr, err := t.primaryAddr(ctx, sn)
		if err != nil {
			last = err
			continue
		}
		if votes[addr]++; votes[addr] > votes[best] {
			best = addr
		}
	}
	if best == "" {
		return nil, fmt.Errorf("no sentinel named the primary: %w", last)
	}
	r := t.server(best)
	if r == nil {
		return nil, fmt.Errorf("the sentinels name %s as primary, which is none of the servers", best)
	}
	if !r.role(ctx, "master", "") {
		return nil, fmt.Errorf("the sentinels name %s as primary, which does not say it is one", best)
	}
	return r, nil
}

func (t *sentinelTopology) primaryAddr(ctx context.Context, sn *redisProc) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	got, err := sn.admin.Do(cctx, "SENTINEL", "get-master-addr-by-name", sentinelMaster).StringSlice()
	if err != nil {
		return "", err
	}
	if len(got) != 2 {
		return "", fmt.Errorf("%s: get-master-addr-by-name: %v", sn.name, got)
	}
	return net.JoinHostPort(got[0], got[1]), nil
}

func (t *sentinelTopology) server(addr string) *redisProc {
	for _, r := range t.servers {
		if r.addr() == addr {
			return r
		}
	}
	return nil
}

// other is the server that is not r.
func (t *sentinelTopology) other(r *redisProc) *redisProc {
	if t.servers[0] == r {
		return t.servers[1]
	}
	return t.servers[0]
}

// failover asks a sentinel for a planned failover (SENTINEL FAILOVER),
// again while it answers that it has no replica to promote yet or that a
// failover is in progress, for up to within.
func (t *sentinelTopology) failover(ctx context.Context, within time.Duration) error {
	var err error
	waitFor(ctx, within, func() bool {
		sn := t.sentinels[0]
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err = sn.admin.Do(cctx, "SENTINEL", "FAILOVER", sentinelMaster).Err()
		return err == nil || !(strings.HasPrefix(err.Error(), "NOGOODSLAVE") || strings.HasPrefix(err.Error(), "INPROG"))
	})
	if err != nil {
		return fmt.Errorf("SENTINEL FAILOVER: %w", err)
	}
	return nil
}

// waitNewPrimary waits until every sentinel names a primary other than
// old and that server says it is one.
func (t *sentinelTopology) waitNewPrimary(ctx context.Context, old *redisProc, within time.Duration) (*redisProc, error) {
	var got *redisProc
	_, ok := waitFor(ctx, within, func() bool {
		got = nil
		for _, sn := range t.sentinels {
			addr, err := t.primaryAddr(ctx, sn)
			if err != nil || addr == old.addr() {
				return false
			}
			if got != nil && got.addr() != addr {
				return false // the sentinels do not agree yet
			}
			if got = t.server(addr); got == nil {
				return false
			}
		}
		return got.role(ctx, "master", "")
	})
	if !ok {
		return nil, fmt.Errorf("the sentinels still name %s, or do not agree on its successor, %v after the fault%s", old.name, within, t.tiltNote(ctx))
	}
	return got, nil
}

// startReplica (re)starts r as a replica of primary and waits until it is
// in sync.
func (t *sentinelTopology) startReplica(ctx context.Context, r, primary *redisProc) error {
	r.extra = append(append([]string(nil), sentinelServerArgs...), "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	if err := r.start(ctx); err != nil {
		return err
	}
	_, err := t.waitInSync(ctx, r, primary, 20*time.Second)
	return err
}

// waitInSync waits until r says it is a replica of primary, in sync.
func (t *sentinelTopology) waitInSync(ctx context.Context, r, primary *redisProc, within time.Duration) (time.Duration, error) {
	took, ok := waitFor(ctx, within, func() bool {
		return r.role(ctx, "slave", "master_port:"+strconv.Itoa(primary.port)+"\r\n") && r.role(ctx, "slave", "master_link_status:up")
	})
	if !ok {
		return took, fmt.Errorf("%s not a replica of %s in sync within %v%s", r.name, primary.name, within, t.tiltNote(ctx))
	}
	return took, nil
}

// replicaKnown returns "" when every sentinel names primary and lists
// replica as a healthy replica of it (one they would promote), else what is
// missing.
func (t *sentinelTopology) replicaKnown(ctx context.Context, primary, replica *redisProc) string {
	if !replica.role(ctx, "slave", "master_link_status:up") {
		return replica.name + " is not a replica in sync"
	}
	for _, sn := range t.sentinels {
		addr, err := t.primaryAddr(ctx, sn)
		if err != nil || addr != primary.addr() {
			return fmt.Sprintf("%s names %q as primary (%v)", sn.name, addr, err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		reps, err := sn.admin.Do(cctx, "SENTINEL", "replicas", sentinelMaster).Slice()
		cancel()
		if err != nil {
			return fmt.Sprintf("%s: SENTINEL replicas: %v", sn.name, err)
		}
		var seen []string
		for _, rep := range reps {
			f := fieldsOf(rep)
			if net.JoinHostPort(f["ip"], f["port"]) == replica.addr() && f["flags"] == "slave" && f["master-link-status"] == "ok" {
				seen = nil
				break
			}
			seen = append(seen, fmt.Sprintf("%s:%s flags %s link %s", f["ip"], f["port"], f["flags"], f["master-link-status"]))
		}
		if len(reps) == 0 || seen != nil {
			return fmt.Sprintf("%s lists replicas %v", sn.name, seen)
		}
	}
	return ""
}

// waitReplicaKnown waits until replicaKnown holds.
func (t *sentinelTopology) waitReplicaKnown(ctx context.Context, primary, replica *redisProc, within time.Duration) (time.Duration, error) {
	var why string
	took, ok := waitFor(ctx, within, func() bool { why = t.replicaKnown(ctx, primary, replica); return why == "" })
	if !ok {
		return took, fmt.Errorf("the sentinels do not know %s as a healthy replica of %s within %v: %s%s", replica.name, primary.name, within, why, t.tiltNote(ctx))
	}
	return took, nil
}

// sentinelWait bounds every wait on the sentinels' view: a sentinel that
// sees its timer jump by 2 s or more (the machine stalled) enters TILT
// mode and does nothing for 30 s.
const sentinelWait = 45 * time.Second

// tiltNote names the sentinels in TILT mode (INFO sentinel), for a
// failure message.
func (t *sentinelTopology) tiltNote(ctx context.Context) string {
	var tilted []string
	for _, sn := range t.sentinels {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := sn.admin.Info(cctx, "sentinel").Result()
		cancel()
		if err == nil && strings.Contains(info, "sentinel_tilt:1") {
			tilted = append(tilted, sn.name)
		}
	}
	if len(tilted) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s in TILT mode: their timer jumped 2 s or more, the machine stalled; they act again 30 s later)", strings.Join(tilted, ", "))
}

// fieldsOf reads one entry of SENTINEL replicas (a flat name, value list).
func fieldsOf(v any) map[string]string {
	out := map[string]string{}
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		out[k] = val
	}
	return out
}

func (t *sentinelTopology) subscriptions(ctx context.Context, prefix string) (map[string]int64, error) {
	return onPrimary(ctx, t, func(p *redisProc) (map[string]int64, error) { return p.subscriptions(ctx, prefix) })
}

func (t *sentinelTopology) channels(ctx context.Context, pattern string) ([]string, error) {
	return onPrimary(ctx, t, func(p *redisProc) ([]string, error) { return p.channels(ctx, pattern) })
}

func (t *sentinelTopology) keys(ctx context.Context, pattern string) ([]string, error) {
	return onPrimary(ctx, t, func(p *redisProc) ([]string, error) { return p.keys(ctx, pattern) })
}

func (t *sentinelTopology) roomChannel(prefix, room string) string { return prefix + ":room:" + room }

func (t *sentinelTopology) close() {
	for _, r := range slices.Concat(t.sentinels, t.servers[:]) {
		r.close()
	}
}
