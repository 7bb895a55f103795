package transport_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// A Go program embeds a node: it starts the actor system with a broker,
// mounts the router on its own mux next to its own routes, and publishes to
// rooms and users from its own code.
func Example_embedding() {
	node, err := actors.NewNode(actors.Config{Broker: cluster.NewInProc(), NodeID: "embedded"})
	if err != nil {
		panic(err)
	}
	router, err := transport.New(node, transport.Config{})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/realtime/", http.StripPrefix("/realtime", router)) // /realtime/ws, /realtime/stats, ...
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "my own route") })

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := router.NewHTTPServer(ln.Addr().String())
	hs.Handler = mux
	go hs.Serve(ln)

	// A client joins a room...
	c, err := wsclient.Dial("ws://"+ln.Addr().String()+"/realtime/ws?client_id=ada", wsclient.Options{})
	if err != nil {
		panic(err)
	}
	welcome, _ := c.Next(5 * time.Second)
	fmt.Println(welcome.Event, welcome.Client, welcome.Node)
	_ = c.SendJSON(map[string]any{"type": "join_room", "room": "news", "id": "j1"})
	_, _ = c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "ack" })

	// ...and the program publishes to the room and to the user directly.
	ctx := context.Background()
	res, _ := node.PublishRoom(ctx, "news", []byte(`{"event":"headline","text":"Switchboard embedded"}`))
	ev, _ := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "headline" })
	// A room publication has its place in the room's stream, for clients
	// that come back later (docs/protocol.md, section 6).
	fmt.Println(ev.Event, "offset", ev.Offset, "same epoch:", ev.Epoch == res.Epoch, "broker accepted:", res.Broker, "offset", res.Offset)
	_, _ = node.PublishUser(ctx, "ada", []byte(`{"event":"notice","text":"hi ada"}`))
	ev, _ = c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "notice" })
	fmt.Println(string(ev.Raw))

	_ = c.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = router.Drain(sctx)
	_ = hs.Shutdown(sctx)
	_ = node.Shutdown(sctx)
	// Output:
	// welcome ada embedded
	// headline offset 1 same epoch: true broker accepted: true offset 1
	// {"event":"notice","text":"hi ada"}
}
