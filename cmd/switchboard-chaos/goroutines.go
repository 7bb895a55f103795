package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// goroutineProfile counts a node's goroutines by stack (function names
// only), from /debug/pprof/goroutine?debug=1.
type goroutineProfile map[string]int

// ignoredStacks mark goroutines whose number is not a leak signal: those a
// node parks for reuse in a bounded pool (their number follows the peak
// load, not the live connections), and net/http's watcher of the very
// connection the profile is requested on (there or not, by timing; before
// it first runs, its record has no frame at all, and is skipped too).
var ignoredStacks = []string{"(*workerDispatcher).run", "(*connReader).backgroundRead"}

func (n *nodeProc) goroutines() (goroutineProfile, error) {
	resp, err := n.http.Get(n.adminBase() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("goroutine profile of %s: %d", n.nodeID(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	prof := goroutineProfile{}
	for _, block := range strings.Split(string(body), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if strings.HasPrefix(lines[0], "goroutine profile:") {
			lines = lines[1:] // the header shares the first block
		}
		var count int
		if len(lines) == 0 {
			continue
		}
		if _, err := fmt.Sscanf(lines[0], "%d @", &count); err != nil {
			continue
		}
		var funcs []string
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" {
				name := f[2]
				if i := strings.LastIndex(name, "+0x"); i > 0 {
					name = name[:i]
				}
				funcs = append(funcs, name)
			}
		}
		if len(funcs) == 0 {
			continue // created and not yet run: nothing to judge
		}
		sig := strings.Join(funcs, " < ")
		ignored := false
		for _, p := range ignoredStacks {
			ignored = ignored || strings.Contains(sig, p)
		}
		if !ignored {
			prof[sig] += count
		}
	}
	prof.allow(sentinelClientStacks, sentinelClients)
	return prof, nil
}

// sentinelClients is how many go-redis Sentinel clients a node's broker
// keeps behind Redis Sentinel: its outbox writer's, its presence's and its
// history reader's. Each, once it has dialed, keeps a subscription to its
// sentinel's +switch-master channel: a listener, the subscription's reader
// and its health check (sentinelClientStacks). The history reader dials at
// the first read, after the empty baseline, so up to sentinelClients of
// each are not a leak signal; one more is.
const sentinelClients = 3

var sentinelClientStacks = []string{"(*sentinelFailover).listen", "(*channel).initMsgChan", "(*channel).initHealthCheck"}

// allow removes up to n goroutines whose stack contains each of patterns.
func (p goroutineProfile) allow(patterns []string, n int) {
	sigs := make([]string, 0, len(p))
	for sig := range p {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	for _, pat := range patterns {
		left := n
		for _, sig := range sigs {
			if left == 0 {
				break
			}
			if !strings.Contains(sig, pat) {
				continue
			}
			k := min(left, p[sig])
			left -= k
			if p[sig] -= k; p[sig] == 0 {
				delete(p, sig)
			}
		}
	}
}

func (p goroutineProfile) total() int {
	n := 0
	for _, c := range p {
		n += c
	}
	return n
}

// grown describes the stacks that have more goroutines than in base.
func (p goroutineProfile) grown(base goroutineProfile) string {
	var out []string
	for sig, c := range p {
		if c > base[sig] {
			out = append(out, fmt.Sprintf("+%d %s", c-base[sig], shortStack(sig)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// shortStack keeps the first frames of a signature that are not the
// runtime's own.
func shortStack(sig string) string {
	var keep []string
	for _, f := range strings.Split(sig, " < ") {
		if strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "internal/") {
			continue
		}
		if keep = append(keep, f); len(keep) == 3 {
			break
		}
	}
	return strings.Join(keep, " < ")
}
