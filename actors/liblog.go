package actors

import (
	"context"
	"log/slog"
)

// quietInfo is the handler protoactor logs through: its Info records are
// handed on at Debug, its warnings and errors unchanged. What protoactor
// reports at Info is internal to the node: the system starting, a dead
// letter (the normal fate of a message racing with an ending, such as a
// frame from a client the node is closing), and "[ACTOR] Recovering" on
// every supervised failure (a Redis connection that cannot be re-opened
// fails on each retry). The node reports what matters of these itself: a
// panic at error with its stack (repanic), a broker outage at warn, at a
// slowing rate.
type quietInfo struct{ next slog.Handler }

func demoteInfo(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (h quietInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, demoteInfo(l))
}

func (h quietInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demoteInfo(r.Level)
	return h.next.Handle(ctx, r)
}

func (h quietInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietInfo{h.next.WithAttrs(attrs)}
}

func (h quietInfo) WithGroup(name string) slog.Handler { return quietInfo{h.next.WithGroup(name)} }
