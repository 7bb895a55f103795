package actors

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every activation scheduled, from many goroutines at once and in bursts
// larger than the queue, runs exactly once, and no worker outlives the work.
func TestSessionDispatcherRunsEveryActivationOnce(t *testing.T) {
	before := runtime.NumGoroutine()
	d := newSessionDispatcher()
	const producers, each = 8, 5000 // 40,000 > sessionQueue: some overflow to goroutines
	var ran atomic.Int64
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d.Schedule(func() { ran.Add(1) })
				if i%1000 == 0 {
					runtime.Gosched() // let workers drain and end between bursts
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < producers*each || d.workers.Load() != 0 || runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("ran %d of %d, %d workers, %d goroutines (before %d)", ran.Load(), producers*each, d.workers.Load(), runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := ran.Load(); n != producers*each {
		t.Fatalf("ran %d activations, want %d", n, producers*each)
	}
}

// An activation scheduled while the workers are finishing is not stranded:
// one activation at a time, each waited for, many times over.
func TestSessionDispatcherNoStrandedActivation(t *testing.T) {
	d := newSessionDispatcher()
	done := make(chan struct{}, 1)
	for i := 0; i < 20000; i++ {
		d.Schedule(func() { done <- struct{}{} })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("activation %d never ran (%d workers, %d queued)", i, d.workers.Load(), len(d.work))
		}
	}
}
