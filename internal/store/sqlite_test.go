package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/standin/standin/client"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func newStore(tb testing.TB) (*SQLite, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "standin.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		tb.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, path
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func testSecret(name string) *Secret {
	return &Secret{
		ID:          "sec_" + name,
		Name:        name,
		Provider:    "github",
		Description: "token for " + name,
		Hosts: []client.HostAuth{
			{Host: "api.github.com", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "Authorization", Template: "token {value}"}},
		},
		Shape:       []byte(`{"prefix":"ghp_"}`),
		Version:     1,
		KeyID:       "k1",
		Sealed:      []byte("sealed:" + name),
		Fingerprint: hashOf("fp:" + name),
		CreatedAt:   t0,
	}
}

func testSandbox(name string) *Sandbox {
	return &Sandbox{
		ID:        "sb_" + name,
		Name:      name,
		State:     "running",
		Network:   client.NetworkRules{AllowOut: []string{"api.github.com"}, DenyOut: []string{"0.0.0.0/0"}},
		CreatedAt: t0,
	}
}

func testBinding(sandbox, env, secret string) Binding {
	return Binding{
		ID:          "bd_" + sandbox + "_" + env,
		SandboxID:   "sb_" + sandbox,
		EnvVar:      env,
		SecretID:    "sec_" + secret,
		Shape:       []byte(`{"len":40}`),
		Attempt:     0,
		StandInHash: hashOf(sandbox + "/" + env),
		CreatedAt:   t0,
	}
}

func mustCreateSecret(tb testing.TB, s *SQLite, name string) *Secret {
	tb.Helper()
	sec := testSecret(name)
	if err := s.CreateSecret(context.Background(), sec); err != nil {
		tb.Fatalf("CreateSecret(%q) = %v", name, err)
	}
	return sec
}

func mustCreateSandbox(tb testing.TB, s *SQLite, name string, bs ...Binding) *Sandbox {
	tb.Helper()
	sb := testSandbox(name)
	if err := s.CreateSandbox(context.Background(), sb, bs); err != nil {
		tb.Fatalf("CreateSandbox(%q) = %v", name, err)
	}
	return sb
}

var equateEmpty = cmpopts.EquateEmpty()

func TestOpenFileMode(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	mustCreateSecret(t, s, "a") // makes the -wal file exist
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("Stat(%q) = %v", p, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %q = %v, want 0600", filepath.Base(p), got)
		}
	}

	// A loose pre-existing file is tightened.
	loose := filepath.Join(t.TempDir(), "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSQLite(ctx, loose)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", loose, err)
	}
	defer s2.Close()
	fi, err := os.Stat(loose)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of pre-existing 0644 file after open = %v, want 0600", got)
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if _, err := OpenSQLite(context.Background(), ""); err == nil {
		t.Errorf(`OpenSQLite("") = nil error, want error`)
	}
}

// TestOpenOddPath checks the path is escaped in the DSN: a '?' must not
// start the parameter list.
func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	defer s.Close()
	mustCreateSecret(t, s, "x")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

func TestPragmas(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	want := map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"foreign_keys": "1",
		"busy_timeout": "5000",
	}
	for poolName, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		for p, w := range want {
			var got string
			if err := db.QueryRowContext(ctx, "PRAGMA "+p).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", poolName, p, err)
			}
			if got != w {
				t.Errorf("%s: PRAGMA %s = %q, want %q", poolName, p, got, w)
			}
		}
	}
	// Readers cannot write, so every write goes through the serialized writer.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('x', x'00')`); err == nil {
		t.Errorf("write through reader pool succeeded, want query_only error")
	}
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	mustCreateSecret(t, s, "keep")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s2, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if _, err := s2.GetSecret(ctx, "keep"); err != nil {
			t.Errorf("reopen %d: GetSecret(%q) = %v", i, "keep", err)
		}
		var n, maxV int
		if err := s2.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion() || maxV != SchemaVersion() {
			t.Errorf("reopen %d: schema_migrations has %d rows, max %d; want %d", i, n, maxV, SchemaVersion())
		}
		s2.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 0)`,
		SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := OpenSQLite(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("OpenSQLite(newer schema) = %v, want %v", err, ErrSchemaTooNew)
	}
}

func TestMigrationsWellFormed(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations() = %v", err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) {
		t.Errorf("SchemaVersion() = %d with %d migrations", SchemaVersion(), len(ms))
	}
}

func TestSecretCRUD(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)

	b := mustCreateSecret(t, s, "b")
	a := mustCreateSecret(t, s, "a")
	custom := testSecret("custom")
	custom.Provider, custom.Hosts, custom.Shape, custom.Fingerprint = "custom", nil, nil, nil
	if err := s.CreateSecret(ctx, custom); err != nil {
		t.Fatalf("CreateSecret(custom) = %v", err)
	}

	for _, want := range []*Secret{a, b, custom} {
		got, err := s.GetSecret(ctx, want.Name)
		if err != nil {
			t.Fatalf("GetSecret(%q) = %v", want.Name, err)
		}
		if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
			t.Errorf("GetSecret(%q) mismatch (-want +got):\n%s", want.Name, diff)
		}
		got, err = s.GetSecretByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetSecretByID(%q) = %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
			t.Errorf("GetSecretByID(%q) mismatch (-want +got):\n%s", want.ID, diff)
		}
	}
	if got, err := s.GetSecret(ctx, "a"); err == nil && got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}

	list, err := s.ListSecrets(ctx)
	if err != nil {
		t.Fatalf("ListSecrets() = %v", err)
	}
	if diff := cmp.Diff([]Secret{*a, *b, *custom}, list, equateEmpty); diff != "" {
		t.Errorf("ListSecrets() mismatch (-want +got):\n%s", diff)
	}

	dupName := testSecret("a")
	dupName.ID = "sec_other"
	dupID := testSecret("other")
	dupID.ID = a.ID
	errCases := []struct {
		name string
		call func() error
		want error
	}{
		{"create duplicate name", func() error { return s.CreateSecret(ctx, dupName) }, ErrConflict},
		{"create duplicate id", func() error { return s.CreateSecret(ctx, dupID) }, ErrConflict},
		{"get missing", func() error { _, err := s.GetSecret(ctx, "nope"); return err }, ErrNotFound},
		{"get missing id", func() error { _, err := s.GetSecretByID(ctx, "sec_nope"); return err }, ErrNotFound},
		{"delete missing", func() error { return s.DeleteSecret(ctx, "sec_nope") }, ErrNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if err := s.CreateSecret(ctx, dupName); err == nil || err.Error() != `secret name "a": already exists` {
		t.Errorf("CreateSecret(duplicate) error = %v, want %q", err, `secret name "a": already exists`)
	}

	if err := s.DeleteSecret(ctx, b.ID); err != nil {
		t.Fatalf("DeleteSecret(%q) = %v", b.ID, err)
	}
	if _, err := s.GetSecret(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSecret(deleted) = %v, want %v", err, ErrNotFound)
	}
}

func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	sec := mustCreateSecret(t, s, "gh")

	next := *sec
	next.Version = 2
	next.Sealed = []byte("sealed v2")
	next.KeyID = "k2"
	next.Fingerprint = hashOf("fp2")
	next.Shape = nil // keep the stored shape
	next.RotatedAt = t0.Add(time.Hour)
	if err := s.RotateSecret(ctx, &next); err != nil {
		t.Fatalf("RotateSecret(v2) = %v", err)
	}
	got, err := s.GetSecret(ctx, "gh")
	if err != nil {
		t.Fatal(err)
	}
	want := next
	want.Shape = sec.Shape
	if diff := cmp.Diff(&want, got, equateEmpty); diff != "" {
		t.Errorf("after rotate mismatch (-want +got):\n%s", diff)
	}

	withShape := next
	withShape.Version = 3
	withShape.Shape = []byte(`{"prefix":"github_pat_"}`)
	if err := s.RotateSecret(ctx, &withShape); err != nil {
		t.Fatalf("RotateSecret(v3) = %v", err)
	}
	if got, _ := s.GetSecret(ctx, "gh"); string(got.Shape) != string(withShape.Shape) {
		t.Errorf("shape after rotate = %s, want %s", got.Shape, withShape.Shape)
	}

	tests := []struct {
		name    string
		id      string
		version int
		want    error
	}{
		{"same version again", sec.ID, 3, ErrStale},
		{"old version", sec.ID, 2, ErrStale},
		{"skips a version", sec.ID, 5, ErrStale},
		{"missing secret", "sec_nope", 2, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := next
			r.ID, r.Version = tc.id, tc.version
			if err := s.RotateSecret(ctx, &r); !errors.Is(err, tc.want) {
				t.Errorf("RotateSecret(id %q, version %d) = %v, want %v", tc.id, tc.version, err, tc.want)
			}
		})
	}
	if got, _ := s.GetSecret(ctx, "gh"); got.Version != 3 {
		t.Errorf("version after failed rotations = %d, want 3", got.Version)
	}
}

func TestSandboxCRUD(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustCreateSecret(t, s, "gh")

	bs := []Binding{testBinding("web", "GITHUB_TOKEN", "gh")}
	bs[0].SandboxID = "" // filled from the sandbox
	web := mustCreateSandbox(t, s, "web", bs...)
	if bs[0].SandboxID != web.ID {
		t.Errorf("binding SandboxID after CreateSandbox = %q, want %q", bs[0].SandboxID, web.ID)
	}
	api := mustCreateSandbox(t, s, "api")

	got, err := s.GetSandbox(ctx, "web")
	if err != nil {
		t.Fatalf("GetSandbox(%q) = %v", "web", err)
	}
	if diff := cmp.Diff(web, got); diff != "" {
		t.Errorf("GetSandbox(%q) mismatch (-want +got):\n%s", "web", diff)
	}
	got, err = s.GetSandboxByID(ctx, web.ID)
	if err != nil || got.Name != "web" {
		t.Errorf("GetSandboxByID(%q) = %v, %v; want web", web.ID, got, err)
	}
	list, err := s.ListSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Sandbox{*api, *web}, list); diff != "" {
		t.Errorf("ListSandboxes() mismatch (-want +got):\n%s", diff)
	}

	rules := client.NetworkRules{AllowOut: []string{"*.example.com"}, Inspect: "all"}
	if err := s.SetSandboxNetwork(ctx, web.ID, rules); err != nil {
		t.Fatalf("SetSandboxNetwork = %v", err)
	}
	if err := s.SetSandboxState(ctx, web.ID, "stopped"); err != nil {
		t.Fatalf("SetSandboxState = %v", err)
	}
	got, _ = s.GetSandbox(ctx, "web")
	want := *web
	want.Network, want.State = rules, "stopped"
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("after updates mismatch (-want +got):\n%s", diff)
	}

	dup := testSandbox("web")
	dup.ID = "sb_other"
	errCases := []struct {
		name string
		call func() error
		want error
	}{
		{"create duplicate name", func() error { return s.CreateSandbox(ctx, dup, nil) }, ErrConflict},
		{"create duplicate id", func() error { d := testSandbox("x"); d.ID = web.ID; return s.CreateSandbox(ctx, d, nil) }, ErrConflict},
		{"get missing", func() error { _, err := s.GetSandbox(ctx, "nope"); return err }, ErrNotFound},
		{"get missing id", func() error { _, err := s.GetSandboxByID(ctx, "nope"); return err }, ErrNotFound},
		{"network missing", func() error { return s.SetSandboxNetwork(ctx, "nope", rules) }, ErrNotFound},
		{"state missing", func() error { return s.SetSandboxState(ctx, "nope", "x") }, ErrNotFound},
		{"delete missing", func() error { return s.DeleteSandbox(ctx, "nope") }, ErrNotFound},
		{"binding to missing secret", func() error {
			return s.CreateSandbox(ctx, testSandbox("orphan"), []Binding{testBinding("orphan", "X", "nope")})
		}, ErrNotFound},
		{"two bindings same env var", func() error {
			b2 := testBinding("twice", "X", "gh")
			b2.ID, b2.StandInHash = "bd_other", hashOf("other")
			return s.CreateSandbox(ctx, testSandbox("twice"), []Binding{testBinding("twice", "X", "gh"), b2})
		}, ErrConflict},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	// Failed CreateSandbox calls left nothing behind.
	for _, name := range []string{"orphan", "twice"} {
		if _, err := s.GetSandbox(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetSandbox(%q) after failed create = %v, want %v", name, err, ErrNotFound)
		}
	}
	mismatch := testBinding("other", "X", "gh")
	if err := s.CreateSandbox(ctx, testSandbox("mm"), []Binding{mismatch}); err == nil {
		t.Errorf("CreateSandbox with binding for another sandbox = nil, want error")
	}

	if err := s.DeleteSandbox(ctx, api.ID); err != nil {
		t.Fatalf("DeleteSandbox = %v", err)
	}
	if _, err := s.GetSandbox(ctx, "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSandbox(deleted) = %v, want %v", err, ErrNotFound)
	}
}

func TestBindings(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	gh := mustCreateSecret(t, s, "gh")
	oa := mustCreateSecret(t, s, "openai")
	web := mustCreateSandbox(t, s, "web")
	api := mustCreateSandbox(t, s, "api")

	webGH := testBinding("web", "GITHUB_TOKEN", "gh")
	webOA := testBinding("web", "OPENAI_API_KEY", "openai")
	apiGH := testBinding("api", "GITHUB_TOKEN", "gh") // same env var, other sandbox: fine
	for _, b := range []*Binding{&webGH, &webOA, &apiGH} {
		if err := s.CreateBinding(ctx, b); err != nil {
			t.Fatalf("CreateBinding(%q, %q) = %v", b.SandboxID, b.EnvVar, err)
		}
	}
	named := func(b Binding, sandbox, secret string) Binding {
		b.SandboxName, b.SecretName = sandbox, secret
		return b
	}

	got, err := s.BindingByHash(ctx, webOA.StandInHash)
	if err != nil {
		t.Fatalf("BindingByHash = %v", err)
	}
	if diff := cmp.Diff(named(webOA, "web", "openai"), *got); diff != "" {
		t.Errorf("BindingByHash mismatch (-want +got):\n%s", diff)
	}

	lists := []struct {
		name                string
		sandboxID, secretID string
		want                []Binding
	}{
		{"by sandbox", web.ID, "", []Binding{named(webGH, "web", "gh"), named(webOA, "web", "openai")}},
		{"by secret", "", gh.ID, []Binding{named(apiGH, "api", "gh"), named(webGH, "web", "gh")}},
		{"by other sandbox", api.ID, "", []Binding{named(apiGH, "api", "gh")}},
		{"by both", web.ID, oa.ID, []Binding{named(webOA, "web", "openai")}},
		{"neither", "", "", []Binding{named(apiGH, "api", "gh"), named(webGH, "web", "gh"), named(webOA, "web", "openai")}},
		{"unknown sandbox", "nope", "", nil},
	}
	for _, tc := range lists {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListBindings(ctx, tc.sandboxID, tc.secretID)
			if err != nil {
				t.Fatalf("ListBindings(%q, %q) = %v", tc.sandboxID, tc.secretID, err)
			}
			if diff := cmp.Diff(tc.want, got, equateEmpty); diff != "" {
				t.Errorf("ListBindings(%q, %q) mismatch (-want +got):\n%s", tc.sandboxID, tc.secretID, diff)
			}
		})
	}

	envTaken := testBinding("web", "GITHUB_TOKEN", "openai")
	envTaken.ID, envTaken.StandInHash = "bd_new1", hashOf("new1")
	hashTaken := testBinding("web", "OTHER", "gh")
	hashTaken.StandInHash = webGH.StandInHash
	idTaken := testBinding("web", "THIRD", "gh")
	idTaken.ID = webGH.ID
	noSandbox := testBinding("nope", "X", "gh")
	noSecret := testBinding("web", "Y", "nope")
	noHash := testBinding("web", "Z", "gh")
	noHash.StandInHash = nil
	errCases := []struct {
		name string
		b    Binding
		want error
	}{
		{"env var taken", envTaken, ErrConflict},
		{"hash taken", hashTaken, ErrConflict},
		{"id taken", idTaken, ErrConflict},
		{"missing sandbox", noSandbox, ErrNotFound},
		{"missing secret", noSecret, ErrNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CreateBinding(ctx, &tc.b); !errors.Is(err, tc.want) {
				t.Errorf("CreateBinding(%q, %q) = %v, want %v", tc.b.SandboxID, tc.b.EnvVar, err, tc.want)
			}
		})
	}
	if err := s.CreateBinding(ctx, &noHash); err == nil {
		t.Errorf("CreateBinding(no hash) = nil, want error")
	}
	if err := s.CreateBinding(ctx, &envTaken); err == nil || err.Error() != `env var "GITHUB_TOKEN" in sandbox id "sb_web": already exists` {
		t.Errorf("CreateBinding(env var taken) error = %v", err)
	}

	for _, h := range [][]byte{nil, hashOf("unknown")} {
		if _, err := s.BindingByHash(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("BindingByHash(%x) = %v, want %v", h, err, ErrNotFound)
		}
	}

	if err := s.DeleteBinding(ctx, web.ID, "GITHUB_TOKEN"); err != nil {
		t.Fatalf("DeleteBinding = %v", err)
	}
	if _, err := s.BindingByHash(ctx, webGH.StandInHash); !errors.Is(err, ErrNotFound) {
		t.Errorf("BindingByHash(deleted) = %v, want %v", err, ErrNotFound)
	}
	if err := s.DeleteBinding(ctx, web.ID, "GITHUB_TOKEN"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteBinding(again) = %v, want %v", err, ErrNotFound)
	}
	// The env var is free again.
	if err := s.CreateBinding(ctx, &envTaken); err != nil {
		t.Errorf("CreateBinding(freed env var) = %v", err)
	}
}

func TestDeleteCascades(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	gh := mustCreateSecret(t, s, "gh")
	oa := mustCreateSecret(t, s, "openai")
	web := mustCreateSandbox(t, s, "web",
		testBinding("web", "GITHUB_TOKEN", "gh"), testBinding("web", "OPENAI_API_KEY", "openai"))
	mustCreateSandbox(t, s, "api", testBinding("api", "GITHUB_TOKEN", "gh"))
	recs := []Activity{
		{Time: t0, SecretID: gh.ID, SecretName: "gh", SandboxID: web.ID, SandboxName: "web", Status: 200},
		{Time: t0, SecretID: oa.ID, SecretName: "openai", SandboxID: web.ID, SandboxName: "web", Status: 200},
	}
	if err := s.AppendActivity(ctx, recs); err != nil {
		t.Fatal(err)
	}

	// Sandbox delete: its bindings go, activity stays.
	if err := s.DeleteSandbox(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"GITHUB_TOKEN", "OPENAI_API_KEY"} {
		if _, err := s.BindingByHash(ctx, hashOf("web/"+env)); !errors.Is(err, ErrNotFound) {
			t.Errorf("BindingByHash(web/%s) after sandbox delete = %v, want %v", env, err, ErrNotFound)
		}
	}
	if _, err := s.BindingByHash(ctx, hashOf("api/GITHUB_TOKEN")); err != nil {
		t.Errorf("BindingByHash(api/GITHUB_TOKEN) after other sandbox delete = %v", err)
	}
	if got, _ := s.ListActivity(ctx, ActivityQuery{SecretID: gh.ID}); len(got) != 1 || got[0].SandboxName != "web" {
		t.Errorf("activity after sandbox delete = %+v, want the one record naming sandbox web", got)
	}

	// Secret delete: its bindings and activity go, others stay.
	if err := s.DeleteSecret(ctx, gh.ID); err != nil {
		t.Fatal(err)
	}
	if bs, _ := s.ListBindings(ctx, "", ""); len(bs) != 0 {
		t.Errorf("bindings after secret delete = %+v, want none", bs)
	}
	if got, _ := s.ListActivity(ctx, ActivityQuery{SecretID: gh.ID}); len(got) != 0 {
		t.Errorf("activity of deleted secret = %+v, want none", got)
	}
	if got, _ := s.ListActivity(ctx, ActivityQuery{SecretID: oa.ID}); len(got) != 1 {
		t.Errorf("activity of other secret = %d records, want 1", len(got))
	}
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.GetMeta(ctx, "canary"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetMeta(missing) = %v, want %v", err, ErrNotFound)
	}
	if _, err := s.GetSealedMeta(ctx, "standin-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSealedMeta(missing) = %v, want %v", err, ErrNotFound)
	}
	steps := []struct {
		key    string
		val    []byte
		sealed bool
	}{
		{"canary", []byte("v1"), false},
		{"canary", []byte("v2"), false}, // overwrite
		{"empty", nil, false},
		{"standin-key", []byte("sealed-key"), true},
	}
	for _, st := range steps {
		var err error
		if st.sealed {
			err = s.PutSealedMeta(ctx, st.key, st.val, "k1")
		} else {
			err = s.PutMeta(ctx, st.key, st.val)
		}
		if err != nil {
			t.Fatalf("put %q = %v", st.key, err)
		}
	}
	checks := []struct {
		name   string
		get    func(context.Context, string) ([]byte, error)
		key    string
		want   []byte
		wantIs error
	}{
		{"plain", s.GetMeta, "canary", []byte("v2"), nil},
		{"empty", s.GetMeta, "empty", []byte{}, nil},
		{"sealed", s.GetSealedMeta, "standin-key", []byte("sealed-key"), nil},
		{"sealed via GetMeta", s.GetMeta, "standin-key", nil, ErrNotFound},
		{"plain via GetSealedMeta", s.GetSealedMeta, "canary", nil, ErrNotFound},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.get(ctx, c.key)
			if !errors.Is(err, c.wantIs) {
				t.Fatalf("get(%q) error = %v, want %v", c.key, err, c.wantIs)
			}
			if diff := cmp.Diff(c.want, got); err == nil && diff != "" {
				t.Errorf("get(%q) mismatch (-want +got):\n%s", c.key, diff)
			}
		})
	}
	if err := s.PutMeta(ctx, "", []byte("x")); err == nil {
		t.Errorf("PutMeta(empty key) = nil, want error")
	}
}

func TestKeyIDsAndRewrap(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a := mustCreateSecret(t, s, "a")
	b := testSecret("b")
	b.KeyID = "k0"
	if err := s.CreateSecret(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSealedMeta(ctx, "standin-key", []byte("sealed-meta"), "k9"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, "plain", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	keyIDs := func() []string {
		t.Helper()
		ids, err := s.KeyIDs(ctx)
		if err != nil {
			t.Fatalf("KeyIDs() = %v", err)
		}
		return ids
	}
	if diff := cmp.Diff([]string{"k0", "k1", "k9"}, keyIDs()); diff != "" {
		t.Errorf("KeyIDs() mismatch (-want +got):\n%s", diff)
	}

	var seen []string
	err := s.Rewrap(ctx, func(sealed []byte) ([]byte, string, error) {
		seen = append(seen, string(sealed))
		return append([]byte("k2:"), sealed...), "k2", nil
	})
	if err != nil {
		t.Fatalf("Rewrap = %v", err)
	}
	if diff := cmp.Diff([]string{"sealed:a", "sealed:b", "sealed-meta"}, seen); diff != "" {
		t.Errorf("Rewrap saw blobs mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k2"}, keyIDs()); diff != "" {
		t.Errorf("KeyIDs() after Rewrap mismatch (-want +got):\n%s", diff)
	}
	got, _ := s.GetSecret(ctx, "a")
	if string(got.Sealed) != "k2:sealed:a" || got.KeyID != "k2" || got.Version != a.Version {
		t.Errorf("secret a after Rewrap = sealed %q key %q version %d", got.Sealed, got.KeyID, got.Version)
	}
	if m, _ := s.GetSealedMeta(ctx, "standin-key"); string(m) != "k2:sealed-meta" {
		t.Errorf("sealed meta after Rewrap = %q", m)
	}
	if m, _ := s.GetMeta(ctx, "plain"); string(m) != "plain" {
		t.Errorf("plain meta after Rewrap = %q, want untouched", m)
	}
}

func TestRewrapAtomic(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		mustCreateSecret(t, s, n)
	}
	if err := s.PutSealedMeta(ctx, "standin-key", []byte("sealed-meta"), "k1"); err != nil {
		t.Fatal(err)
	}
	before, _ := s.ListSecrets(ctx)

	for _, failAt := range []int{1, 3, 5} { // a secret midway, the last secret, the meta value
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			calls := 0
			boom := errors.New("boom")
			err := s.Rewrap(ctx, func(sealed []byte) ([]byte, string, error) {
				calls++
				if calls == failAt {
					return nil, "", boom
				}
				return []byte("new"), "k2", nil
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Rewrap(fails at %d) = %v, want %v", failAt, err, boom)
			}
			after, _ := s.ListSecrets(ctx)
			if diff := cmp.Diff(before, after, equateEmpty); diff != "" {
				t.Errorf("secrets changed by failed Rewrap (-before +after):\n%s", diff)
			}
			if m, _ := s.GetSealedMeta(ctx, "standin-key"); string(m) != "sealed-meta" {
				t.Errorf("sealed meta after failed Rewrap = %q", m)
			}
			if ids, _ := s.KeyIDs(ctx); !slices.Equal(ids, []string{"k1"}) {
				t.Errorf("KeyIDs() after failed Rewrap = %q, want [k1]", ids)
			}
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustCreateSecret(t, s, "shared")
	mustCreateSandbox(t, s, "sb")
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("g%d-%d", g, i)
				var err error
				switch i % 3 {
				case 0:
					err = s.CreateSecret(ctx, testSecret(name))
				case 1:
					b := testBinding("sb", name, "shared")
					err = s.CreateBinding(ctx, &b)
				default:
					err = s.AppendActivity(ctx, []Activity{{Time: t0, SecretID: "sec_shared", SecretName: "shared", Path: name}})
				}
				if err != nil {
					errs <- fmt.Errorf("write %s: %w", name, err)
				}
				// A reader alongside the writers.
				if _, err := s.ListActivity(ctx, ActivityQuery{SecretID: "sec_shared", Limit: 5}); err != nil {
					errs <- fmt.Errorf("read %s: %w", name, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	count := func(table string) int {
		var n int
		if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Per worker: i%3==0 for 17 of 50, ==1 for 17, ==2 for 16.
	for table, want := range map[string]int{"secrets": 1 + workers*17, "bindings": workers * 17, "activity": workers * 16} {
		if got := count(table); got != want {
			t.Errorf("rows in %s = %d, want %d", table, got, want)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateSecret(ctx, testSecret("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateSecret(canceled ctx) = %v, want %v", err, context.Canceled)
	}
	if _, err := s.GetSecret(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSecret after canceled create = %v, want %v", err, ErrNotFound)
	}
}

// TestReadKeyIDsCreatesNothing: reading the key ids of a cleanly closed
// database (a server refusing a wrong master key does it) leaves the
// directory as it was: SQLite would make a -wal and a -shm even read-only.
func TestReadKeyIDsCreatesNothing(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	if err := s.PutSealedMeta(ctx, "k", []byte("sealed"), "key-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		ents, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	before := list()
	ids, err := ReadKeyIDs(ctx, path)
	if err != nil || !slices.Equal(ids, []string{"key-1"}) {
		t.Fatalf("ReadKeyIDs = %q, %v; want [key-1]", ids, err)
	}
	if diff := cmp.Diff(before, list()); diff != "" {
		t.Errorf("files after ReadKeyIDs (-before +after):\n%s", diff)
	}
}
