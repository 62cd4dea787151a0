package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
)

// Error codes: stable strings programs branch on. Messages are for people.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeRequestTooLarge  = "request_too_large"
	CodeUnknownProvider  = "unknown_provider"
	CodeInvalidHost      = "invalid_host"
	CodeInvalidEnvVar    = "invalid_env_var"
	CodeInvalidName      = "invalid_name"
	CodeValueTooLarge    = "value_too_large"
	CodeInvalidValue     = "invalid_value"
	CodeInvalidField     = "invalid_field"
	CodeInvalidQuery     = "invalid_query"
	CodeAlreadyExists    = "already_exists"
	CodeConflict         = "conflict"
	CodeNotFound         = "not_found"
	CodeInvalidRule      = "invalid_rule"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnauthorized     = "unauthorized"
	CodeInternal         = "internal"
)

// Error is an error with an HTTP status, a code and a message that is safe to
// show the caller. Handlers build one wherever the caller made a mistake;
// anything else that reaches writeError is reported as internal.
type Error struct {
	Status  int
	Code    string
	Message string
	allow   string // the Allow header of a 405
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, code, format, args...)
}

var errUnauthorized = newError(http.StatusUnauthorized, CodeUnauthorized,
	"missing or wrong API token; the local CLI reads it from <data dir>/admin.token")

// notFound names what is missing and how to list what exists. The name is
// echoed only when it is a well-formed name: a malformed "name" may be a
// credential pasted into the wrong place.
func notFound(kind, name string) *Error {
	return newError(http.StatusNotFound, CodeNotFound, "%s %s not found; list them with `standin %s list`",
		kind, quoteName(name), kind)
}

// quoteName quotes a name for an error message, or describes it without
// echoing it when it is not a valid name.
func quoteName(name string) string {
	if nameRE.MatchString(name) && !looksLikeCredential(name) {
		return strconv.Quote(name)
	}
	return "with that name"
}

// writeError is the one place errors become HTTP responses. Errors the caller
// caused (*Error, store sentinels) keep their message; anything else is logged
// with its detail and answered with a generic message and the request id,
// because an internal error's text may contain data.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &mbe):
		e = newError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrNotFound):
		e = newError(http.StatusNotFound, CodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		e = newError(http.StatusConflict, CodeAlreadyExists, "already exists")
	case errors.Is(err, store.ErrStale):
		e = newError(http.StatusConflict, CodeConflict, "changed concurrently; retry")
	default:
		id := requestID(r)
		s.logger().LogAttrs(r.Context(), slog.LevelError, "api internal error",
			slog.String(logKeyRequestID, id), slog.String(logKeyRoute, routeOf(r)),
			slog.Any(logKeyError, err))
		e = newError(http.StatusInternalServerError, CodeInternal,
			"internal error; the server log has the detail under request id %s", id)
	}
	if e.allow != "" {
		w.Header().Set("Allow", e.allow)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="standin"`)
	}
	writeJSON(w, e.Status, client.ErrorBody{Error: client.ErrorDetail{Code: e.Code, Message: e.Message}})
}

// redact replaces every occurrence of each input (quoted or raw) in msg
// with its label. Validators in other packages quote the input they reject;
// the input may be a credential typed into the wrong field, so the caller
// gets the position instead. Very short inputs are left alone: replacing
// "a" would garble the message and cannot hide a credential anyway.
func redact(msg string, inputs map[string]string) string {
	keys := make([]string, 0, len(inputs))
	for in := range inputs {
		if len(in) >= minRedactLen {
			keys = append(keys, in)
		}
	}
	// Longest first, so an input containing another is replaced whole.
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, in := range keys {
		msg = strings.ReplaceAll(msg, strconv.Quote(in), inputs[in])
		msg = strings.ReplaceAll(msg, in, inputs[in])
	}
	return msg
}

// minRedactLen is the shortest input redact hides. Six bytes is below any
// real credential and long enough not to hit the words validators use
// ("host", "query", "basic").
const minRedactLen = 6
