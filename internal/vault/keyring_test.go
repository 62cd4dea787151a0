package vault

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes a file with mode perm exactly (whatever the umask).
func writeFile(tb testing.TB, path, content string, perm os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		tb.Fatal(err)
	}
}

// loadKeyring calls LoadKeyring or fails the test.
func loadKeyring(tb testing.TB, dir, env string) *Keyring {
	tb.Helper()
	kr, err := LoadKeyring(dir, env)
	if err != nil {
		tb.Fatalf("LoadKeyring(%q): %v", dir, err)
	}
	return kr
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestLoadKeyringGeneratesFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	kr := loadKeyring(t, dir, "")
	if !kr.Generated() || kr.Source() != SourceFile {
		t.Errorf("Generated() = %v, Source() = %v, want true, file", kr.Generated(), kr.Source())
	}
	path := filepath.Join(dir, "master.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of %s = %04o, want 0600", path, got)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(text), "\n") {
		t.Errorf("%s does not end in a newline", path)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(text), "\n"))
	if err != nil || len(key) != 32 {
		t.Fatalf("%s: decoded %d bytes, err %v; want base64 of 32 bytes", path, len(key), err)
	}
	if want := hexID(key); kr.CurrentID() != want {
		t.Errorf("CurrentID() = %q, want id of the file's key %q", kr.CurrentID(), want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only master.key (no temporary files)", len(entries))
	}

	again := loadKeyring(t, dir, "")
	if again.Generated() || again.CurrentID() != kr.CurrentID() {
		t.Errorf("second load: Generated() = %v, CurrentID() = %q; want false, %q", again.Generated(), again.CurrentID(), kr.CurrentID())
	}
	if again.PendingRotation() {
		t.Errorf("PendingRotation() = true without master.key.next")
	}
}

func hexID(key []byte) string {
	mk, err := newMasterKey(key)
	if err != nil {
		panic(err)
	}
	return mk.id
}

func TestLoadKeyringFileMode(t *testing.T) {
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660, 0o666} {
		dir := t.TempDir()
		path := filepath.Join(dir, "master.key")
		writeFile(t, path, b64(testKey(1))+"\n", perm)
		_, err := LoadKeyring(dir, "")
		if err == nil {
			t.Fatalf("LoadKeyring with mode %04o: no error", perm)
		}
		for _, want := range []string{"chmod 600 " + path, path, "readable only by its owner"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("LoadKeyring with mode %04o: error %q does not contain %q", perm, err, want)
			}
		}
		if strings.Contains(err.Error(), b64(testKey(1))) {
			t.Errorf("error contains the key")
		}
	}
	// 0400 is fine: owner-only.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "master.key"), b64(testKey(1))+"\n", 0o400)
	loadKeyring(t, dir, "")
}

func TestLoadKeyringBadFile(t *testing.T) {
	tests := []struct {
		name, content string
	}{
		{"empty", ""},
		{"short key", b64(testKey(1)[:16])},
		{"not base64", "this is not a key at all!!!"},
		{"long file", strings.Repeat(b64(testKey(1)), 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "master.key")
			writeFile(t, path, tt.content, 0o600)
			_, err := LoadKeyring(dir, "")
			if err == nil {
				t.Fatalf("LoadKeyring(%q content): no error", tt.content)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if tt.content != "" && strings.Contains(err.Error(), tt.content) {
				t.Errorf("error %q contains the file's content", err)
			}
		})
	}
}

func TestLoadKeyringEnv(t *testing.T) {
	key := []byte(strings.Repeat("\xfb", 32)) // base64 has '+' and '/'
	want := hexID(key)
	encodings := map[string]*base64.Encoding{
		"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
		"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
	}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			kr := loadKeyring(t, dir, enc.EncodeToString(key)+"\n")
			if kr.CurrentID() != want || kr.Source() != SourceEnv {
				t.Errorf("CurrentID() = %q, Source() = %v; want %q, environment", kr.CurrentID(), kr.Source(), want)
			}
			if exists(filepath.Join(dir, "master.key")) {
				t.Errorf("LoadKeyring with an env key wrote master.key")
			}
		})
	}

	t.Run("env wins over file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "master.key"), b64(testKey(1))+"\n", 0o600)
		kr := loadKeyring(t, dir, b64(testKey(2)))
		if kr.CurrentID() != hexID(testKey(2)) || kr.Has(hexID(testKey(1))) {
			t.Errorf("CurrentID() = %q, want env key %q and no file key", kr.CurrentID(), hexID(testKey(2)))
		}
	})
}

func TestLoadKeyringBadEnv(t *testing.T) {
	tests := []struct{ name, env string }{
		{"not base64", "not a key!"},
		{"16 bytes", b64(testKey(1)[:16])},
		{"33 bytes", b64(append(testKey(1), 1))},
		{"hex", strings.Repeat("ab", 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeyring(t.TempDir(), tt.env)
			if err == nil {
				t.Fatalf("LoadKeyring(env %q): no error", tt.env)
			}
			for _, want := range []string{"STANDIN_MASTER_KEY must be base64 of 32 bytes", "head -c32 /dev/urandom | base64"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), tt.env) {
				t.Errorf("error %q contains the env value", err)
			}
		})
	}
}

func TestWrongMasterKeyCannotOpen(t *testing.T) {
	a := New(loadKeyring(t, t.TempDir(), ""), nil)
	b := New(loadKeyring(t, t.TempDir(), ""), nil)
	blob := mustSeal(t, a, "sec", 1, testValue)
	if _, err := b.Unseal("sec", 1, blob); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Unseal with another data dir's key: error = %v, want ErrUnknownKey", err)
	}
}

func TestRotationFile(t *testing.T) {
	dir := t.TempDir()
	kr := loadKeyring(t, dir, "")
	vt := New(kr, nil)
	oldID := kr.CurrentID()
	before := mustSeal(t, vt, "sec", 1, "before")

	r, err := kr.BeginRotation(dir, "")
	if err != nil {
		t.Fatalf("BeginRotation: %v", err)
	}
	next := filepath.Join(dir, "master.key.next")
	if fi, err := os.Stat(next); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key.next: stat %v, err %v; want mode 0600", fi, err)
	}
	if kr.CurrentID() == oldID || kr.CurrentID() != r.NewID() || r.OldID() != oldID {
		t.Errorf("after BeginRotation: CurrentID() = %q, old %q, NewID() = %q", kr.CurrentID(), oldID, r.NewID())
	}
	if _, err := kr.BeginRotation(dir, ""); err == nil {
		t.Errorf("second BeginRotation during a rotation: no error")
	}
	during := mustSeal(t, vt, "sec", 2, "during")
	if id, _ := KeyID(during); id != r.NewID() {
		t.Errorf("Seal during rotation used key %q, want new key %q", id, r.NewID())
	}
	if got := mustUnseal(t, vt, "sec", 1, before); got != "before" {
		t.Errorf("old blob during rotation = %q", got)
	}
	rewrapped, err := vt.Rewrap(before)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}

	if err := r.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if exists(next) {
		t.Errorf("master.key.next exists after Commit")
	}
	if kr.Has(oldID) {
		t.Errorf("old key still in keyring after Commit")
	}
	if err := r.Commit(); err == nil {
		t.Errorf("second Commit: no error")
	}
	reloaded := New(loadKeyring(t, dir, ""), nil)
	if reloaded.kr.CurrentID() != r.NewID() {
		t.Errorf("after reload: CurrentID() = %q, want %q", reloaded.kr.CurrentID(), r.NewID())
	}
	if got := mustUnseal(t, reloaded, "sec", 1, rewrapped); got != "before" {
		t.Errorf("rewrapped blob after reload = %q", got)
	}
	if got := mustUnseal(t, reloaded, "sec", 2, during); got != "during" {
		t.Errorf("blob sealed during rotation after reload = %q", got)
	}
	if _, err := reloaded.Unseal("sec", 1, before); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("blob under the dropped key: error = %v, want ErrUnknownKey", err)
	}
}

// TestRotationCrash: the process dies after rewrapping some blobs but before
// Commit. On restart both keys open data, and the rotation can be finished.
func TestRotationCrash(t *testing.T) {
	dir := t.TempDir()
	kr := loadKeyring(t, dir, "")
	vt := New(kr, nil)
	oldID := kr.CurrentID()
	old := mustSeal(t, vt, "a", 1, "value-a")
	notYet := mustSeal(t, vt, "b", 1, "value-b")
	r, err := kr.BeginRotation(dir, "")
	if err != nil {
		t.Fatalf("BeginRotation: %v", err)
	}
	newID := r.NewID()
	rewrapped, err := vt.Rewrap(old)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	// Crash: no Commit, no Abort.

	kr2 := loadKeyring(t, dir, "")
	vt2 := New(kr2, nil)
	if !kr2.PendingRotation() || !kr2.Has(oldID) || !kr2.Has(newID) {
		t.Fatalf("after crash: PendingRotation() = %v, Has(old) = %v, Has(new) = %v; want all true",
			kr2.PendingRotation(), kr2.Has(oldID), kr2.Has(newID))
	}
	if kr2.CurrentID() != oldID {
		t.Errorf("after crash: CurrentID() = %q, want old %q until the rotation resumes", kr2.CurrentID(), oldID)
	}
	for _, c := range []struct {
		id, want string
		blob     []byte
	}{{"a", "value-a", old}, {"a", "value-a", rewrapped}, {"b", "value-b", notYet}} {
		if got := mustUnseal(t, vt2, c.id, 1, c.blob); got != c.want {
			t.Errorf("after crash: Unseal(%q) = %q, want %q", c.id, got, c.want)
		}
	}
	if _, err := kr2.BeginRotation(dir, ""); err == nil {
		t.Errorf("BeginRotation with a pending rotation: no error")
	}

	r2, err := kr2.ResumeRotation()
	if err != nil {
		t.Fatalf("ResumeRotation: %v", err)
	}
	if kr2.CurrentID() != newID || r2.NewID() != newID || r2.OldID() != oldID {
		t.Errorf("after ResumeRotation: CurrentID() = %q, rotation %q -> %q; want %q -> %q", kr2.CurrentID(), r2.OldID(), r2.NewID(), oldID, newID)
	}
	notYet, err = vt2.Rewrap(notYet)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if err := r2.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	kr3 := loadKeyring(t, dir, "")
	if kr3.PendingRotation() || kr3.CurrentID() != newID || kr3.Has(oldID) {
		t.Errorf("after Commit and reload: PendingRotation() = %v, CurrentID() = %q, Has(old) = %v", kr3.PendingRotation(), kr3.CurrentID(), kr3.Has(oldID))
	}
	if got := mustUnseal(t, New(kr3, nil), "b", 1, notYet); got != "value-b" {
		t.Errorf("after Commit: Unseal(b) = %q", got)
	}
	if _, err := kr3.ResumeRotation(); err == nil {
		t.Errorf("ResumeRotation without a pending rotation: no error")
	}
}

func TestRotationAbort(t *testing.T) {
	dir := t.TempDir()
	kr := loadKeyring(t, dir, "")
	vt := New(kr, nil)
	oldID := kr.CurrentID()
	blob := mustSeal(t, vt, "s", 1, "v")
	r, err := kr.BeginRotation(dir, "")
	if err != nil {
		t.Fatalf("BeginRotation: %v", err)
	}
	if err := r.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if exists(filepath.Join(dir, "master.key.next")) {
		t.Errorf("master.key.next exists after Abort")
	}
	if kr.CurrentID() != oldID || kr.Has(r.NewID()) {
		t.Errorf("after Abort: CurrentID() = %q, Has(new) = %v; want %q, false", kr.CurrentID(), kr.Has(r.NewID()), oldID)
	}
	if id, _ := KeyID(mustSeal(t, vt, "s", 2, "v")); id != oldID {
		t.Errorf("Seal after Abort used key %q, want %q", id, oldID)
	}
	if got := mustUnseal(t, vt, "s", 1, blob); got != "v" {
		t.Errorf("Unseal after Abort = %q", got)
	}
	if err := r.Commit(); err == nil {
		t.Errorf("Commit after Abort: no error")
	}
	// A new rotation can start.
	r2, err := kr.BeginRotation(dir, "")
	if err != nil {
		t.Fatalf("BeginRotation after Abort: %v", err)
	}
	if err := r2.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := loadKeyring(t, dir, "").CurrentID(); got != r2.NewID() {
		t.Errorf("after Commit and reload: CurrentID() = %q, want %q", got, r2.NewID())
	}
}

func TestRotationEnv(t *testing.T) {
	dir := t.TempDir()
	kr := loadKeyring(t, dir, b64(testKey(1)))
	vt := New(kr, nil)
	blob := mustSeal(t, vt, "s", 1, "v")

	_, err := kr.BeginRotation(dir, "")
	if err == nil || !strings.Contains(err.Error(), "STANDIN_NEW_MASTER_KEY") {
		t.Fatalf("BeginRotation with env key and no new key: error = %v, want one naming STANDIN_NEW_MASTER_KEY", err)
	}
	if _, err := kr.BeginRotation(dir, "short"); err == nil || !strings.Contains(err.Error(), "STANDIN_NEW_MASTER_KEY must be base64 of 32 bytes") {
		t.Errorf("BeginRotation with bad new key: error = %v", err)
	}
	if _, err := kr.BeginRotation(dir, b64(testKey(1))); err == nil {
		t.Errorf("BeginRotation with the same key: no error")
	}
	r, err := kr.BeginRotation(dir, b64(testKey(2)))
	if err != nil {
		t.Fatalf("BeginRotation: %v", err)
	}
	if r.NewID() != hexID(testKey(2)) || kr.CurrentID() != r.NewID() {
		t.Errorf("NewID() = %q, CurrentID() = %q, want %q", r.NewID(), kr.CurrentID(), hexID(testKey(2)))
	}
	re, err := vt.Rewrap(blob)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("env rotation wrote %d files to the data dir", len(entries))
	}
	if kr.Has(hexID(testKey(1))) {
		t.Errorf("old key still in keyring after Commit")
	}
	// The operator restarts with the new key.
	if got := mustUnseal(t, New(loadKeyring(t, dir, b64(testKey(2))), nil), "s", 1, re); got != "v" {
		t.Errorf("Unseal after restart with new key = %q", got)
	}
}

func TestAddKey(t *testing.T) {
	old := New(newTestKeyring(t, 1), nil)
	blob := mustSeal(t, old, "s", 1, "v")
	kr := newTestKeyring(t, 2)
	id, err := kr.AddKey("STANDIN_OLD_MASTER_KEY", b64(testKey(1)))
	if err != nil {
		t.Fatalf("AddKey: %v", err)
	}
	if id != hexID(testKey(1)) || kr.CurrentID() != hexID(testKey(2)) {
		t.Errorf("AddKey = %q, CurrentID() = %q; the added key must open, not seal", id, kr.CurrentID())
	}
	if got := mustUnseal(t, New(kr, nil), "s", 1, blob); got != "v" {
		t.Errorf("Unseal with added key = %q", got)
	}
	if _, err := kr.AddKey("STANDIN_OLD_MASTER_KEY", "nope"); err == nil || !strings.Contains(err.Error(), "STANDIN_OLD_MASTER_KEY must be base64") {
		t.Errorf("AddKey(bad) error = %v", err)
	}
}

func TestNewKeyringBadKey(t *testing.T) {
	if _, err := NewKeyring(make([]byte, 16)); err == nil {
		t.Errorf("NewKeyring(16 bytes): no error")
	}
}
