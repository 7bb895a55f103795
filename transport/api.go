package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// PublishPath is where PublishAPI is usually mounted.
const PublishPath = "/api/publish"

// publishTimeout bounds one publish: the broker hand-off and the local
// fan-out's count. A backend waiting longer than this has a node in trouble.
const publishTimeout = 5 * time.Second

// PublishRequest is the body of POST /api/publish. Exactly one target is
// named: Room, User or Broadcast. Payload reaches every recipient byte for
// byte (compacted); it must be a JSON object with a string "event" field.
type PublishRequest struct {
	Room      string          `json:"room,omitempty"`
	User      string          `json:"user,omitempty"`
	Broadcast bool            `json:"broadcast,omitempty"`
	Payload   json.RawMessage `json:"payload"`
}

// PublishReply is the answer to a publish: how many connections on this node
// were handed the event, and whether the broker took it for the other
// nodes. An error reply has Error set (a protocol error code) and Message.
type PublishReply struct {
	*port.PublishResult
	Error   wire.ErrorCode `json:"error,omitempty"`
	Message string         `json:"message,omitempty"`
}

// Publish API error codes beyond the WebSocket protocol's own.
const (
	codeUnauthorized wire.ErrorCode = "unauthorized"
	codeTooLarge     wire.ErrorCode = "too_large"
	codeNotFound     wire.ErrorCode = "not_found"
	codeMethod       wire.ErrorCode = "method_not_allowed"
)

// PublishAPI returns the handler of POST /api/publish, the way a backend
// without a WebSocket pushes events to rooms, users or everyone, on every
// node. Callers authenticate with "Authorization: Bearer KEY". With an empty
// key the endpoint is off and answers 404, so mounting it is always safe.
//
// Input is checked as strictly as a client frame: the same body size limit
// (Config.MaxMessageBytes), the same room name rules, the same payload rule.
func (s *Server) PublishAPI(key string) http.Handler {
	// Comparing fixed-size digests keeps the comparison constant-time
	// whatever the lengths of the configured and the offered key.
	want := sha256.Sum256([]byte(key))
	return &publishAPI{srv: s, enabled: key != "", want: want}
}

type publishAPI struct {
	srv     *Server
	enabled bool
	want    [sha256.Size]byte
}

// admit answers a request that is not for the API (off, wrong method, no
// or a wrong key) and reports whether it may go on.
func (a *publishAPI) admit(w http.ResponseWriter, r *http.Request, name, method string) bool {
	switch {
	case !a.enabled:
		writeJSON(w, http.StatusNotFound, PublishReply{Error: codeNotFound, Message: "the " + name + " API is off on this node (no API key configured)"})
	case r.Method != method:
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, PublishReply{Error: codeMethod, Message: "use " + method})
	case !a.authorized(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-api"`)
		writeJSON(w, http.StatusUnauthorized, PublishReply{Error: codeUnauthorized, Message: "missing or wrong API key"})
	default:
		return true
	}
	return false
}

func (a *publishAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.admit(w, r, "publish", http.MethodPost) {
		return
	}
	req, status, reply := a.decode(w, r)
	if status != 0 {
		writeJSON(w, status, reply)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	var res port.PublishResult
	var err error
	kind := "broadcast"
	switch {
	case req.Room != "":
		kind = "room"
		res, err = a.srv.node.PublishRoom(ctx, req.Room, req.Payload)
	case req.User != "":
		kind = "user"
		res, err = a.srv.node.PublishUser(ctx, req.User, req.Payload)
	default:
		res, err = a.srv.node.Broadcast(ctx, req.Payload)
	}
	a.srv.metrics.apiPublishes.WithLabelValues(kind).Inc()
	switch {
	case errors.Is(err, port.ErrInvalidRoom):
		writeJSON(w, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidRoom, Message: "room names are 1-128 characters of A-Z a-z 0-9 _ - . : @"})
	case errors.Is(err, port.ErrInvalidUser):
		writeJSON(w, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidMessage, Message: "user must be 1-128 characters"})
	case errors.Is(err, port.ErrInvalidPayload):
		writeJSON(w, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidMessage, Message: "payload must be a JSON object with a string \"event\" field"})
	case err != nil:
		a.srv.log.Warn("api publish failed", "target", kind, port.KeyErr, err)
		writeJSON(w, http.StatusServiceUnavailable, PublishReply{PublishResult: &res, Error: wire.CodeUnavailable, Message: "the node could not complete the publish; try again"})
	case !res.Broker:
		// Local recipients already have the event: a retry reaches them twice.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, PublishReply{PublishResult: &res, Error: wire.CodeUnavailable,
			Message: "message broker unavailable: other nodes were not reached; local recipients were"})
	default:
		writeJSON(w, http.StatusOK, PublishReply{PublishResult: &res})
	}
}

func (a *publishAPI) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
	return subtle.ConstantTimeCompare(got[:], a.want[:]) == 1
}

// decode reads and checks the body. A non-zero status is the refusal.
func (a *publishAPI) decode(w http.ResponseWriter, r *http.Request) (*PublishRequest, int, PublishReply) {
	limit := int64(a.srv.cfg.MaxMessageBytes)
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, PublishReply{Error: codeTooLarge, Message: "body larger than the node's max message size"}
		}
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidJSON, Message: "could not read the body"}
	}
	var req PublishRequest
	dec := json.NewDecoder(&buf)
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidJSON, Message: "body must be one JSON object"}
	}
	targets := 0
	for _, named := range []bool{req.Room != "", req.User != "", req.Broadcast} {
		if named {
			targets++
		}
	}
	if targets != 1 {
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidMessage, Message: `name exactly one target: "room", "user" or "broadcast": true`}
	}
	if req.Room != "" && !wire.ValidRoomName(req.Room) {
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidRoom, Message: "room names are 1-128 characters of A-Z a-z 0-9 _ - . : @"}
	}
	if len(req.User) > 128 {
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidMessage, Message: "user must be 1-128 characters"}
	}
	if len(req.Payload) == 0 {
		return nil, http.StatusBadRequest, PublishReply{Error: wire.CodeInvalidMessage, Message: `"payload" is required`}
	}
	return &req, 0, PublishReply{}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
