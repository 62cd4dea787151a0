package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/standin/standin/internal/store"
)

// stateExpired is a sandbox's state once its timeout stopped it. The record
// and its bindings stay (so `standin sandbox get` says why it is gone, and
// its activity stays attributed) until it is deleted.
const stateExpired = "expired"

// maxTimeout bounds a sandbox's timeout.
const maxTimeout = 24 * time.Hour

// expiry is a pending sandbox timeout.
type expiry struct {
	at    time.Time
	timer *time.Timer
}

// timeouts holds the pending timeouts of a Server, by sandbox id. They live
// in memory only: a server that stops stops every sandbox, so a restarted
// one has no running sandbox left to expire.
type timeouts struct {
	mu     sync.Mutex
	closed bool
	byID   map[string]expiry
}

// expireAfter stops sandbox id after d and records it "expired".
func (s *Server) expireAfter(id string, d time.Duration) {
	s.timeouts.mu.Lock()
	defer s.timeouts.mu.Unlock()
	if s.timeouts.closed {
		return
	}
	if s.timeouts.byID == nil {
		s.timeouts.byID = map[string]expiry{}
	}
	s.timeouts.byID[id] = expiry{at: s.now().Add(d), timer: time.AfterFunc(d, func() { s.expire(id) })}
}

// expiresAt is when sandbox id's timeout stops it; ok is false if it has none.
func (s *Server) expiresAt(id string) (time.Time, bool) {
	s.timeouts.mu.Lock()
	defer s.timeouts.mu.Unlock()
	e, ok := s.timeouts.byID[id]
	return e.at, ok
}

// cancelTimeout drops sandbox id's timeout (it is being deleted).
func (s *Server) cancelTimeout(id string) {
	s.timeouts.mu.Lock()
	defer s.timeouts.mu.Unlock()
	if e, ok := s.timeouts.byID[id]; ok {
		e.timer.Stop()
		delete(s.timeouts.byID, id)
	}
}

func (s *Server) expire(id string) {
	s.timeouts.mu.Lock()
	_, ok := s.timeouts.byID[id]
	delete(s.timeouts.byID, id)
	closed := s.timeouts.closed
	s.timeouts.mu.Unlock()
	if !ok || closed {
		return // deleted or shut down meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := s.logger()
	if s.Sandboxes != nil {
		if err := s.Sandboxes.Stop(ctx, id); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "stop expired sandbox", slog.String(logKeySandboxID, id), slog.Any(logKeyError, err))
			return
		}
	}
	if err := s.Store.SetSandboxState(ctx, id, stateExpired); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.LogAttrs(ctx, slog.LevelError, "record sandbox expired", slog.String(logKeySandboxID, id), slog.Any(logKeyError, err))
		}
		return
	}
	log.LogAttrs(ctx, slog.LevelInfo, "sandbox expired", slog.String(logKeySandboxID, id))
}

// Close cancels the pending sandbox timeouts; call it when the server stops,
// before the sandboxes are stopped and the store closed.
func (s *Server) Close() {
	s.timeouts.mu.Lock()
	defer s.timeouts.mu.Unlock()
	s.timeouts.closed = true
	for id, e := range s.timeouts.byID {
		e.timer.Stop()
		delete(s.timeouts.byID, id)
	}
}

// parseTimeout parses SandboxCreate.Timeout; "" is no timeout.
func parseTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxTimeout {
		// The value is not echoed: a malformed field may be a pasted credential.
		return 0, badRequest(CodeInvalidField, "timeout must be a duration such as \"30m\", more than 0 and at most 24h")
	}
	return d, nil
}
