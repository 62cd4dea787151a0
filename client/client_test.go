package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a fake API that records what it was sent and answers with
// status and body.
type recorder struct {
	status int
	body   string
	got    *http.Request
	gotRaw string // escaped path and query
	gotB   []byte
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.got = r
	rc.gotRaw = r.URL.RequestURI()
	rc.gotB, _ = io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rc.status)
	io.WriteString(w, rc.body)
}

func newFake(tb testing.TB, status int, body string) (*recorder, *Client) {
	tb.Helper()
	rc := &recorder{status: status, body: body}
	s := httptest.NewServer(rc)
	tb.Cleanup(s.Close)
	return rc, New(s.URL+"/", "tok")
}

func TestAPIError(t *testing.T) {
	_, c := newFake(t, 404, `{"error":{"code":"not_found","message":"secret \"x\" not found; list them with `+"`standin secret list`"+`"}}`)
	_, err := c.GetSecret(context.Background(), "x")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("GetSecret error = %T %v, want *APIError", err, err)
	}
	want := &APIError{Status: 404, Code: "not_found", Message: "secret \"x\" not found; list them with `standin secret list`"}
	if diff := cmp.Diff(want, ae); diff != "" {
		t.Errorf("APIError (-want +got):\n%s", diff)
	}
	if got := err.Error(); got != "not_found: secret \"x\" not found; list them with `standin secret list`" {
		t.Errorf("Error() = %q", got)
	}
	if !IsNotFound(err) || IsConflict(err) {
		t.Errorf("IsNotFound, IsConflict = %v, %v; want true, false", IsNotFound(err), IsConflict(err))
	}
}

// TestAPIErrorNotJSON: a body that is not our error is not quoted back, so
// an echoing proxy cannot put a request's value into an error.
func TestAPIErrorNotJSON(t *testing.T) {
	_, c := newFake(t, 502, "upstream said: sk-LEAKCANARY")
	_, err := c.RotateSecret(context.Background(), "x", "sk-LEAKCANARY")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "http_502" {
		t.Fatalf("RotateSecret error = %v, want APIError 502 http_502", err)
	}
	if strings.Contains(err.Error(), "LEAKCANARY") {
		t.Errorf("error %q quotes the body", err)
	}
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		call       func(c *Client) error
		method     string
		uri        string
		body       string
		answer     string
		wantStatus int
	}{
		{"create", func(c *Client) error {
			_, err := c.CreateSecret(ctx, SecretCreate{Name: "a", Provider: "github", Value: "v"})
			return err
		}, "POST", "/v1/secrets", `{"name":"a","provider":"github","value":"v"}`, `{}`, 201},
		{"rotate escapes", func(c *Client) error { _, err := c.RotateSecret(ctx, "a/b c", "v"); return err },
			"POST", "/v1/secrets/a%2Fb%20c/rotate", `{"value":"v"}`, `{}`, 200},
		{"delete", func(c *Client) error { return c.DeleteSecret(ctx, "a") }, "DELETE", "/v1/secrets/a", "", "", 204},
		{"activity", func(c *Client) error {
			_, err := c.SecretActivity(ctx, "a", ActivityFilter{Sandbox: "sb", Status: "4xx", Since: since, Cursor: "c=", Limit: 5})
			return err
		}, "GET", "/v1/secrets/a/activity?cursor=c%3D&limit=5&sandbox=sb&since=2025-01-02T03%3A04%3A05Z&status=4xx", "", `{"items":[]}`, 200},
		{"activity after", func(c *Client) error {
			_, err := c.SecretActivity(ctx, "a", ActivityFilter{After: "7"})
			return err
		}, "GET", "/v1/secrets/a/activity?after=7", "", `{"items":[]}`, 200},
		{"attach", func(c *Client) error { _, err := c.Attach(ctx, "sb", "K", "a"); return err },
			"POST", "/v1/sandboxes/sb/secrets", `{"envVar":"K","secret":"a"}`, `{}`, 201},
		{"detach", func(c *Client) error { return c.Detach(ctx, "sb", "K") }, "DELETE", "/v1/sandboxes/sb/secrets/K", "", "", 204},
		{"network", func(c *Client) error {
			_, err := c.SetNetwork(ctx, "sb", NetworkRules{AllowOut: []string{"x.com"}})
			return err
		}, "PUT", "/v1/sandboxes/sb/network", `{"allowOut":["x.com"],"denyOut":null}`, `{}`, 200},
		{"sandbox", func(c *Client) error { _, err := c.CreateSandbox(ctx, SandboxCreate{Name: "sb"}); return err },
			"POST", "/v1/sandboxes", `{"name":"sb","network":{"allowOut":null,"denyOut":null}}`, `{}`, 201},
		{"list", func(c *Client) error { _, err := c.ListSandboxes(ctx); return err }, "GET", "/v1/sandboxes", "", `{"items":[]}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, c := newFake(t, tt.wantStatus, tt.answer)
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if rc.got.Method != tt.method || rc.gotRaw != tt.uri || string(rc.gotB) != tt.body {
				t.Errorf("sent %s %s %s, want %s %s %s", rc.got.Method, rc.gotRaw, rc.gotB, tt.method, tt.uri, tt.body)
			}
			if a := rc.got.Header.Get("Authorization"); a != "Bearer tok" {
				t.Errorf("Authorization = %q, want Bearer tok", a)
			}
		})
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdk") // short path: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := New("http://standin", "", WithUnixSocket(sock))
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("Health over unix socket: %v", err)
	}
}

func TestBadBaseURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "://", "127.0.0.1:8720"} {
		if err := New(u, "t").Health(context.Background()); err == nil {
			t.Errorf("New(%q).Health() = nil, want an error", u)
		}
	}
}

func TestWithHTTPClient(t *testing.T) {
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"status":"ok"}`)), Header: http.Header{}}, nil
	})}
	if err := New("http://x", "", WithHTTPClient(hc)).Health(context.Background()); err != nil || !used {
		t.Errorf("Health with custom client = %v, used %v; want nil, true", err, used)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransportErrorHidesPath: a transport error names the operation, not
// the URL, whose path holds what the caller passed.
func TestTransportErrorHidesPath(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close() // nothing listens there now
	_, err := New(url, "t").GetSecret(context.Background(), "ghp_LEAKCANARY")
	if err == nil || strings.Contains(err.Error(), "LEAKCANARY") || !strings.HasPrefix(err.Error(), "get secret: ") {
		t.Errorf("GetSecret on a closed port = %v; want a \"get secret: ...\" error without the name", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, c := newFake(t, 200, `{}`)
	if _, err := c.ListSecrets(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListSecrets with a canceled context = %v, want context.Canceled", err)
	}
}
