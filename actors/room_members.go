package actors

// memberSet is a room's local members. Most rooms have a few, and a node
// may hold 100,000 rooms of one member each: a map per room cost ~0.35
// KiB, so the members are a slice, searched in place while few, with an
// index by session id from memberIndexAt on. A fan-out ranges over the
// slice. Touched only by the room's Receive.
type memberSet struct {
	list  []member       // in no particular order
	index map[string]int // session actor id -> position in list; nil while small
}

// memberIndexAt is the size from which a set keeps an index.
const memberIndexAt = 16

func (s *memberSet) len() int { return len(s.list) }

// find returns the position of the member with session actor id, or -1.
func (s *memberSet) find(id string) int {
	if s.index != nil {
		if i, ok := s.index[id]; ok {
			return i
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].pid.Id == id {
			return i
		}
	}
	return -1
}

// get returns the member with session actor id.
func (s *memberSet) get(id string) (*member, bool) {
	if i := s.find(id); i >= 0 {
		return &s.list[i], true
	}
	return nil, false
}

// add adds m, whose session is not a member yet.
func (s *memberSet) add(m member) {
	s.list = append(s.list, m)
	switch {
	case s.index != nil:
		s.index[m.pid.Id] = len(s.list) - 1
	case len(s.list) >= memberIndexAt:
		s.index = make(map[string]int, 2*len(s.list))
		for i := range s.list {
			s.index[s.list[i].pid.Id] = i
		}
	}
}

// remove removes the member with session actor id, if any: the last one
// takes its place. The index goes when the set is small again, and the
// storage when it is empty.
func (s *memberSet) remove(id string) {
	i := s.find(id)
	if i < 0 {
		return
	}
	last := len(s.list) - 1
	if s.index != nil {
		delete(s.index, id)
		if i != last {
			s.index[s.list[last].pid.Id] = i
		}
	}
	s.list[i] = s.list[last]
	s.list[last] = member{}
	s.list = s.list[:last]
	switch {
	case last == 0:
		s.list = nil
	case s.index != nil && last < memberIndexAt/2:
		s.index = nil
	}
}
