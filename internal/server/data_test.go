package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/vault"
)

func openData(tb testing.TB, dir string) *Data {
	tb.Helper()
	d, err := OpenData(context.Background(), dir, nil)
	if err != nil {
		tb.Fatalf("OpenData: %v", err)
	}
	return d
}

// putSecret seals value as secret id version 1 and stores it.
func putSecret(tb testing.TB, d *Data, id, value string) {
	tb.Helper()
	sealed, err := d.Vault.Seal(id, 1, vault.NewValue([]byte(value)))
	if err != nil {
		tb.Fatal(err)
	}
	kid, _ := vault.KeyID(sealed)
	err = d.Store.CreateSecret(context.Background(), &store.Secret{ID: id, Name: id, Provider: "custom",
		Version: 1, Sealed: sealed, KeyID: kid, Shape: []byte("{}")})
	if err != nil {
		tb.Fatal(err)
	}
}

func openSecret(tb testing.TB, d *Data, id string) string {
	tb.Helper()
	s, err := d.Store.GetSecretByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := d.Vault.Unseal(id, s.Version, s.Sealed)
	if err != nil {
		tb.Fatalf("unseal %s after rotation: %v", id, err)
	}
	return string(v.Reveal())
}

func TestRotateMasterKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d := openData(t, dir)
	putSecret(t, d, "a", "value-a")
	putSecret(t, d, "b", "value-b")
	oldKey, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	oldID := d.Keyring.CurrentID()

	gotOld, newID, n, err := d.RotateMasterKey(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if gotOld != oldID || newID == oldID {
		t.Errorf("RotateMasterKey ids = %s -> %s, want %s -> something new", gotOld, newID, oldID)
	}
	if n != 3 { // two secrets and the stand-in key
		t.Errorf("rewrapped %d blobs, want 3", n)
	}
	d.Close()

	newKey, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if string(newKey) == string(oldKey) {
		t.Fatal("master.key unchanged after rotation")
	}
	d = openData(t, dir)
	defer d.Close()
	ids, _ := d.Store.KeyIDs(context.Background())
	if len(ids) != 1 || ids[0] != newID {
		t.Errorf("key ids after rotation = %v, want [%s]", ids, newID)
	}
	for id, want := range map[string]string{"a": "value-a", "b": "value-b"} {
		if got := openSecret(t, d, id); got != want {
			t.Errorf("secret %s changed by rotation", id)
		}
	}
}

// A rotation that crashed after writing master.key.next but before the
// rewrap committed is finished on the next start, and nothing is lost.
func TestInterruptedRotationIsFinished(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d := openData(t, dir)
	putSecret(t, d, "a", "value-a")
	if _, err := d.Keyring.BeginRotation(dir, ""); err != nil {
		t.Fatal(err)
	}
	d.Close() // crash: no rewrap, no commit

	if _, err := os.Stat(filepath.Join(dir, "master.key.next")); err != nil {
		t.Fatalf("test setup: %v", err)
	}
	d = openData(t, dir)
	defer d.Close()
	if _, err := os.Stat(filepath.Join(dir, "master.key.next")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("master.key.next still there after start: %v", err)
	}
	if got := openSecret(t, d, "a"); got != "value-a" {
		t.Error("secret changed by finished rotation")
	}
}

func TestDataDirIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d := openData(t, dir)
	defer d.Close()
	_, err := OpenData(context.Background(), dir, nil)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenData = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestDataDirMustBePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	_, err := OpenData(context.Background(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("OpenData on a 0755 dir = %v, want a refusal saying chmod 700", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	tok, err := loadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, TokenFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %#o, want 0600", fi.Mode().Perm())
	}
	again, err := loadOrCreateToken(dir)
	if err != nil || again != tok {
		t.Errorf("second load = %q, %v; want the same token", again, err)
	}
	os.Chmod(filepath.Join(dir, TokenFile), 0o644)
	if _, err := loadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 token file: err = %v, want refusal with chmod 600", err)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"empty", `{}`, ""},
		{"full", `{"version":1,"dataDir":"/tmp/x","listen":"127.0.0.1:9999","log":{"format":"json","level":"debug"}}`, ""},
		{"unknown field", `{"listn":"x"}`, `unknown field "listn"`},
		{"syntax", "{\n\"version\": 1,\n}", "line 3"},
		{"public listen", `{"listen":"0.0.0.0:8720"}`, "loopback"},
		{"bad version", `{"version":2}`, "version"},
		{"bad format", `{"log":{"format":"xml"}}`, "log.format"},
		{"socket only", `{"listen":"off"}`, ""},
		{"runtime none", `{"runtime":"none"}`, ""},
		{"runtime gvisor with runsc", `{"runtime":"gvisor","runscPath":"/usr/local/bin/runsc"}`, ""},
		{"bad runtime", `{"runtime":"docker"}`, "config field runtime"},
		{"relative runsc", `{"runscPath":"bin/runsc"}`, "config field runscPath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.doc))
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("config %s: %v", tt.doc, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("config %s: err = %v, want containing %q", tt.doc, err, tt.wantErr)
			}
		})
	}
}
