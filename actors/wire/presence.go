package wire

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
)

// MaxPresenceMembers bounds the members a presence answer lists; its
// counts are always exact.
const MaxPresenceMembers = 1000

// Presence is who is in a room across the cluster (docs/protocol.md,
// section 7): Users distinct users with Connections connections in all,
// and the members, sorted by user id, at most MaxPresenceMembers of them.
type Presence struct {
	Users       int              `json:"users"`
	Connections int              `json:"connections"`
	Members     []PresenceMember `json:"members"`
}

// PresenceMember is one user in a room and how many of its connections
// are members.
type PresenceMember struct {
	User        string `json:"user_id"`
	Connections int    `json:"connections"`
}

// NewPresence counts members (user -> connections, from every node; the
// same user on several nodes is summed by the caller) into a Presence.
func NewPresence(members map[string]int) Presence {
	p := Presence{Members: make([]PresenceMember, 0, min(len(members), MaxPresenceMembers))}
	all := make([]PresenceMember, 0, len(members))
	for u, n := range members {
		if n <= 0 {
			continue
		}
		p.Users++
		p.Connections += n
		all = append(all, PresenceMember{User: u, Connections: n})
	}
	slices.SortFunc(all, func(a, b PresenceMember) int { return cmp.Compare(a.User, b.User) })
	p.Members = append(p.Members, all[:min(len(all), MaxPresenceMembers)]...)
	return p
}

// PresenceAnswer is the answer to a presence command:
// {"event":"presence","id":ID,"room":R,"users":U,"connections":C,"members":[...]}.
func PresenceAnswer(id json.RawMessage, room string, p Presence) *Event {
	return NewEvent(appendPresence(nil, id, room, p, true))
}

// PresenceJSON is the same object without "event" and "id": what GET
// /api/presence answers.
func PresenceJSON(room string, p Presence) []byte { return appendPresence(nil, nil, room, p, false) }

func appendPresence(b []byte, id json.RawMessage, room string, p Presence, event bool) []byte {
	b = append(b, '{')
	if event {
		b = append(b, `"event":"presence","id":`...)
		if len(id) == 0 {
			id = json.RawMessage("null")
		}
		b = append(b, id...)
		b = append(b, ',')
	}
	b = append(b, `"room":`...)
	b = AppendJSONString(b, room)
	b = append(b, `,"users":`...)
	b = strconv.AppendInt(b, int64(p.Users), 10)
	b = append(b, `,"connections":`...)
	b = strconv.AppendInt(b, int64(p.Connections), 10)
	b = append(b, `,"members":[`...)
	for i, m := range p.Members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"user_id":`...)
		b = AppendJSONString(b, m.User)
		b = append(b, `,"connections":`...)
		b = strconv.AppendInt(b, int64(m.Connections), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
