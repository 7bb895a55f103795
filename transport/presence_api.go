package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// PresencePath is where PresenceAPI is usually mounted.
const PresencePath = "/api/presence"

// PresenceAPI returns the handler of GET /api/presence?room=R: who is in
// the room across the cluster (docs/protocol.md, section 7), answered as
// {"room":R,"users":U,"connections":C,"members":[...]}. Callers
// authenticate as for the publish API; with an empty key the endpoint is
// off and answers 404.
func (s *Server) PresenceAPI(key string) http.Handler {
	return &presenceAPI{publishAPI{srv: s, enabled: key != "", want: sha256.Sum256([]byte(key))}}
}

type presenceAPI struct{ publishAPI }

func (a *presenceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.admit(w, r, "presence", http.MethodGet) {
		return
	}
	room := r.URL.Query().Get("room")
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	p, err := a.srv.node.Presence(ctx, room)
	switch {
	case errors.Is(err, port.ErrInvalidRoom):
		writeJSON(w, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidRoom, Message: "room names are 1-128 characters of A-Z a-z 0-9 _ - . : @"})
	case err != nil:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, PublishReply{Error: wire.CodeUnavailable, Message: "message broker unavailable; try again"})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(wire.PresenceJSON(room, p), '\n'))
	}
}
