package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in microseconds into log-linear buckets: exact
// below 64 us, then 32 buckets per power of two (about 3 % wide). Record is
// safe from any goroutine (one atomic add), so every client's read loop
// records into the same histogram without a lock.
type histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Uint64 // microseconds
}

const (
	histLinear  = 64
	histSub     = 32
	histBuckets = histLinear + 40*histSub
)

func histIndex(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	e := bits.Len64(us) - 6 // us>>e is in [32, 64)
	i := histLinear + (e-1)*histSub + int(us>>uint(e)) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histValue is the middle of bucket i, in microseconds.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	e := (i-histLinear)/histSub + 1
	m := uint64((i-histLinear)%histSub + histSub)
	return m<<uint(e) + (uint64(1)<<uint(e))/2
}

// Record adds one duration; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.buckets[histIndex(us)].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *histogram) Count() uint64 { return h.count.Load() }

// Quantile returns the q-quantile (0 < q <= 1) in milliseconds; 0 when empty.
func (h *histogram) Quantile(q float64) float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			v := histValue(i)
			if m := h.max.Load(); v > m {
				v = m
			}
			return float64(v) / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// Max is the largest value recorded, in milliseconds.
func (h *histogram) Max() float64 { return float64(h.max.Load()) / 1000 }

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   uint64  `json:"samples"`
}

// Summary condenses the histogram.
func (h *histogram) Summary() Latency {
	return Latency{P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), Max: h.Max(), N: h.Count()}
}

// histSnapshot is a histogram in transit between a load process and the
// parent that merges it: the non-empty buckets as [index, count] pairs.
type histSnapshot struct {
	Buckets [][2]uint64 `json:"buckets"`
	MaxUS   uint64      `json:"max_us"`
}

// Snapshot copies the histogram for merging elsewhere.
func (h *histogram) Snapshot() *histSnapshot {
	s := &histSnapshot{MaxUS: h.max.Load()}
	for i := range h.buckets {
		if n := h.buckets[i].Load(); n > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), n})
		}
	}
	return s
}

// Merge adds a snapshot taken from another histogram; buckets out of range
// (a snapshot from another build) are ignored.
func (h *histogram) Merge(s *histSnapshot) {
	if s == nil {
		return
	}
	for _, b := range s.Buckets {
		if b[0] < histBuckets {
			h.buckets[b[0]].Add(b[1])
			h.count.Add(b[1])
		}
	}
	for {
		m := h.max.Load()
		if s.MaxUS <= m || h.max.CompareAndSwap(m, s.MaxUS) {
			return
		}
	}
}
