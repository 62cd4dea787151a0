// Package client is the Go SDK of standin's REST API, and the home of its
// wire types (types.go), which the server encodes as they are.
//
// No call returns a secret value and no error carries one: CreateSecret and
// RotateSecret send a value, nothing reads one back.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	err   error // from New, returned by every call
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send requests with hc.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithUnixSocket sends every request over the Unix socket at path (the
// daemon's <data dir>/api.sock); the base URL's host is then only a label.
func WithUnixSocket(path string) Option {
	return func(c *Client) {
		var d net.Dialer
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
		}}
	}
}

// New returns a Client for the API at baseURL (e.g. "http://127.0.0.1:8720";
// with WithUnixSocket, "http://standin" will do) sending token as bearer. A
// bad baseURL is reported by the first call.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{token: token, hc: http.DefaultClient}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	switch {
	case err != nil:
		c.err = fmt.Errorf("parse base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		c.err = fmt.Errorf("base URL %q: want http:// or https://", baseURL)
	default:
		c.base = u
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is an error response from the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// IsNotFound reports whether err is an API not_found error.
func IsNotFound(err error) bool { return hasCode(err, "not_found") }

// IsConflict reports whether err is an API already_exists or conflict error.
func IsConflict(err error) bool { return hasCode(err, "already_exists") || hasCode(err, "conflict") }

func hasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// maxResponse bounds what the client reads of one response.
const maxResponse = 32 << 20

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (if non-nil). The marshalled body is wiped after sending, since
// it may hold a secret value.
//
// Errors start with op ("get secret"), not the URL: a path holds the names
// the caller passed, and a caller that mixed up its arguments may have
// passed a value.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	if c.err != nil {
		return c.err
	}
	// path is built from escaped segments (seg), so it is joined as text.
	target := c.base.String() + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			// json.Marshal's errors name types, never values.
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		defer clear(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, stripURL(err))
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, stripURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		return responseError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

// stripURL drops the URL from a *url.Error, keeping the cause (so
// errors.Is(err, context.Canceled) still holds).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// responseError turns an error response into an *APIError. A body that is
// not our error JSON (a proxy's page, say) is not quoted back.
func responseError(status int, data []byte) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error.Code != "" {
		return &APIError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &APIError{Status: status, Code: "http_" + strconv.Itoa(status),
		Message: "unexpected response: " + http.StatusText(status)}
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Health checks that the API is serving. It needs no token.
func (c *Client) Health(ctx context.Context) error {
	var out struct {
		Status string `json:"status"`
	}
	if err := c.do(ctx, "health", http.MethodGet, "/v1/health", nil, nil, &out); err != nil {
		return err
	}
	if out.Status != "ok" {
		return fmt.Errorf("health: status %q, want \"ok\"", out.Status)
	}
	return nil
}

// Providers lists the catalog.
func (c *Client) Providers(ctx context.Context) ([]Provider, error) {
	var out List[Provider]
	err := c.do(ctx, "list providers", http.MethodGet, "/v1/providers", nil, nil, &out)
	return out.Items, err
}

// CreateSecret stores a secret. The value is sealed by the server and never
// returned.
func (c *Client) CreateSecret(ctx context.Context, s SecretCreate) (Secret, error) {
	var out Secret
	err := c.do(ctx, "create secret", http.MethodPost, "/v1/secrets", nil, s, &out)
	return out, err
}

// ListSecrets lists secrets' metadata.
func (c *Client) ListSecrets(ctx context.Context) ([]Secret, error) {
	var out List[Secret]
	err := c.do(ctx, "list secrets", http.MethodGet, "/v1/secrets", nil, nil, &out)
	return out.Items, err
}

// GetSecret returns a secret's metadata.
func (c *Client) GetSecret(ctx context.Context, name string) (Secret, error) {
	var out Secret
	err := c.do(ctx, "get secret", http.MethodGet, "/v1/secrets/"+seg(name), nil, nil, &out)
	return out, err
}

// RotateSecret replaces a secret's value; its version goes up by one and
// existing stand-ins keep working.
func (c *Client) RotateSecret(ctx context.Context, name, value string) (Secret, error) {
	var out Secret
	err := c.do(ctx, "rotate secret", http.MethodPost, "/v1/secrets/"+seg(name)+"/rotate", nil, SecretRotate{Value: value}, &out)
	return out, err
}

// DeleteSecret deletes a secret and its bindings.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.do(ctx, "delete secret", http.MethodDelete, "/v1/secrets/"+seg(name), nil, nil, nil)
}

// SecretSandboxes lists where a secret is bound. StandIn is empty in each:
// only a sandbox's own view shows stand-ins.
func (c *Client) SecretSandboxes(ctx context.Context, name string) ([]Binding, error) {
	var out List[Binding]
	err := c.do(ctx, "list secret sandboxes", http.MethodGet, "/v1/secrets/"+seg(name)+"/sandboxes", nil, nil, &out)
	return out.Items, err
}

// ActivityFilter selects activity records. Zero fields do not filter.
type ActivityFilter struct {
	Sandbox string
	// Status is a class: "2xx", "4xx", "5xx".
	Status string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	// Cursor is ActivityPage.NextCursor of the previous (newer) page.
	Cursor string
	// After is an Activity.ID: records newer than it, oldest first (for
	// following). "0" gives the latest page, oldest first.
	After string
	// Limit is the page size (server default 100, at most 1000).
	Limit int
}

func (f ActivityFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("sandbox", f.Sandbox)
	set("status", f.Status)
	if !f.Since.IsZero() {
		set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		set("until", f.Until.Format(time.RFC3339Nano))
	}
	set("cursor", f.Cursor)
	set("after", f.After)
	if f.Limit != 0 {
		set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// SecretActivity returns one page of a secret's activity.
func (c *Client) SecretActivity(ctx context.Context, name string, f ActivityFilter) (ActivityPage, error) {
	var out ActivityPage
	err := c.do(ctx, "list secret activity", http.MethodGet, "/v1/secrets/"+seg(name)+"/activity", f.query(), nil, &out)
	return out, err
}

// CreateSandbox creates a sandbox with its first bindings and rules.
func (c *Client) CreateSandbox(ctx context.Context, s SandboxCreate) (Sandbox, error) {
	var out Sandbox
	err := c.do(ctx, "create sandbox", http.MethodPost, "/v1/sandboxes", nil, s, &out)
	return out, err
}

// ListSandboxes lists sandboxes with their bindings.
func (c *Client) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	var out List[Sandbox]
	err := c.do(ctx, "list sandboxes", http.MethodGet, "/v1/sandboxes", nil, nil, &out)
	return out.Items, err
}

// GetSandbox returns a sandbox with the stand-ins it sees.
func (c *Client) GetSandbox(ctx context.Context, name string) (Sandbox, error) {
	var out Sandbox
	err := c.do(ctx, "get sandbox", http.MethodGet, "/v1/sandboxes/"+seg(name), nil, nil, &out)
	return out, err
}

// DeleteSandbox deletes a sandbox and its bindings.
func (c *Client) DeleteSandbox(ctx context.Context, name string) error {
	return c.do(ctx, "delete sandbox", http.MethodDelete, "/v1/sandboxes/"+seg(name), nil, nil, nil)
}

// Attach binds secret to sandbox under envVar and returns the binding with
// its stand-in.
func (c *Client) Attach(ctx context.Context, sandbox, envVar, secret string) (Binding, error) {
	var out Binding
	err := c.do(ctx, "attach secret", http.MethodPost, "/v1/sandboxes/"+seg(sandbox)+"/secrets", nil,
		Attach{EnvVar: envVar, Secret: secret}, &out)
	return out, err
}

// AttachWithStandIn binds a secret like Attach, with a stand-in the caller
// chose (see Attach.StandIn) instead of a minted one.
func (c *Client) AttachWithStandIn(ctx context.Context, sandbox string, a Attach) (Binding, error) {
	var out Binding
	err := c.do(ctx, "attach secret", http.MethodPost, "/v1/sandboxes/"+seg(sandbox)+"/secrets", nil, a, &out)
	return out, err
}

// Detach removes the binding of envVar in sandbox; its stand-in stops
// working at once.
func (c *Client) Detach(ctx context.Context, sandbox, envVar string) error {
	return c.do(ctx, "detach secret", http.MethodDelete, "/v1/sandboxes/"+seg(sandbox)+"/secrets/"+seg(envVar), nil, nil, nil)
}

// SetNetwork replaces a sandbox's network rules.
func (c *Client) SetNetwork(ctx context.Context, sandbox string, n NetworkRules) (Sandbox, error) {
	var out Sandbox
	err := c.do(ctx, "set sandbox network", http.MethodPut, "/v1/sandboxes/"+seg(sandbox)+"/network", nil, n, &out)
	return out, err
}

// SandboxEnv returns the environment a sandbox that standin does not run
// needs to use the gateway (proxy credential, stand-ins, CA variables).
func (c *Client) SandboxEnv(ctx context.Context, name string) (SandboxEnv, error) {
	var out SandboxEnv
	err := c.do(ctx, "get sandbox env", http.MethodGet, "/v1/sandboxes/"+seg(name)+"/env", nil, nil, &out)
	return out, err
}

// CACert returns the interception CA certificate (PEM).
func (c *Client) CACert(ctx context.Context) ([]byte, error) {
	var out CACert
	err := c.do(ctx, "get CA", http.MethodGet, "/v1/ca", nil, nil, &out)
	return []byte(out.PEM), err
}
