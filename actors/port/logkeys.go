package port

// Structured log keys, shared by the core and its edges so that one query
// finds a session's or a user's lines whichever package wrote them.
const (
	KeyActor   = "actor"
	KeySession = "session"
	KeyUser    = "user"
	KeyRoom    = "room"
	KeyNode    = "node"
	KeyErr     = "err"
)
