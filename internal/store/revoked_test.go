package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRevokedBindings: detach and secret delete remember what the binding
// was (hash, secret, its hosts and the stand-in shape) until the sandbox
// goes, so the gateway can refuse old stand-ins after a restart.
func TestRevokedBindings(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	mustCreateSecret(t, s, "gh")
	mustCreateSecret(t, s, "other")
	mustCreateSandbox(t, s, "a", testBinding("a", "GH", "gh"), testBinding("a", "OTHER", "other"))
	mustCreateSandbox(t, s, "b", testBinding("b", "GH", "gh"))

	if err := s.DeleteBinding(ctx, "sb_a", "OTHER"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, "sec_gh"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListRevoked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // stand-in hash -> secret
		string(hashOf("a/OTHER")): "other",
		string(hashOf("a/GH")):    "gh",
		string(hashOf("b/GH")):    "gh",
	}
	if len(got) != len(want) {
		t.Fatalf("ListRevoked = %d rows, want %d", len(got), len(want))
	}
	for _, r := range got {
		if want[string(r.StandInHash)] != r.SecretName {
			t.Errorf("revoked %x: secret %q, want %q", r.StandInHash[:4], r.SecretName, want[string(r.StandInHash)])
		}
		if diff := cmp.Diff(testSecret(r.SecretName).Hosts, r.Hosts); diff != "" {
			t.Errorf("revoked hosts (-want +got):\n%s", diff)
		}
		if !bytes.Equal(r.Shape, testBinding("a", "GH", "gh").Shape) || r.RevokedAt.IsZero() {
			t.Errorf("revoked row lacks shape or time: %+v", r)
		}
	}

	// A failed detach remembers nothing.
	if err := s.DeleteBinding(ctx, "sb_b", "NOPE"); err == nil {
		t.Fatal("DeleteBinding of a missing binding succeeded")
	}
	// The sandbox's deletion forgets its rows.
	if err := s.DeleteSandbox(ctx, "sb_a"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ListRevoked(ctx)
	if len(got) != 1 || string(got[0].StandInHash) != string(hashOf("b/GH")) {
		t.Errorf("after deleting sandbox a: %d revoked rows, want only b/GH", len(got))
	}
}
