package api

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
)

// snapshot is everything observable about stored state: the API's views
// and the raw store rows, sealed blobs included.
type snapshot struct {
	Secrets   []client.Secret
	Sandboxes []client.Sandbox
	Bound     map[string][]client.Binding
	Rows      []store.Secret
	Bindings  []store.Binding
}

func takeSnapshot(tb testing.TB, e *testEnv) snapshot {
	tb.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Secrets, err = e.client.ListSecrets(ctx); err != nil {
		tb.Fatalf("ListSecrets: %v", err)
	}
	if s.Sandboxes, err = e.client.ListSandboxes(ctx); err != nil {
		tb.Fatalf("ListSandboxes: %v", err)
	}
	s.Bound = make(map[string][]client.Binding)
	for _, sec := range s.Secrets {
		if s.Bound[sec.Name], err = e.client.SecretSandboxes(ctx, sec.Name); err != nil {
			tb.Fatalf("SecretSandboxes(%q): %v", sec.Name, err)
		}
		bs, err := e.store.ListBindings(ctx, "", sec.ID)
		if err != nil {
			tb.Fatal(err)
		}
		s.Bindings = append(s.Bindings, bs...)
	}
	if s.Rows, err = e.store.ListSecrets(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestBadInputNeverCorrupts sends every invalid request of the error table
// and checks the stored state did not change, and that the sealed values
// still open to what was stored.
func TestBadInputNeverCorrupts(t *testing.T) {
	e := newTestEnv(t)
	standIn := setupErrorEnv(t, e)
	mustCreate(t, e.client, client.SecretCreate{Name: "custom", Hosts: customHosts, Value: customCanary})
	if _, err := e.client.CreateSandbox(context.Background(), client.SandboxCreate{Name: "other",
		Secrets: map[string]string{"A": "custom", "B": "gh"}, Network: client.NetworkRules{AllowOut: []string{"*.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, e)

	for round := range 2 {
		for _, tc := range errorCases(standIn) {
			r := e.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			if r.status < 400 {
				t.Fatalf("round %d: %s %s = %d, want an error", round, tc.method, tc.path, r.status)
			}
		}
	}

	after := takeSnapshot(t, e)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("state changed after invalid requests (-before +after):\n%s", diff)
	}
	for _, row := range after.Rows {
		v, err := e.server.Vault.Unseal(row.ID, row.Version, row.Sealed)
		if err != nil {
			t.Errorf("secret %q no longer opens: %v", row.Name, err)
			continue
		}
		want := map[string]string{"gh": githubCanary, "custom": customCanary}[row.Name]
		if string(v.Reveal()) != want {
			t.Errorf("secret %q opens to a different value", row.Name)
		}
	}
}
