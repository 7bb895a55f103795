package redis

import (
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Redis Cluster mode (Config.ClusterAddrs). A command, a script and a
// MULTI/EXEC may only touch keys of one hash slot, and a sharded channel
// (SSUBSCRIBE, SPUBLISH) lives on the shard that owns its slot. So the
// names are grouped by hash tag:
//
//   - rooms map to Config.Partitions partitions, by a hash of the room
//     name. Partition i has a hash tag whose slot is the middle of the i-th
//     of Partitions equal ranges of the 16384 slots, so that any split of
//     the slots into contiguous ranges (what redis-cli --cluster create
//     does, and rebalancing keeps) gives each shard a share of the
//     partitions in proportion to its slots. A room's stream keys and
//     presence shares carry its partition's tag, and its traffic is
//     SPUBLISHed on the partition's channel, PREFIX:part:{TAG}, in a
//     routed frame (wire.RoutedHeader) naming the room channel: the script
//     that numbers, stores and publishes a room publication runs on one
//     slot, and a receiving node routes each message to its room without
//     decoding it;
//   - everything that is not a room's (the presence directory, the
//     broadcast channel, the nodes' direct channels, the probes of the
//     connection that carries them) is under one tag, {PREFIX}: the
//     direct-message script reads the directory and publishes in one slot,
//     as does the reaper, and a sender's chat and direct messages keep
//     their order on one connection. That shard carries the hub's traffic
//     (per connect, disconnect, chat and direct message); rooms spread.
//
// Each partition has a pub/sub connection of its own (connection 1+i) that
// SSUBSCRIBEs its channel while a local room of the partition has members,
// and its probe channel, PREFIX:probe:NODE:{TAG}, always: a slot that moves
// (Redis then sends sunsubscribe for its channels), a primary that fails
// over or a shard that stops answering ends the connection, and the next
// one dials the slot's primary as the cluster names it then.

// slots is the number of hash slots of a Redis Cluster.
const slots = 16384

// defaultPartitions is Config.Partitions' zero value: 3 to 16 shards each
// get 8 to 43 partitions, within 1.2 of the mean (TestPartitionSpread).
const defaultPartitions = 128

// keySlot is the hash slot of key: CRC16 (XMODEM) of its hash tag (the
// part between the first '{' and the next '}', if not empty) or of the
// whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % slots)
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

var (
	slotTagsOnce sync.Once
	slotTags     []string // slotTags[s]: the shortest decimal number whose slot is s
)

// tagForSlot returns a hash tag whose slot is slot: the smallest decimal
// number that hashes there, the same on every node.
func tagForSlot(slot int) string {
	slotTagsOnce.Do(func() {
		slotTags = make([]string, slots)
		for n, left := 0, slots; left > 0; n++ {
			s := strconv.Itoa(n)
			if i := keySlot(s); slotTags[i] == "" {
				slotTags[i] = s
				left--
			}
		}
	})
	return slotTags[slot]
}

// partitionTags returns the hash tags of n partitions, "{TAG}" each.
func partitionTags(n int) []string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = "{" + tagForSlot((2*i+1)*slots/(2*n)) + "}"
	}
	return tags
}

// partOf returns the partition of room.
func (k *keyspace) partOf(room string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	return int(h.Sum32() % uint32(len(k.parts)))
}

// roomTag is what a room's keys carry after PREFIX:KIND: "" on one Redis,
// "{TAG}:" of its partition on a cluster.
func (k *keyspace) roomTag(room string) string {
	if !k.cluster {
		return ""
	}
	return k.parts[k.partOf(room)] + ":"
}

// partChannel is partition i's channel.
func (k *keyspace) partChannel(i int) string { return k.prefix + ":part:" + k.parts[i] }

// wireChannel is the Redis channel that carries the broker channel ch
// (broadcast, a node's, a room's): ch itself on one Redis.
func (k *keyspace) wireChannel(ch string) string {
	if !k.cluster {
		return ch
	}
	if room, ok := strings.CutPrefix(ch, k.prefix+":room:"); ok {
		return k.partChannel(k.partOf(room))
	}
	if rest, ok := strings.CutPrefix(ch, k.prefix+":"); ok {
		return k.hub + ":" + rest
	}
	return ch
}

// brokerChannel is the broker channel a hub connection's Redis channel
// carries (the inverse of wireChannel for the hub's channels).
func (k *keyspace) brokerChannel(wire string) string {
	if rest, ok := strings.CutPrefix(wire, k.hub+":"); ok && k.cluster {
		return k.prefix + ":" + rest
	}
	return wire
}

// framed is data as published on ch's Redis channel: in a routed frame
// naming ch when that channel is a partition's.
func (k *keyspace) framed(ch string, data []byte) []byte {
	if !k.cluster || !strings.HasPrefix(ch, k.prefix+":room:") {
		return data
	}
	h := wire.RoutedHeader(ch)
	out := make([]byte, 0, len(h)+len(data))
	return append(append(out, h...), data...)
}

// publishCommand is the command that publishes on the broker's channels:
// SPUBLISH (sharded) on a cluster.
func (k *keyspace) publishCommand() string {
	if k.cluster {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// connIndex is the pub/sub connection that carries the broker channel ch
// on a cluster: 1+i for a room of partition i, 0 for the hub's channels.
func (k *keyspace) connIndex(ch string) int {
	if room, ok := strings.CutPrefix(ch, k.prefix+":room:"); ok {
		return 1 + k.partOf(room)
	}
	return 0
}
