package api

import (
	"context"
	"errors"
	"testing"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/store"
)

func storedShape(tb testing.TB, e *testEnv, secret string) catalog.Shape {
	tb.Helper()
	sec, err := e.store.GetSecret(context.Background(), secret)
	if err != nil {
		tb.Fatalf("GetSecret(%q): %v", secret, err)
	}
	sh, err := decodeShape(sec.Shape)
	if err != nil {
		tb.Fatal(err)
	}
	return sh
}

func TestStandIns(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c := e.client
	mustCreate(t, c, client.SecretCreate{Name: "anthropic", Provider: "anthropic", Value: anthropicCanary})
	mustCreate(t, c, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	mustCreate(t, c, client.SecretCreate{Name: "custom", Hosts: customHosts, Value: customCanary})
	for _, n := range []string{"one", "two"} {
		if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: n}); err != nil {
			t.Fatal(err)
		}
	}

	type bound struct {
		sandbox, env, secret, value string
		b                           client.Binding
	}
	var all []bound
	for _, sb := range []string{"one", "two"} {
		for _, x := range []struct{ env, secret, value string }{
			{"ANTHROPIC_API_KEY", "anthropic", anthropicCanary},
			{"CLAUDE_KEY", "anthropic", anthropicCanary},
			{"GITHUB_TOKEN", "gh", githubCanary},
			{"CUSTOM_KEY", "custom", customCanary},
		} {
			b, err := c.Attach(ctx, sb, x.env, x.secret)
			if err != nil {
				t.Fatalf("Attach(%q, %q, %q): %v", sb, x.env, x.secret, err)
			}
			all = append(all, bound{sb, x.env, x.secret, x.value, b})
		}
	}

	seen := make(map[string]string)
	for _, x := range all {
		where := x.sandbox + "/" + x.env
		tok := x.b.StandIn
		if sh := storedShape(t, e, x.secret); !sh.Valid(tok) {
			t.Errorf("%s: stand-in %q is not valid for shape %+v", where, tok, sh)
		}
		if tok == x.value {
			t.Errorf("%s: stand-in equals the value", where)
		}
		if other, ok := seen[tok]; ok {
			t.Errorf("%s: stand-in %q also given to %s", where, tok, other)
		}
		seen[tok] = where

		sb, err := e.store.GetSandbox(ctx, x.sandbox)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.store.BindingByHash(ctx, e.minter.Hash([]byte(tok)))
		if err != nil || got.SandboxID != sb.ID || got.EnvVar != x.env {
			t.Errorf("%s: BindingByHash(stand-in) = %+v, %v; want this binding", where, got, err)
		}
	}

	// Stable across reads and across a rotation of the secret.
	if _, err := c.RotateSecret(ctx, "anthropic", anthropicCanary[:len(anthropicCanary)-3]+"zAA"); err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	for range 2 {
		for _, name := range []string{"one", "two"} {
			sb, err := c.GetSandbox(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range sb.Bindings {
				if seen[b.StandIn] != name+"/"+b.EnvVar {
					t.Errorf("GetSandbox(%q) binding %s stand-in %q, was given to %q", name, b.EnvVar, b.StandIn, seen[b.StandIn])
				}
			}
		}
	}

	// Detach removes the mapping at once.
	first := all[0]
	if err := c.Detach(ctx, first.sandbox, first.env); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if _, err := e.store.BindingByHash(ctx, e.minter.Hash([]byte(first.b.StandIn))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BindingByHash after Detach = %v, want ErrNotFound", err)
	}
	if err := c.Detach(ctx, first.sandbox, first.env); !client.IsNotFound(err) {
		t.Errorf("second Detach = %v, want not_found", err)
	}
	// So does deleting the sandbox.
	if err := c.DeleteSandbox(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.sandbox != "two" {
			continue
		}
		if _, err := e.store.BindingByHash(ctx, e.minter.Hash([]byte(x.b.StandIn))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("BindingByHash(%s/%s) after DeleteSandbox = %v, want ErrNotFound", x.sandbox, x.env, err)
		}
	}
}

// zeroReader makes ids predictable.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestStandInSkipsFingerprint forces the first derived stand-in to hash to
// the secret's fingerprint and checks the next attempt is used.
func TestStandInSkipsFingerprint(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	mustCreate(t, e.client, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	if _, err := e.client.CreateSandbox(ctx, client.SandboxCreate{Name: "box"}); err != nil {
		t.Fatal(err)
	}
	e.server.Rand = zeroReader{}
	bindingID, err := newID(zeroReader{}, "bnd_", 16)
	if err != nil {
		t.Fatal(err)
	}
	shape := storedShape(t, e, "gh")
	first, err := e.minter.StandIn(bindingID, 0, shape)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the value's fingerprint is that of the first stand-in.
	sec, err := e.store.GetSecret(ctx, "gh")
	if err != nil {
		t.Fatal(err)
	}
	sec.Version++
	sec.Fingerprint = e.minter.Hash([]byte(first))
	if err := e.store.RotateSecret(ctx, sec); err != nil {
		t.Fatal(err)
	}

	b, err := e.client.Attach(ctx, "box", "GH", "gh")
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	second, err := e.minter.StandIn(bindingID, 1, shape)
	if err != nil {
		t.Fatal(err)
	}
	if b.StandIn == first || b.StandIn != second {
		t.Errorf("Attach stand-in = %q, want attempt 1's %q (attempt 0's %q equals the fingerprint)", b.StandIn, second, first)
	}
	sb, err := e.client.GetSandbox(ctx, "box")
	if err != nil || len(sb.Bindings) != 1 || sb.Bindings[0].StandIn != second {
		t.Errorf("GetSandbox = %+v, %v; want the attempt-1 stand-in %q", sb.Bindings, err, second)
	}
}
