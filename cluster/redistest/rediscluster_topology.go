package redistest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id, addr string
	flags    []string
	master   string   // primary's ID for a replica, "-" for a primary
	slots    [][2]int // served slot ranges (importing/migrating entries left out)
}

func (l nodeLine) has(flag string) bool { return slices.Contains(l.flags, flag) }

func (l nodeLine) failing() bool { return l.has("fail") || l.has("fail?") || l.has("noaddr") }

func (l nodeLine) serves(slot int) bool {
	for _, r := range l.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

func (c *Cluster) nodesText(s *Server) string {
	txt, err := s.Client().ClusterNodes(context.Background()).Result()
	if err != nil {
		return err.Error()
	}
	return txt
}

// view parses CLUSTER NODES as s sees it (nil on error).
func (c *Cluster) view(s *Server) []nodeLine {
	txt, err := s.Client().ClusterNodes(context.Background()).Result()
	if err != nil {
		return nil
	}
	var out []nodeLine
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		ln := nodeLine{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
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

// WaitHealthy waits until every running node reports cluster_state:ok with
// all slots served, each shard has exactly one primary that every running
// node names as such, and every running replica is connected to it.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		err := c.healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: cluster not healthy after %v: %v\n%s\n%s", clusterWait, err, c.nodesText(c.anyLive()), c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy() error {
	ctx := context.Background()
	primaries := map[string]string{} // replica ID -> primary ID expected
	var primaryIDs []string
	for i, members := range c.shards {
		var p *Server
		for _, s := range members {
			if c.live(s) && c.role(s) == "master" {
				if p != nil {
					return fmt.Errorf("shard %d has two primaries %s and %s", i, p.Addr(), s.Addr())
				}
				p = s
			}
		}
		if p == nil {
			return fmt.Errorf("shard %d has no primary", i)
		}
		primaryIDs = append(primaryIDs, c.ids[p])
		for _, s := range members {
			if s == p || !c.live(s) {
				continue
			}
			r, err := s.Client().Do(ctx, "ROLE").Slice()
			if err != nil || len(r) < 4 || r[0] != "slave" || fmt.Sprint(r[2]) != strconv.Itoa(p.Port()) || r[3] != "connected" {
				return fmt.Errorf("replica %s of shard %d: ROLE %v %v", s.Addr(), i, r, err)
			}
			primaries[c.ids[s]] = c.ids[p]
		}
	}
	for _, s := range c.nodes {
		if !c.live(s) {
			continue
		}
		info, err := s.Client().ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: %s", s.Addr(), strings.ReplaceAll(info, "\r\n", " "))
		}
		for _, ln := range c.view(s) {
			wantPrimary := slices.Contains(primaryIDs, ln.id)
			if wantPrimary && (!ln.has("master") || ln.failing() || len(ln.slots) == 0) {
				return fmt.Errorf("%s sees primary %s as %v", s.Addr(), ln.addr, ln.flags)
			}
			if p, ok := primaries[ln.id]; ok && (!ln.has("slave") || ln.master != p || ln.failing()) {
				return fmt.Errorf("%s sees replica %s as %v of %s", s.Addr(), ln.addr, ln.flags, ln.master)
			}
		}
	}
	return nil
}

// learnShards records node IDs and which replica belongs to which primary,
// ordering shards by their first slot.
func (c *Cluster) learnShards() {
	c.t.Helper()
	ctx := context.Background()
	byID := map[string]*Server{}
	for _, s := range c.nodes {
		id, err := s.Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			c.t.Fatalf("redistest: CLUSTER MYID on %s: %v", s.Addr(), err)
		}
		c.ids[s] = id
		byID[id] = s
	}
	view := c.waitTopology()
	type shard struct {
		first   int
		members []*Server
	}
	var shards []shard
	for _, ln := range view {
		if !ln.has("master") || len(ln.slots) == 0 {
			continue
		}
		sh := shard{first: ln.slots[0][0], members: []*Server{byID[ln.id]}}
		for _, r := range view {
			if r.master == ln.id {
				sh.members = append(sh.members, byID[r.id])
			}
		}
		shards = append(shards, sh)
	}
	slices.SortFunc(shards, func(a, b shard) int { return a.first - b.first })
	for _, sh := range shards {
		c.shards = append(c.shards, sh.members)
	}
	if len(c.shards) != c.opts.Primaries {
		c.t.Fatalf("redistest: cluster has %d shards, want %d\n%s", len(c.shards), c.opts.Primaries, c.nodesText(c.nodes[0]))
	}
}

// waitTopology waits until every node lists every node, with Primaries
// primaries holding slots and every other node replicating one of them,
// and returns the first node's view.
func (c *Cluster) waitTopology() []nodeLine {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		err := error(nil)
		var first []nodeLine
		for _, s := range c.nodes {
			view := c.view(s)
			primaries, replicas := 0, 0
			for _, ln := range view {
				switch {
				case ln.has("master") && len(ln.slots) > 0:
					primaries++
				case ln.has("slave") && ln.master != "-":
					replicas++
				}
			}
			if len(view) != len(c.nodes) || primaries != c.opts.Primaries || primaries+replicas != len(c.nodes) {
				err = fmt.Errorf("%s knows %d nodes, %d primaries, %d replicas", s.Addr(), len(view), primaries, replicas)
				break
			}
			if first == nil {
				first = view
			}
		}
		if err == nil {
			return first
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: cluster did not form: %v\n%s", err, c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
