package transport

import (
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// This file decides what ids clients may have. Ids are shown to other users
// (from, user_id), and direct messages are addressed by them: one client
// must never get another's id, nor one that looks like it.

// GuestPrefix starts the id of every client that connects without a token
// to a node that verifies tokens (Config.AllowAnonymous). Verify refuses a
// token whose sub starts with it, so guests and token holders live in
// separate namespaces: a guest can never receive or send as a user.
const GuestPrefix = "guest:"

// maxGuestName is how long the client_id of a guest may be: the id with
// its prefix is a user id of at most MaxUserIDLen bytes.
const maxGuestName = MaxUserIDLen - len(GuestPrefix)

// ValidUserID reports whether id may name a user: 1-128 bytes of valid
// UTF-8, without control characters (they carry terminal and log escape
// sequences), format characters (Unicode Cf: bidi overrides and isolates,
// zero-width spaces and joiners, soft hyphens, tags, which can make an id
// render as another), U+FFFD (what a decoder leaves for bytes it could not
// read), line or paragraph separators, or a space at either end.
func ValidUserID(id string) bool {
	if id == "" || len(id) > MaxUserIDLen || !utf8.ValidString(id) {
		return false
	}
	first, _ := utf8.DecodeRuneInString(id)
	last, _ := utf8.DecodeLastRuneInString(id)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// anonymous names a client that came without a token.
//
//   - No authenticator: every client is anonymous and its id is its
//     client_id (or a random one), as in the tutorial: it proves nothing.
//   - An authenticator, AllowAnonymous off: refused (401), so that nobody
//     without a token can take the id of a user who has one.
//   - An authenticator, AllowAnonymous on: a guest, whose id is
//     GuestPrefix + client_id (a client_id already spelled with the prefix
//     keeps it, so a page that reconnects with its welcome id stays the same
//     guest), or GuestPrefix + a random id.
func (s *Server) anonymous(clientID string) (port.SessionOptions, *refusal) {
	switch {
	case s.cfg.Auth == nil:
		if clientID == "" {
			clientID = port.RandomID(9)
		}
		if !ValidUserID(clientID) {
			return port.SessionOptions{}, &refusal{http.StatusBadRequest, "client_id must be 1-128 bytes of text", "client_id"}
		}
		return port.SessionOptions{User: clientID}, nil
	case !s.cfg.AllowAnonymous:
		return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "token required", "auth"}
	}
	if clientID == "" {
		return port.SessionOptions{User: GuestPrefix + port.RandomID(9)}, nil
	}
	name := strings.TrimPrefix(clientID, GuestPrefix)
	if len(name) > maxGuestName || !ValidUserID(name) {
		return port.SessionOptions{}, &refusal{http.StatusBadRequest,
			"client_id must be 1-" + strconv.Itoa(maxGuestName) + " bytes of text", "client_id"}
	}
	return port.SessionOptions{User: GuestPrefix + name}, nil
}

// connectionEvents reads ?connection_events=all|off (docs/protocol.md,
// section 8): off means the client does not want user_connected and
// user_disconnected. Another value is refused before the upgrade.
func connectionEvents(r *http.Request) (off bool, no *refusal) {
	switch r.URL.Query().Get("connection_events") {
	case "", "all":
		return false, nil
	case "off":
		return true, nil
	}
	return false, &refusal{http.StatusBadRequest, "connection_events must be all or off", "handshake"}
}
