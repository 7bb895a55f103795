package port

import (
	"testing"
	"time"
)

func TestTokenBucketBurstThenRate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := NewTokenBucket(10, 3, t0)
	for i := range 3 {
		if !b.Allow(t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.Allow(t0) {
		t.Fatal("a fourth event at the same instant was allowed past a burst of 3")
	}
	// 10 per second: one token every 100 ms.
	if b.Allow(t0.Add(50 * time.Millisecond)) {
		t.Fatal("allowed after half a refill period")
	}
	if !b.Allow(t0.Add(100 * time.Millisecond)) {
		t.Fatal("refused after a full refill period")
	}
	// A long pause refills to the burst, never beyond.
	t1 := t0.Add(time.Hour)
	allowed := 0
	for b.Allow(t1) {
		allowed++
		if allowed > 10 {
			break
		}
	}
	if allowed != 3 {
		t.Fatalf("after a long pause %d events were allowed, want the burst of 3", allowed)
	}
}

func TestTokenBucketUnlimitedAndDegenerate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	u := NewTokenBucket(-1, 0, t0)
	for range 10_000 {
		if !u.Allow(t0) {
			t.Fatal("a negative rate must allow everything")
		}
	}
	z := NewTokenBucket(5, 0, t0)
	if !z.Allow(t0) {
		t.Fatal("burst 0 is raised to 1: the first event must pass")
	}
	if z.Allow(t0) {
		t.Fatal("burst 0 is raised to 1: the second event at the same instant must not pass")
	}
}

func TestTokenBucketClockBackwards(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := NewTokenBucket(1, 1, t0)
	if !b.Allow(t0) {
		t.Fatal("first event refused")
	}
	// A clock step back must not mint tokens, and must not poison later refills.
	if b.Allow(t0.Add(-time.Hour)) {
		t.Fatal("a clock going backwards minted a token")
	}
	if !b.Allow(t0.Add(time.Second)) {
		t.Fatal("refill after the clock came back failed")
	}
}
