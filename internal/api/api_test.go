package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/store"
)

// fixedClock returns a clock that starts at a fixed time and moves one
// second per call, so created and rotated times differ and are known.
func fixedClock() func() time.Time {
	t := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

func TestHealthNeedsNoToken(t *testing.T) {
	e := newTestEnv(t)
	if err := client.New(e.http.URL, "").Health(context.Background()); err != nil {
		t.Fatalf("Health without token = %v, want nil", err)
	}
	if err := e.client.Health(context.Background()); err != nil {
		t.Fatalf("Health = %v, want nil", err)
	}
}

// TestSecretsHappyPath drives every secret route through the SDK.
func TestSecretsHappyPath(t *testing.T) {
	e := newTestEnv(t)
	e.server.Now = fixedClock()
	ctx := context.Background()
	c := e.client

	provs, err := c.Providers(ctx)
	if err != nil {
		t.Fatalf("Providers: %v", err)
	}
	var anthropic *client.Provider
	for i := range provs {
		if provs[i].ID == "anthropic" {
			anthropic = &provs[i]
		}
	}
	if anthropic == nil || len(anthropic.Hosts) == 0 || len(anthropic.Formats) == 0 {
		t.Fatalf("Providers() has no usable anthropic entry: %+v", anthropic)
	}
	if len(provs) != len(catalog.Providers()) {
		t.Errorf("Providers() has %d entries, catalog has %d", len(provs), len(catalog.Providers()))
	}

	a, err := c.CreateSecret(ctx, client.SecretCreate{Name: "anthropic-prod", Provider: "anthropic",
		Value: anthropicCanary, Description: "team key"})
	if err != nil {
		t.Fatalf("CreateSecret(anthropic): %v", err)
	}
	if !strings.HasPrefix(a.ID, "sec_") {
		t.Errorf("secret id = %q, want sec_ prefix", a.ID)
	}
	created := time.Date(2025, 3, 4, 5, 6, 8, 0, time.UTC)
	wantA := client.Secret{ID: a.ID, Name: "anthropic-prod", Provider: "anthropic", Description: "team key",
		Hosts: anthropic.Hosts, Format: a.Format, Version: 1, CreatedAt: created, RotatedAt: created}
	if diff := cmp.Diff(wantA, a); diff != "" {
		t.Errorf("CreateSecret(anthropic) mismatch (-want +got):\n%s", diff)
	}
	if a.Format == "" {
		t.Errorf("CreateSecret(anthropic).Format is empty")
	}

	cu, err := c.CreateSecret(ctx, client.SecretCreate{Name: "custom.one", Hosts: customHosts, Value: customCanary})
	if err != nil {
		t.Fatalf("CreateSecret(custom): %v", err)
	}
	if cu.Provider != "custom" || cu.Format != "custom" {
		t.Errorf("custom secret provider, format = %q, %q; want custom, custom", cu.Provider, cu.Format)
	}
	if diff := cmp.Diff(customHosts, cu.Hosts); diff != "" {
		t.Errorf("custom secret hosts (-want +got):\n%s", diff)
	}

	list, err := c.ListSecrets(ctx)
	if err != nil {
		t.Fatalf("ListSecrets: %v", err)
	}
	if diff := cmp.Diff([]client.Secret{a, cu}, list); diff != "" {
		t.Errorf("ListSecrets (-want +got):\n%s", diff)
	}
	got, err := c.GetSecret(ctx, "anthropic-prod")
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("GetSecret (-want +got):\n%s", diff)
	}

	rot, err := c.RotateSecret(ctx, "anthropic-prod", strings.Replace(anthropicCanary, "Qx7", "Zy8", 1))
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	if rot.Version != 2 || !rot.RotatedAt.After(rot.CreatedAt) || rot.CreatedAt != a.CreatedAt {
		t.Errorf("RotateSecret = version %d, created %v, rotated %v; want version 2, rotated after created %v",
			rot.Version, rot.CreatedAt, rot.RotatedAt, a.CreatedAt)
	}
	if got, _ := c.GetSecret(ctx, "anthropic-prod"); got.Version != 2 {
		t.Errorf("GetSecret after rotate: version %d, want 2", got.Version)
	}
	st, err := e.store.GetSecret(ctx, "anthropic-prod")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.server.Vault.Unseal(st.ID, 2, st.Sealed); err != nil || string(v.Reveal()) != strings.Replace(anthropicCanary, "Qx7", "Zy8", 1) {
		t.Errorf("stored blob does not open to the rotated value for version 2 (err %v)", err)
	}

	bs, err := c.SecretSandboxes(ctx, "anthropic-prod")
	if err != nil || len(bs) != 0 {
		t.Errorf("SecretSandboxes of an unbound secret = %v, %v; want empty, nil", bs, err)
	}

	if err := c.DeleteSecret(ctx, "custom.one"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if _, err := c.GetSecret(ctx, "custom.one"); !client.IsNotFound(err) {
		t.Errorf("GetSecret after delete = %v, want not_found", err)
	}
}

// TestSandboxesHappyPath drives every sandbox route through the SDK.
func TestSandboxesHappyPath(t *testing.T) {
	e := newTestEnv(t)
	e.server.Now = fixedClock()
	ctx := context.Background()
	c := e.client
	mustCreate(t, c, client.SecretCreate{Name: "anthropic-prod", Provider: "anthropic", Value: anthropicCanary})
	mustCreate(t, c, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})

	rules := client.NetworkRules{AllowOut: []string{"api.anthropic.com"}, DenyOut: []string{"0.0.0.0/0"}}
	sb, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "agent-1",
		Secrets: map[string]string{"ANTHROPIC_API_KEY": "anthropic-prod"}, Network: rules})
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	if sb.State != "created" || sb.Name != "agent-1" || !strings.HasPrefix(sb.ID, "sbx_") {
		t.Errorf("CreateSandbox = %+v, want state created, name agent-1, id sbx_...", sb)
	}
	if diff := cmp.Diff(rules, sb.Network); diff != "" {
		t.Errorf("CreateSandbox network (-want +got):\n%s", diff)
	}
	if len(sb.Bindings) != 1 || sb.Bindings[0].EnvVar != "ANTHROPIC_API_KEY" || sb.Bindings[0].Secret != "anthropic-prod" ||
		sb.Bindings[0].Sandbox != "agent-1" || sb.Bindings[0].StandIn == "" {
		t.Fatalf("CreateSandbox bindings = %+v, want one ANTHROPIC_API_KEY -> anthropic-prod with a stand-in", sb.Bindings)
	}

	bare, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "bare"})
	if err != nil {
		t.Fatalf("CreateSandbox(bare): %v", err)
	}
	if bare.Bindings == nil || bare.Network.AllowOut == nil || bare.Network.DenyOut == nil {
		t.Errorf("CreateSandbox(bare) = %+v; want empty lists, not null", bare)
	}

	b, err := c.Attach(ctx, "agent-1", "GITHUB_TOKEN", "gh")
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if b.EnvVar != "GITHUB_TOKEN" || b.Secret != "gh" || b.Sandbox != "agent-1" || b.StandIn == "" {
		t.Errorf("Attach = %+v", b)
	}

	got, err := c.GetSandbox(ctx, "agent-1")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	want := sb
	want.Bindings = append(sb.Bindings, b) // sorted by env var
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetSandbox (-want +got):\n%s", diff)
	}
	list, err := c.ListSandboxes(ctx)
	if err != nil {
		t.Fatalf("ListSandboxes: %v", err)
	}
	if diff := cmp.Diff([]client.Sandbox{got, bare}, list); diff != "" {
		t.Errorf("ListSandboxes (-want +got):\n%s", diff)
	}

	bound, err := c.SecretSandboxes(ctx, "gh")
	if err != nil {
		t.Fatalf("SecretSandboxes: %v", err)
	}
	wantBound := []client.Binding{{Sandbox: "agent-1", EnvVar: "GITHUB_TOKEN", Secret: "gh", CreatedAt: b.CreatedAt}}
	if diff := cmp.Diff(wantBound, bound); diff != "" {
		t.Errorf("SecretSandboxes (-want +got; stand-ins must be empty):\n%s", diff)
	}

	newRules := client.NetworkRules{AllowOut: []string{"*.github.com", "10.0.0.0/8"}, Inspect: "all"}
	upd, err := c.SetNetwork(ctx, "agent-1", newRules)
	if err != nil {
		t.Fatalf("SetNetwork: %v", err)
	}
	newRules.DenyOut = []string{}
	if diff := cmp.Diff(newRules, upd.Network); diff != "" {
		t.Errorf("SetNetwork (-want +got):\n%s", diff)
	}
	if got, _ := c.GetSandbox(ctx, "agent-1"); !cmp.Equal(newRules, got.Network) {
		t.Errorf("GetSandbox after SetNetwork: network %+v, want %+v", got.Network, newRules)
	}

	if err := c.Detach(ctx, "agent-1", "GITHUB_TOKEN"); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if got, _ := c.GetSandbox(ctx, "agent-1"); len(got.Bindings) != 1 {
		t.Errorf("GetSandbox after Detach: %d bindings, want 1", len(got.Bindings))
	}

	// Deleting a secret removes its bindings.
	if err := c.DeleteSecret(ctx, "anthropic-prod"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if got, _ := c.GetSandbox(ctx, "agent-1"); len(got.Bindings) != 0 {
		t.Errorf("GetSandbox after DeleteSecret: bindings %+v, want none", got.Bindings)
	}
	if _, err := e.store.BindingByHash(ctx, e.minter.Hash([]byte(sb.Bindings[0].StandIn))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BindingByHash(stand-in of deleted secret) = %v, want ErrNotFound", err)
	}

	if err := c.DeleteSandbox(ctx, "agent-1"); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := c.GetSandbox(ctx, "agent-1"); !client.IsNotFound(err) {
		t.Errorf("GetSandbox after delete = %v, want not_found", err)
	}
}

// TestStatusCodes checks the success statuses the SDK hides.
func TestStatusCodes(t *testing.T) {
	e := newTestEnv(t)
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/secrets", `{"name":"s","provider":"github","value":"` + githubCanary + `"}`, http.StatusCreated},
		{"POST", "/v1/secrets/s/rotate", `{"value":"` + githubCanary + `x"}`, http.StatusOK},
		{"POST", "/v1/sandboxes", `{"name":"b"}`, http.StatusCreated},
		{"POST", "/v1/sandboxes/b/secrets", `{"envVar":"GH","secret":"s"}`, http.StatusCreated},
		{"PUT", "/v1/sandboxes/b/network", `{"allowOut":[],"denyOut":[]}`, http.StatusOK},
		{"DELETE", "/v1/sandboxes/b/secrets/GH", "", http.StatusNoContent},
		{"DELETE", "/v1/sandboxes/b", "", http.StatusNoContent},
		{"DELETE", "/v1/secrets/s", "", http.StatusNoContent},
		{"GET", "/v1/health", "", http.StatusOK},
	}
	for _, s := range steps {
		r := e.do(t, s.method, s.path, s.body)
		if r.status != s.want {
			t.Fatalf("%s %s = %d %s, want %d", s.method, s.path, r.status, r.body, s.want)
		}
		if r.status != http.StatusNoContent && r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s Content-Type = %q, want application/json", s.method, s.path, r.header.Get("Content-Type"))
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s has no X-Request-Id", s.method, s.path)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(t, "GET", "/v1/openapi.json", "")
	if r.status != http.StatusOK || string(r.body) != string(openAPIDoc) {
		t.Fatalf("GET /v1/openapi.json = %d, %d bytes; want 200 and the embedded document", r.status, len(r.body))
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi version = %v, want 3.1.0", doc["openapi"])
	}
}

func TestActivityPaging(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	sec := mustCreate(t, e.client, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	other := mustCreate(t, e.client, client.SecretCreate{Name: "other", Provider: "github", Value: githubCanary + "z"})
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []store.Activity
	for i := range 10 {
		status, sandbox := 200, "a"
		if i%3 == 0 {
			status, sandbox = 401, "b"
		}
		recs = append(recs, store.Activity{Time: base.Add(time.Duration(i) * time.Minute), SecretID: sec.ID, SecretName: "gh",
			SandboxID: "sbx_" + sandbox, SandboxName: sandbox, Method: "GET", Host: "api.github.com", Path: "/user",
			Status: status, Latency: 1500 * time.Microsecond, Outcome: "swapped"})
	}
	recs = append(recs, store.Activity{Time: base, SecretID: other.ID, SecretName: "other", SandboxName: "a", Status: 200})
	if err := e.store.AppendActivity(ctx, recs); err != nil {
		t.Fatalf("AppendActivity: %v", err)
	}
	ids := func(p client.ActivityPage) []string {
		var out []string
		for _, a := range p.Items {
			out = append(out, a.ID)
		}
		return out
	}
	idOf := func(i int) string { return strconv.FormatInt(recs[i].ID, 10) }

	// Newest first, in pages of 4.
	var all []string
	f := client.ActivityFilter{Limit: 4}
	for pages := 0; ; pages++ {
		p, err := e.client.SecretActivity(ctx, "gh", f)
		if err != nil {
			t.Fatalf("SecretActivity(%+v): %v", f, err)
		}
		all = append(all, ids(p)...)
		if p.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatalf("SecretActivity never ends; cursor %q", p.NextCursor)
		}
		f.Cursor = p.NextCursor
	}
	want := []string{idOf(9), idOf(8), idOf(7), idOf(6), idOf(5), idOf(4), idOf(3), idOf(2), idOf(1), idOf(0)}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("paged activity ids (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		f    client.ActivityFilter
		want []string
	}{
		{"status 4xx", client.ActivityFilter{Status: "4xx"}, []string{idOf(9), idOf(6), idOf(3), idOf(0)}},
		{"sandbox a", client.ActivityFilter{Sandbox: "a", Limit: 2}, []string{idOf(8), idOf(7)}},
		{"since until", client.ActivityFilter{Since: base.Add(2 * time.Minute), Until: base.Add(4 * time.Minute)}, []string{idOf(3), idOf(2)}},
		{"after", client.ActivityFilter{After: idOf(6)}, []string{idOf(7), idOf(8), idOf(9)}},
		{"after limit", client.ActivityFilter{After: idOf(1), Limit: 2}, []string{idOf(2), idOf(3)}},
		{"after 0", client.ActivityFilter{After: "0", Limit: 3}, []string{idOf(7), idOf(8), idOf(9)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := e.client.SecretActivity(ctx, "gh", tt.f)
			if err != nil {
				t.Fatalf("SecretActivity(%+v): %v", tt.f, err)
			}
			if diff := cmp.Diff(tt.want, ids(p)); diff != "" {
				t.Errorf("SecretActivity(%+v) ids (-want +got):\n%s", tt.f, diff)
			}
			if tt.f.After != "" && p.NextCursor != "" {
				t.Errorf("SecretActivity(%+v) in follow mode has cursor %q, want none", tt.f, p.NextCursor)
			}
		})
	}

	p, err := e.client.SecretActivity(ctx, "gh", client.ActivityFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantItem := client.Activity{ID: idOf(9), Time: recs[9].Time, Secret: "gh", Sandbox: "b", Method: "GET",
		Host: "api.github.com", Path: "/user", Status: 401, LatencyMS: 1.5, Outcome: "swapped"}
	if diff := cmp.Diff([]client.Activity{wantItem}, p.Items); diff != "" {
		t.Errorf("activity item (-want +got):\n%s", diff)
	}
}

func mustCreate(tb testing.TB, c *client.Client, sc client.SecretCreate) client.Secret {
	tb.Helper()
	s, err := c.CreateSecret(context.Background(), sc)
	if err != nil {
		tb.Fatalf("CreateSecret(%q): %v", sc.Name, err)
	}
	return s
}
