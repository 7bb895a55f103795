package main

import "testing"

// TestClusterKeyLayout pins the suite's copy of the cluster key layout
// (cluster/redis/partition.go, docs/operations.md): the slot of a tag is
// CRC16/XMODEM mod 16384 (Redis' cluster spec gives 12739 for
// "123456789"), and a partition's tag lands in the middle of its range of
// slots.
func TestClusterKeyLayout(t *testing.T) {
	if got := keySlot("123456789"); got != 12739 {
		t.Errorf("keySlot(123456789) = %d, want 12739", got)
	}
	for _, room := range []string{"lobby", "r0", "r5", "chaos-room-3"} {
		tag := partitionTag(room, clusterPartitions)
		slot, ok := tagSlot("p:part:" + tag)
		if !ok {
			t.Fatalf("%s: no tag in %q", room, tag)
		}
		width := clusterSlots / clusterPartitions
		if slot%width != width/2 {
			t.Errorf("%s: tag %s in slot %d, not the middle of a range of %d", room, tag, slot, width)
		}
	}
	if _, ok := tagSlot("p:room:lobby"); ok {
		t.Error("tagSlot found a tag in a name without braces")
	}
}
