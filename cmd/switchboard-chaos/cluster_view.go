package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clusterNodeLine is one line of CLUSTER NODES.
type clusterNodeLine struct {
	id, addr string
	flags    []string
	master   string   // a replica's primary id; "-" for a primary
	slots    [][2]int // served ranges (importing and migrating entries left out)
}

func (l clusterNodeLine) has(flag string) bool { return slices.Contains(l.flags, flag) }

func (l clusterNodeLine) failing() bool {
	return l.has("fail") || l.has("fail?") || l.has("noaddr")
}

func (l clusterNodeLine) serves(slot int) bool {
	for _, r := range l.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// view is CLUSTER NODES as r sees it (nil on error).
func (t *clusterTopology) view(ctx context.Context, r *redisProc) []clusterNodeLine {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	txt, err := r.admin.ClusterNodes(cctx).Result()
	if err != nil {
		return nil
	}
	var out []clusterNodeLine
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		ln := clusterNodeLine{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") {
				continue
			}
			lo, hi, rng := strings.Cut(sl, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if rng {
				b, _ = strconv.Atoi(hi)
			}
			ln.slots = append(ln.slots, [2]int{a, b})
		}
		out = append(out, ln)
	}
	return out
}

// unhealthy returns "" when every running node reports cluster_state:ok
// with all 16384 slots served, each shard has exactly one primary that
// every running node names, unflagged, and every running replica is
// connected to its shard's primary; else what is missing.
func (t *clusterTopology) unhealthy(ctx context.Context) string {
	var primaryIDs []string
	replicaOf := map[string]string{}
	for i, members := range t.shards {
		var p *redisProc
		for _, r := range members {
			if r.running() && r.role(ctx, "master", "") {
				if p != nil {
					return fmt.Sprintf("shard %d has two primaries, %s and %s", i, p.name, r.name)
				}
				p = r
			}
		}
		if p == nil {
			return fmt.Sprintf("shard %d has no primary", i)
		}
		primaryIDs = append(primaryIDs, t.ids[p])
		for _, r := range members {
			if r == p || !r.running() {
				continue
			}
			if !r.role(ctx, "slave", "master_port:"+strconv.Itoa(p.port)+"\r\n") || !r.role(ctx, "slave", "master_link_status:up") {
				return fmt.Sprintf("%s is not a replica of %s in sync", r.name, p.name)
			}
			replicaOf[t.ids[r]] = t.ids[p]
		}
	}
	for _, r := range t.nodes {
		if !r.running() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := r.admin.ClusterInfo(cctx).Result()
		cancel()
		if err != nil {
			return fmt.Sprintf("CLUSTER INFO on %s: %v", r.name, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Sprintf("%s: %s", r.name, strings.ReplaceAll(strings.TrimSpace(info), "\r\n", " "))
		}
		for _, ln := range t.view(ctx, r) {
			if slices.Contains(primaryIDs, ln.id) && (!ln.has("master") || ln.failing() || len(ln.slots) == 0) {
				return fmt.Sprintf("%s sees primary %s as %v", r.name, ln.addr, ln.flags)
			}
			if p, ok := replicaOf[ln.id]; ok && (!ln.has("slave") || ln.master != p || ln.failing()) {
				return fmt.Sprintf("%s sees replica %s as %v of %s", r.name, ln.addr, ln.flags, ln.master)
			}
		}
	}
	return ""
}

// waitHealthy waits until unhealthy says nothing.
func (t *clusterTopology) waitHealthy(ctx context.Context, within time.Duration) (time.Duration, error) {
	var why string
	took, ok := waitFor(ctx, within, func() bool { why = t.unhealthy(ctx); return why == "" })
	if !ok {
		return took, fmt.Errorf("redis cluster not healthy within %v: %s", within, why)
	}
	return took, nil
}

// The cluster's key layout, as cluster/redis/partition.go computes it and
// docs/operations.md (Redis Cluster) describes it: a room belongs to
// partition FNV-1a(room) mod partitions; partition i's hash tag is the
// smallest decimal number whose slot is the middle of the i-th of equal
// ranges of the 16384 slots. The suite needs it to name a room's channel.

const clusterSlots = 16384

// keySlot is the cluster slot of a hash tag's content (CRC16/XMODEM).
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % clusterSlots)
}

// partitionTag is "{TAG}" of room's partition among n.
func partitionTag(room string, n int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	slot := (2*int(h.Sum32()%uint32(n)) + 1) * clusterSlots / (2 * n)
	for k := 0; ; k++ {
		if s := strconv.Itoa(k); keySlot(s) == slot {
			return "{" + s + "}"
		}
	}
}

// tagSlot is the slot of a "{TAG}" inside a channel or key name.
func tagSlot(name string) (int, bool) {
	_, rest, ok := strings.Cut(name, "{")
	if !ok {
		return 0, false
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return 0, false
	}
	return keySlot(tag), true
}
