package main

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors"
)

// The operator kill switch. With --enable-kill (off by default) a node serves
//
//	GET  /debug/actors                          the live actors by kind
//	POST /debug/kill?id=ACTOR_ID[&mode=stop|panic]
//
// on the admin listener (--admin-addr, loopback by default; see admin.go),
// so that a chaos suite (cmd/switchboard-chaos) or an operator can aim at a
// named actor and watch supervision deal with it, on the production binary.
// Without the flag neither route exists (404), and the public listener never
// serves them. Anyone who can reach the admin port can kill sessions, so keep
// it to test clusters.

// debugQueryTimeout bounds each actor query made by /debug/actors. The
// queries run on the HTTP handler's goroutine, never inside an actor.
const debugQueryTimeout = 2 * time.Second

// debugActors is the /debug/actors document. Ids are the ones /debug/kill
// takes. Lists are sorted so that two snapshots compare line by line.
type debugActors struct {
	Node string `json:"node"`
	Hub  string `json:"hub"`
	// Sessions and Rooms are the hub's directory, with each room's members
	// as the room itself reports them.
	Sessions []debugSession `json:"sessions"`
	Rooms    []debugRoom    `json:"rooms"`
	// Actors is every live actor of the node by kind, read from the actor
	// registry rather than from any actor's bookkeeping: session, room, hub,
	// and whatever the broker runs (with Redis: redis, conn for pub/sub
	// connections, sub for channel subscriptions). Futures are left out.
	Actors map[string][]string `json:"actors"`
	// Counts is len(Actors[kind]) for each kind.
	Counts map[string]int `json:"counts"`
}

type debugSession struct {
	ID   string `json:"id"`
	User string `json:"user"`
}

type debugRoom struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"` // session actor ids, as the room sees them
	// Error is set when the room did not answer in time (it may have stopped
	// between the directory snapshot and the query).
	Error string `json:"error,omitempty"`
}

// mountDebug adds /debug/actors and /debug/kill to the admin listener's mux.
func mountDebug(mux *http.ServeMux, node *actors.Node, log *slog.Logger) {
	log.Warn("actor kill switch enabled: POST /debug/kill on the admin listener stops or crashes any actor")
	mux.Handle("GET /debug/actors", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, err := listActors(node)
		if err != nil {
			writeDebugJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeDebugJSON(w, http.StatusOK, doc)
	}))
	mux.Handle("POST /debug/kill", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		mode := r.URL.Query().Get("mode")
		if mode == "" {
			mode = "stop"
		}
		switch {
		case id == "":
			writeDebugJSON(w, http.StatusBadRequest, map[string]string{"error": "id is required"})
			return
		case mode != "stop" && mode != "panic":
			writeDebugJSON(w, http.StatusBadRequest, map[string]string{"error": "mode must be stop or panic"})
			return
		case mode == "stop" && !strings.Contains(id, "/") && actorKind(id) != "session" && actorKind(id) != "room":
			// Root actors other than sessions and rooms (the hub, the
			// broker's bus) live as long as the node; stopping one would
			// leave a process that accepts sockets and routes nothing.
			writeDebugJSON(w, http.StatusConflict, map[string]string{"error": "a root actor lives as long as the node; crash it (mode=panic) or stop the process"})
			return
		}
		// Only actors: the registry also holds processes without a
		// mailbox (guardians, dead letters, futures) that must not be sent
		// a crash.
		if p, ok := node.System().ProcessRegistry.GetLocal(id); !ok {
			writeDebugJSON(w, http.StatusNotFound, map[string]string{"error": "no live actor with that id"})
			return
		} else if _, isActor := p.(*actor.ActorProcess); !isActor {
			writeDebugJSON(w, http.StatusConflict, map[string]string{"error": "not an actor"})
			return
		}
		if !node.Kill(id, mode == "panic") {
			writeDebugJSON(w, http.StatusNotFound, map[string]string{"error": "no live actor with that id"})
			return
		}
		log.Info("actor killed from outside", actors.KeyActor, id, "mode", mode, "remote", r.RemoteAddr)
		writeDebugJSON(w, http.StatusOK, map[string]string{"id": id, "mode": mode})
	}))
}

// listActors asks the hub for its directory, then every room for its
// members.
func listActors(node *actors.Node) (*debugActors, error) {
	root := node.System().Root
	res, err := root.RequestFuture(node.Hub(), &actors.DirectoryQuery{}, debugQueryTimeout).Result()
	if err != nil {
		return nil, err
	}
	dir := res.(*actors.Directory)
	doc := &debugActors{
		Node:     node.ID(),
		Hub:      node.Hub().Id,
		Sessions: make([]debugSession, 0, len(dir.Sessions)),
		Rooms:    make([]debugRoom, 0, len(dir.Rooms)),
	}
	for id, user := range dir.Sessions {
		doc.Sessions = append(doc.Sessions, debugSession{ID: id, User: user})
	}
	slices.SortFunc(doc.Sessions, func(a, b debugSession) int { return cmp.Compare(a.ID, b.ID) })
	for name, id := range dir.Rooms {
		room := debugRoom{ID: id, Name: name, Members: []string{}}
		res, err := root.RequestFuture(node.System().NewLocalPID(id), &actors.RoomQuery{}, debugQueryTimeout).Result()
		if rm, ok := res.(*actors.RoomMembers); ok && err == nil {
			room.Members = append(room.Members, rm.Members...)
			slices.Sort(room.Members)
		} else {
			room.Error = "room did not answer"
		}
		doc.Rooms = append(doc.Rooms, room)
	}
	slices.SortFunc(doc.Rooms, func(a, b debugRoom) int { return cmp.Compare(a.Name, b.Name) })
	doc.Actors = liveActors(node)
	doc.Counts = make(map[string]int, len(doc.Actors))
	for kind, ids := range doc.Actors {
		doc.Counts[kind] = len(ids)
	}
	return doc, nil
}

// liveActors lists every actor registered in the node's actor system, by
// kind, futures aside.
func liveActors(node *actors.Node) map[string][]string {
	out := map[string][]string{}
	for _, bucket := range node.System().ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, id := range bucket.Keys() {
			if kind := actorKind(id); kind != "future" {
				out[kind] = append(out[kind], id)
			}
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// actorKind is an actor id's last path element up to its first '-', '$',
// ':' or '#': "room-$4" is a room, "session-$9" a session,
// "redis-n1/sub:PREFIX:room:r1#$3" a sub.
func actorKind(id string) string {
	last := id[strings.LastIndexByte(id, '/')+1:]
	if i := strings.IndexAny(last, "-$:#"); i > 0 {
		return last[:i]
	} else if i == 0 {
		return "anonymous"
	}
	return last
}

func writeDebugJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
