package port

import (
	"sync"
	"testing"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	for _, v := range []int64{-5, 0, 1, 2, 3, 4, 5, 1024, 1025, 1 << 40} {
		h.Observe(v)
	}
	s := h.Snapshot()
	want := map[int]uint64{
		0:                3, // -5 (as 0), 0, 1
		1:                1, // 2
		2:                2, // 3, 4
		3:                1, // 5
		10:               1, // 1024
		11:               1, // 1025
		HistogramBuckets: 1, // 2^40: beyond every finite bucket
	}
	for i, n := range s.Counts {
		if n != want[i] {
			t.Errorf("bucket %d: %d values, want %d", i, n, want[i])
		}
	}
	if s.Count != 10 {
		t.Errorf("count %d, want 10", s.Count)
	}
	if wantSum := int64(0 + 0 + 1 + 2 + 3 + 4 + 5 + 1024 + 1025 + 1<<40); s.Sum != wantSum {
		t.Errorf("sum %d, want %d", s.Sum, wantSum)
	}
}

func TestHistogramConcurrentObservers(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < 1000; i++ {
				h.Observe(i)
			}
		}()
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 4000 || s.Sum != 4*999*1000/2 {
		t.Fatalf("count %d sum %d, want 4000 and %d", s.Count, s.Sum, 4*999*1000/2)
	}
}
