package redis

import (
	"strconv"
	"strings"

	"github.com/switchboard-rt/switchboard/actors"
)

// Message ids make a resend harmless. Redis discards what it had not yet
// written to a subscriber connection it closes (CLIENT KILL, a crash), even
// though PUBLISH already counted that subscriber: the publisher cannot tell
// those messages from delivered ones. So when a node notices such a fault,
// its outbox sends again what it published just before (see
// Config.ResendWindow), and each envelope carries a "msg_id" (PROTOCOL.md
// section 5 allows it) with which a receiving subscription drops the copies
// it already had.
//
// The id is ORIGIN:SEQ, appended as the envelope's last member: ORIGIN is the
// node id and a random incarnation (a restarted node starts a new sequence),
// SEQ counts the node's publishes in the order they are queued. One origin's
// envelopes on one channel reach a subscriber in SEQ order, and a fault cuts
// that stream at some point: what came before it arrived, what came after
// did not. A subscription therefore keeps, per origin, the highest SEQ seen,
// and drops anything at or below it.

// msgIDKey is the member that carries the id.
const msgIDKey = `,"msg_id":`

// msgIDPrefix returns `,"msg_id":"ORIGIN:` with ORIGIN JSON-escaped.
func msgIDPrefix(origin string) string {
	quoted := actors.AppendJSONString(nil, origin)
	return msgIDKey + string(quoted[:len(quoted)-1]) + ":"
}

// withMsgID returns a copy of the envelope data with `"msg_id":"ORIGIN:SEQ"`
// as its last member; data that does not end its object is returned as is.
func withMsgID(data []byte, prefix string, seq uint64) []byte {
	if len(data) < 2 || data[len(data)-1] != '}' {
		return data
	}
	out := make([]byte, 0, len(data)+len(prefix)+22)
	out = append(out, data[:len(data)-1]...)
	out = append(out, prefix...)
	out = strconv.AppendUint(out, seq, 10)
	return append(out, '"', '}')
}

// parseMsgID finds the id withMsgID appended. Envelopes from anyone else
// (tutorial nodes, backends) have none, or not in that place: ok is false
// and they are delivered as they are.
func parseMsgID(data string) (origin string, seq uint64, ok bool) {
	if !strings.HasSuffix(data, `"}`) {
		return "", 0, false
	}
	i := strings.LastIndex(data, msgIDKey+`"`)
	if i < 0 {
		return "", 0, false
	}
	id := data[i+len(msgIDKey)+1 : len(data)-2]
	if strings.ContainsAny(id, `"\`) {
		return "", 0, false
	}
	j := strings.LastIndexByte(id, ':')
	if j < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[j+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:j], seq, true
}
