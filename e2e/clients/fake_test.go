package clients

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// What the fakes share: reading a credential out of its slot the way the
// provider does, JSON answers and server-sent events.

// The fakes' answers are fixed, except that a model's reply repeats the
// prompt after youSaid, which shows the request body arrived whole. The
// clients send prompt.
const (
	youSaid = "You said: "
	prompt  = "ping"
)

// same compares a credential with the real value in constant time, as a
// provider would.
func same(got, real string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(real)) == 1
}

// schemeToken returns the token of an Authorization header "SCHEME token"
// (the scheme is case-insensitive, RFC 9110 section 11.1), or "".
func schemeToken(h http.Header, scheme string) string {
	v := h.Get("Authorization")
	if len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) && v[len(scheme)] == ' ' {
		return strings.TrimSpace(v[len(scheme)+1:])
	}
	return ""
}

func bearer(h http.Header) string { return schemeToken(h, "Bearer") }

// basicAuth decodes an Authorization: Basic header.
func basicAuth(h http.Header) (user, pass string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(schemeToken(h, "Basic"))
	if err != nil || len(b) == 0 {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON request body into v; false (and a 400 already
// written) if it is not JSON.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "content type must be application/json"})
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid JSON: " + err.Error()})
		return false
	}
	return true
}

// sseWriter writes a text/event-stream response, flushing after each event
// so that each one leaves as it is written, as a model API's tokens do.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: w, f: f}
}

// event writes one event; name "" writes a data-only event, as chat
// completions streams are.
func (s *sseWriter) event(name string, data any) {
	var payload string
	if str, ok := data.(string); ok {
		payload = str
	} else {
		b, _ := json.Marshal(data)
		payload = string(b)
	}
	if name != "" {
		fmt.Fprintf(s.w, "event: %s\n", name)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", payload)
	if s.f != nil {
		s.f.Flush()
	}
}

// chunks splits s into pieces of at most n bytes, the deltas of a stream.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// promptText is the text of a chat message's content or of a responses
// input: a string, or a list of parts with text.
func promptText(content any) string {
	switch c := content.(type) {
	case string:
		return c
	case []any:
		var b strings.Builder
		for _, p := range c {
			if m, ok := p.(map[string]any); ok {
				if s, ok := m["text"].(string); ok {
					b.WriteString(s)
				} else if s, ok := m["content"]; ok {
					b.WriteString(promptText(s))
				}
			}
		}
		return b.String()
	}
	return ""
}
