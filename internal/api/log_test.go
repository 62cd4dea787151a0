package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRequestLogLine checks one line per request with exactly the agreed
// attributes: route pattern, never the path, body or headers.
func TestRequestLogLine(t *testing.T) {
	e := newTestEnv(t)
	type sent struct {
		method, path, body string
		route              string
		status             float64
		id                 string
	}
	reqs := []sent{
		{method: "GET", path: "/v1/health", route: "GET /v1/health", status: 200},
		{method: "POST", path: "/v1/secrets", body: `{"name":"gh","provider":"github","value":"` + githubCanary + `"}`, route: "POST /v1/secrets", status: 201},
		{method: "GET", path: "/v1/secrets/gh", route: "GET /v1/secrets/{name}", status: 200},
		{method: "GET", path: "/v1/secrets/nope", route: "GET /v1/secrets/{name}", status: 404},
		{method: "GET", path: "/v1/nope", route: "unmatched", status: 404},
		{method: "PATCH", path: "/v1/secrets", route: "unmatched", status: 405},
	}
	for i := range reqs {
		r := e.do(t, reqs[i].method, reqs[i].path, reqs[i].body)
		reqs[i].id = r.header.Get("X-Request-Id")
		if float64(r.status) != reqs[i].status {
			t.Fatalf("%s %s = %d, want %v", reqs[i].method, reqs[i].path, r.status, reqs[i].status)
		}
	}
	e.http.Close()

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != len(reqs) {
		t.Fatalf("%d log lines for %d requests:\n%s", len(lines), len(reqs), e.logs.String())
	}
	for i, m := range lines {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		wantKeys := []string{"duration", "level", "method", "msg", "request_id", "route", "status", "time"}
		if diff := cmp.Diff(wantKeys, keys); diff != "" {
			t.Errorf("log line %d keys (-want +got):\n%s", i, diff)
		}
		want := map[string]any{"msg": "api request", "method": reqs[i].method, "route": reqs[i].route,
			"status": reqs[i].status, "request_id": reqs[i].id}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("log line %d: %s = %v, want %v", i, k, m[k], v)
			}
		}
	}
	if strings.Contains(e.logs.String(), testToken) || strings.Contains(e.logs.String(), "Bearer") {
		t.Errorf("log holds the Authorization header")
	}
}

// TestPanicBecomesInternalError: a handler panic is a 500 with the generic
// message, logged by type only.
func TestPanicBecomesInternalError(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{Token: testToken, Logger: slog.New(slog.NewJSONHandler(&logs, nil))} // no store: handlers panic
	req := httptest.NewRequest("GET", "/v1/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("panicking handler = %d %s, want 500 internal", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("log lacks the panic and the request line:\n%s", logs.String())
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1))
	f.Add(encodeCursor(1 << 62))
	f.Add("abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, c string) {
		id, ok := decodeCursor(c)
		if !ok {
			return
		}
		if id <= 0 {
			t.Fatalf("decodeCursor(%q) = %d, true; want a positive id", c, id)
		}
		if back, ok := decodeCursor(encodeCursor(id)); !ok || back != id {
			t.Fatalf("decodeCursor(encodeCursor(%d)) = %d, %v", id, back, ok)
		}
	})
}
