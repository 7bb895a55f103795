package redis

// RoomSlot is the hash slot of room's partition on a cluster, and the
// Redis channel that carries the room, for tests that move that slot.
func (r *Broker) RoomSlot(room string) (slot int, channel string) {
	ch := r.keys.wireChannel(r.keys.prefix + ":room:" + room)
	return keySlot(ch), ch
}
