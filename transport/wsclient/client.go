// Package wsclient is a small Switchboard client on gws, used by the
// project's tests and its load tool, and usable by Go programs that talk to a
// node. It decodes every server event into an Event and queues it; the
// caller reads them with Next or waits for one with WaitFor.
package wsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// Event is one server event as received.
type Event struct {
	Event   string          `json:"event"`
	From    string          `json:"from,omitempty"`
	Room    string          `json:"room,omitempty"`
	Content string          `json:"content,omitempty"`
	UserID  string          `json:"user_id,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	Client  string          `json:"client_id,omitempty"`
	Node    string          `json:"node,omitempty"`
	// Room history (docs/protocol.md, section 6).
	Offset       uint64            `json:"offset,omitempty"`
	Epoch        string            `json:"epoch,omitempty"`
	Recovered    *bool             `json:"recovered,omitempty"`
	Publications []json.RawMessage `json:"publications,omitempty"`
	Raw          []byte            `json:"-"`
	At           time.Time         `json:"-"`
}

// Options configure Dial.
type Options struct {
	Header        http.Header
	Timeout       time.Duration // handshake; zero: 5 s
	NoAutoPong    bool          // do not answer pings (simulates a dead peer)
	LocalAddr     string        // source IP to dial from (127.0.0.x spreading)
	QueueCapacity int           // events kept unread; zero: 1<<16. Beyond it, events are counted and dropped.
	OnEvent       func(*Event)  // if set, called on the read goroutine instead of queueing
}

// Client is one connection.
type Client struct {
	conn   *gws.Conn
	opts   Options
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*Event
	closed bool
	// CloseCode is the close code received from the server, 0 if none.
	closeCode   uint16
	closeReason string
	dropped     int
	done        chan struct{}
}

// ErrTimeout is returned when an expected event does not arrive in time.
var ErrTimeout = errors.New("wsclient: timed out")

// HandshakeError is a refused upgrade, with its HTTP status.
type HandshakeError struct {
	Status int
	Err    error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("wsclient: handshake refused: %d: %v", e.Status, e.Err)
}
func (e *HandshakeError) Unwrap() error { return e.Err }

// Dial connects to url (ws://host:port/ws?client_id=...).
func Dial(url string, opts Options) (*Client, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.QueueCapacity == 0 {
		opts.QueueCapacity = 1 << 16
	}
	c := &Client{opts: opts, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	copt := &gws.ClientOption{
		Addr:             url,
		RequestHeader:    opts.Header,
		HandshakeTimeout: opts.Timeout,
		ReadBufferSize:   4096,
	}
	if opts.LocalAddr != "" {
		la := &net.TCPAddr{IP: net.ParseIP(opts.LocalAddr)}
		copt.NewDialer = func() (gws.Dialer, error) { return &net.Dialer{Timeout: opts.Timeout, LocalAddr: la}, nil }
	}
	conn, resp, err := gws.NewClient(&handler{c: c}, copt)
	if err != nil {
		if resp != nil {
			return nil, &HandshakeError{Status: resp.StatusCode, Err: err}
		}
		return nil, err
	}
	c.conn = conn
	go conn.ReadLoop()
	return c, nil
}

// Conn is the underlying gws connection.
func (c *Client) Conn() *gws.Conn { return c.conn }

// SendJSON sends v as one text frame.
func (c *Client) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.conn.WriteMessage(gws.OpcodeText, b)
}

// SendText sends a raw text frame.
func (c *Client) SendText(s string) error { return c.conn.WriteString(s) }

// Next returns the next event, waiting up to timeout.
func (c *Client) Next(timeout time.Duration) (*Event, error) {
	return c.WaitFor(timeout, func(*Event) bool { return true })
}

// WaitFor returns the first queued or arriving event that match accepts,
// dropping the events before it. It fails after timeout or when the
// connection closes first.
func (c *Client) WaitFor(timeout time.Duration, match func(*Event) bool) (*Event, error) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) > 0 {
			ev := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if match(ev) {
				return ev, nil
			}
		}
		if c.closed {
			return nil, fmt.Errorf("wsclient: connection closed (code %d %q)", c.closeCode, c.closeReason)
		}
		if !time.Now().Before(deadline) {
			return nil, ErrTimeout
		}
		c.cond.Wait()
	}
}

// Pending returns the events queued and not yet read, without removing them.
func (c *Client) Pending() []*Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Event(nil), c.queue...)
}

// Drain removes and returns every queued event.
func (c *Client) Drain() []*Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

// Closed returns a channel closed when the connection has ended.
func (c *Client) Closed() <-chan struct{} { return c.done }

// CloseCode returns the close code and reason the server sent (0 if none).
func (c *Client) CloseCode() (uint16, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.closeReason
}

// WaitClosed waits for the connection to end and returns the server's close code.
func (c *Client) WaitClosed(timeout time.Duration) (uint16, error) {
	select {
	case <-c.done:
		code, _ := c.CloseCode()
		return code, nil
	case <-time.After(timeout):
		return 0, ErrTimeout
	}
}

// Close sends a normal close and waits (bounded) for the read loop to end.
func (c *Client) Close() error {
	_ = c.conn.WriteClose(1000, nil)
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		_ = c.conn.NetConn().Close()
		<-c.done
	}
	return nil
}

// Abort drops the TCP connection without a close frame.
func (c *Client) Abort() {
	_ = c.conn.NetConn().Close()
	<-c.done
}

// WaitContext is WaitFor bounded by a context.
func (c *Client) WaitContext(ctx context.Context, match func(*Event) bool) (*Event, error) {
	d := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return c.WaitFor(d, match)
}

type handler struct {
	gws.BuiltinEventHandler
	c *Client
}

func (h *handler) OnPing(socket *gws.Conn, payload []byte) {
	if !h.c.opts.NoAutoPong {
		_ = socket.WritePong(payload)
	}
}

func (h *handler) OnClose(socket *gws.Conn, err error) {
	c := h.c
	c.mu.Lock()
	c.closed = true
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closeCode, c.closeReason = ce.Code, string(ce.Reason)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	close(c.done)
}

func (h *handler) OnMessage(socket *gws.Conn, m *gws.Message) {
	defer m.Close()
	ev := &Event{Raw: append([]byte(nil), m.Bytes()...), At: time.Now()}
	if err := json.Unmarshal(ev.Raw, ev); err != nil {
		ev.Event = "!invalid"
	}
	c := h.c
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
		return
	}
	c.mu.Lock()
	if len(c.queue) >= c.opts.QueueCapacity {
		c.dropped++
	} else {
		c.queue = append(c.queue, ev)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}
