package sandbox

import (
	"fmt"
	"sync"
)

// IDs is the set of sandbox IDs a runtime holds: those of its instances,
// and those whose Start is still running. A runtime's cleanup of leftovers
// must skip both. The zero value is ready to use.
type IDs[T any] struct {
	mu   sync.Mutex
	live map[string]*T // nil value: being started
}

// Start reserves id, runs start and keeps what it returns under id. An id
// already held is refused with ErrInvalidSpec; if start fails the id is
// free again.
func (s *IDs[T]) Start(id string, start func() (*T, error)) (*T, error) {
	s.mu.Lock()
	if _, ok := s.live[id]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: id %q is in use", ErrInvalidSpec, id)
	}
	if s.live == nil {
		s.live = map[string]*T{}
	}
	s.live[id] = nil
	s.mu.Unlock()

	in, err := start()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.live, id)
		return nil, err
	}
	s.live[id] = in
	return in, nil
}

// StartInstance is the front half of every runtime's Runtime.Start: it
// checks spec, then starts it under ids (reserved while start runs, freed
// if it fails). A failure returns a nil Instance, never a typed nil.
func StartInstance[T any, P interface {
	*T
	Instance
}](ids *IDs[T], spec Spec, start func() (*T, error)) (Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	in, err := ids.Start(spec.ID, start)
	if err != nil {
		return nil, err
	}
	return P(in), nil
}

// Held reports whether id is held: an instance's, or reserved by a Start.
func (s *IDs[T]) Held(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.live[id]
	return ok
}

// Forget frees id, once its instance is gone.
func (s *IDs[T]) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}
