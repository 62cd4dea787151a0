// Package api is standin's REST API: JSON over HTTP, the wire types of
// package client, bearer-token auth on every route but GET /v1/health.
//
// Invariants:
//   - No response, error message or log line carries a secret value. Create
//     and rotate take one; nothing gives one back. Error messages echo user
//     input only when it is a well-formed name, since a malformed field may
//     be a credential pasted into the wrong place.
//   - Every request is validated in full before anything is written, so bad
//     input never changes stored data; writes spanning rows are one store
//     transaction.
//   - Errors become statuses and codes in one function (writeError).
package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/vault"
)

// Server serves the API. Fields are set before Handler is called and not
// changed afterwards.
type Server struct {
	Store  store.Store
	Vault  *vault.Vault
	Minter *standin.Minter
	// Token is the admin bearer token. An empty Token refuses every request
	// but GET /v1/health.
	Token string
	// Logger gets one line per request. If nil, slog.Default() is used.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
	// Rand is the source of ids. If nil, crypto/rand.Reader is used.
	Rand io.Reader
	// Changed, if non-nil, is called after a request that may have
	// written (any method but GET and HEAD) and before its response is
	// sent: the gateway drops its cached view there, so a detach or
	// rotation is in force once the API has answered.
	Changed func()
	// Proxy is the explicit proxy's address (host:port) that
	// GET /v1/sandboxes/{name}/env puts in HTTPS_PROXY; "" if it is off.
	Proxy string
	// CAFile is the path of the interception CA certificate, and CACert its
	// PEM, for the env endpoint and GET /v1/ca.
	CAFile string
	CACert []byte
	// Sandboxes, if non-nil, runs the sandboxes: POST /v1/sandboxes starts
	// one, DELETE stops it, exec runs commands in it. If nil, sandboxes are
	// records only (for sandboxes standin does not run) and exec answers 409.
	Sandboxes Runner

	timeouts    timeouts
	maxFileSize int64 // if zero, MaxFileSize
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	public := make(map[string]bool)
	for _, rt := range routes {
		h := rt.handle
		mux.HandleFunc(rt.pattern(), func(w http.ResponseWriter, r *http.Request) {
			if err := h(s, w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
		if rt.public {
			public[rt.pattern()] = true
		}
	}
	return &handler{s: s, mux: mux, public: public}
}

type handler struct {
	s      *Server
	mux    *http.ServeMux
	public map[string]bool
}

// ServeHTTP wraps the mux: request id, auth, JSON 404/405, panic recovery
// and the one log line per request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id, err := newID(h.s.rand(), "req_", 8)
	if err != nil {
		id = "req_unknown"
	}
	_, pattern := h.mux.Handler(r)
	info := &reqInfo{id: id, route: pattern}
	r = r.WithContext(withReqInfo(r.Context(), info))
	rec := &statusWriter{ResponseWriter: w}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rec.before = h.s.Changed
	}
	rec.Header().Set("X-Request-Id", id)
	rec.Header().Set("Cache-Control", "no-store")
	rec.Header().Set("X-Content-Type-Options", "nosniff")

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The panic value is logged by type only: it could be
			// anything, including a request field.
			h.s.writeError(rec, r, fmt.Errorf("panic in handler: %T", v))
		}
		h.s.logger().LogAttrs(r.Context(), slog.LevelInfo, "api request",
			slog.String(logKeyMethod, safeMethod(r.Method)),
			slog.String(logKeyRoute, routeLabel(pattern)),
			slog.Int(logKeyStatus, rec.statusCode()),
			slog.Duration(logKeyDuration, time.Since(start)),
			slog.String(logKeyRequestID, id))
	}()

	if !h.public[pattern] && !h.s.authorized(r) {
		h.s.writeError(rec, r, errUnauthorized)
		return
	}
	if !isClean(r.URL.Path) {
		// The mux would redirect to the cleaned path, echoing the path
		// in Location; a path is user input that may hold a value.
		h.s.writeError(rec, r, newError(http.StatusNotFound, CodeNotFound,
			"no such route: the path has empty, \".\" or \"..\" segments"))
		return
	}
	if pattern == "" {
		h.s.writeError(rec, r, h.unmatched(r))
		return
	}
	h.mux.ServeHTTP(rec, r)
}

// unmatched tells 404 from 405: the mux knows, but answers in plain text, so
// its answer is captured and turned into a JSON error.
func (h *handler) unmatched(r *http.Request) error {
	mh, _ := h.mux.Handler(r)
	c := &captureWriter{header: make(http.Header)}
	mh.ServeHTTP(c, r)
	if c.status == http.StatusMethodNotAllowed {
		allow := c.header.Get("Allow")
		e := newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"method %s not allowed here; allowed: %s", safeMethod(r.Method), allow)
		e.allow = allow
		return e
	}
	return newError(http.StatusNotFound, CodeNotFound, "no such route; see GET /v1/openapi.json")
}

// safeMethod passes standard methods and replaces any other: a method is
// any token the client likes, so it is user input like the rest.
func safeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

// isClean reports whether p is already in the form the mux would redirect
// to: absolute, no empty, "." or ".." segments (a trailing slash is kept).
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

// authorized checks the bearer token in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.Token == "" {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.Token)) == 1
}

// writeJSON writes v with status. Encoding errors cannot happen for the wire
// types; if one did, the client sees a truncated body, never a value.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// statusWriter remembers the status for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
	// before runs once, before the response starts (see Server.Changed).
	before func()
}

func (w *statusWriter) runBefore() {
	if w.before != nil {
		f := w.before
		w.before = nil
		f()
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.runBefore()
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.runBefore()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter swallows the mux's plain-text 404/405.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return len(b), nil }
func (c *captureWriter) WriteHeader(code int)        { c.status = code }
