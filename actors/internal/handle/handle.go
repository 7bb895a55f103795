// Package handle defines port.Ref, the opaque handle on an actor, where
// only the actors package and its sub-packages can make one or look
// inside: code outside actors can hold, compare and pass a Ref, and
// deliver to it only through the port.ActorHost that gave it out.
package handle

// Ref names one actor. home is the actor system it lives in (a comparable
// pointer) and impl the implementation's address of the actor in it (a
// *actor.PID); both are read only by package actors.
type Ref struct {
	id   string
	home any
	impl any
}

// New returns a handle on the actor named id in home, addressed by impl.
func New(id string, home, impl any) Ref { return Ref{id: id, home: home, impl: impl} }

// Home is the actor system of r; nil for the zero Ref.
func Home(r Ref) any { return r.home }

// Impl is the implementation's address of r; nil for the zero Ref.
func Impl(r Ref) any { return r.impl }

// ID is the actor's id, unique within its actor system (what
// actors.Node.Kill takes); "" for the zero Ref.
func (r Ref) ID() string { return r.id }

// IsZero reports whether r names no actor.
func (r Ref) IsZero() bool { return r.home == nil }

// Equal reports whether r and o name the same actor. Two Refs of one actor
// may hold different addresses, so compare with Equal, not ==.
func (r Ref) Equal(o Ref) bool { return r.id == o.id && r.home == o.home }

// String is the actor's id, for logs.
func (r Ref) String() string { return r.id }
