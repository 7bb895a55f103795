package actors

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// A member set agrees with a map through every add and remove, below and
// above the size at which it keeps an index, and lets its storage go when
// it empties.
func TestMemberSetAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s memberSet
	want := map[string]string{}
	for step := range 20000 {
		id := fmt.Sprint("session-", rng.IntN(3*memberIndexAt))
		if _, in := want[id]; in && rng.IntN(2) == 0 {
			delete(want, id)
			s.remove(id)
		} else if !in {
			user := fmt.Sprint("user-", step)
			want[id] = user
			s.add(member{pid: &actor.PID{Id: id}, user: user})
		}
		if s.len() != len(want) {
			t.Fatalf("step %d: %d members, want %d", step, s.len(), len(want))
		}
		for id, user := range want {
			if m, ok := s.get(id); !ok || m.user != user {
				t.Fatalf("step %d: %s: %+v %v, want %s", step, id, m, ok, user)
			}
		}
		if _, ok := s.get("session-absent"); ok {
			t.Fatalf("step %d: found a member never added", step)
		}
		if s.index != nil && s.len() < memberIndexAt/2 {
			t.Fatalf("step %d: %d members keep an index", step, s.len())
		}
	}
	for id := range want {
		s.remove(id)
	}
	if s.list != nil || s.index != nil {
		t.Fatalf("an empty set holds %d slots and index %v", cap(s.list), s.index != nil)
	}
}
