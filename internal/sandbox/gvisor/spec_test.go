package gvisor

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// The bundle of a sandbox, as runsc reads it. Reviewing a change to what a
// sandbox can see starts with the diff of this file.
func TestBundleSpecGolden(t *testing.T) {
	spec := sandbox.Spec{
		ID:       "sbx_1",
		Hostname: "agent",
		Env:      []string{"GITHUB_TOKEN=ghp_standin"},
		NetNS:    "/run/netns/standin-sbx_1",
		Mounts: []sandbox.Mount{
			{Source: "/var/lib/standin/sandboxes/sbx_1/resolv.conf", Target: "/etc/resolv.conf"},
			{Source: "/srv/work/", Target: "/home/sandbox/work", Writable: true},
		},
		Hide: []string{"/standin-test-no-such-dir", "/etc/passwd"},
		UID:  1000,
		GID:  1000,
	}
	got, err := bundleSpec(spec, "/run/standin/gvisor/bundles/sbx_1/empty", []string{"/run/standin/gvisor"}, "/usr/local/bin/standin")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(got, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "config.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)+"\n"); diff != "" {
		t.Errorf("bundleSpec mismatch (-want +got):\n%s", diff)
	}
	if strings.Contains(string(b), "ghp_standin") {
		t.Error("config.json holds Spec.Env: it belongs to commands, not to the bundle")
	}
}

func TestValidate(t *testing.T) {
	ok := sandbox.Spec{ID: "sbx_01.a-b"}
	tests := []struct {
		name string
		edit func(*sandbox.Spec)
		ok   bool
	}{
		{"minimal", func(*sandbox.Spec) {}, true},
		{"empty id", func(s *sandbox.Spec) { s.ID = "" }, false},
		{"id with slash", func(s *sandbox.Spec) { s.ID = "a/b" }, false},
		{"id starting with dot", func(s *sandbox.Spec) { s.ID = ".a" }, false},
		{"id too long", func(s *sandbox.Spec) { s.ID = strings.Repeat("a", 65) }, false},
		{"id of 64", func(s *sandbox.Spec) { s.ID = strings.Repeat("a", 64) }, true},
		{"env", func(s *sandbox.Spec) { s.Env = []string{"A=1", "B="} }, true},
		{"env without =", func(s *sandbox.Spec) { s.Env = []string{"A"} }, false},
		{"env without key", func(s *sandbox.Spec) { s.Env = []string{"=1"} }, false},
		{"env with NUL", func(s *sandbox.Spec) { s.Env = []string{"A=1\x00"} }, false},
		{"relative netns", func(s *sandbox.Spec) { s.NetNS = "ns" }, false},
		{"mount", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/etc/hostname", Target: "/x"}} }, true},
		{"relative mount target", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/etc/hostname", Target: "x"}} }, false},
		{"mount source missing", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/no/such", Target: "/x"}} }, false},
		{"hide", func(s *sandbox.Spec) { s.Hide = []string{"/var/lib/standin"} }, true},
		{"hide root", func(s *sandbox.Spec) { s.Hide = []string{"//"} }, false},
		{"hide relative", func(s *sandbox.Spec) { s.Hide = []string{"data"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			err := validate(s)
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("validate(%+v) = %v, want ok %v", s, err, tt.ok)
			}
		})
	}
}

// Errors name the key of a bad environment entry, never its value.
func TestValidateEnvRedacts(t *testing.T) {
	err := validateEnv([]string{"TOKEN=secret\x00value"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("validateEnv = %v, want an error without the value", err)
	}
}

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name  string
		lists [][]string
		want  []string
	}{
		{"empty", nil, nil},
		{"one", [][]string{{"A=1", "B=2"}}, []string{"A=1", "B=2"}},
		{"override keeps position", [][]string{{"A=1", "B=2"}, {"A=3", "C=4"}}, []string{"A=3", "B=2", "C=4"}},
		{"empty value overrides", [][]string{{"A=1"}, {"A="}}, []string{"A="}},
		{"value with =", [][]string{{"A=x=y"}}, []string{"A=x=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mergeEnv(tt.lists...)); diff != "" {
				t.Errorf("mergeEnv(%q) mismatch (-want +got):\n%s", tt.lists, diff)
			}
		})
	}
}

func TestHideMount(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeFile(t, file, "k", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []ociMount
	}{
		{dir, []ociMount{{Destination: dir, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755"}}}},
		{dir + "/missing/", []ociMount{{Destination: dir + "/missing", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755"}}}},
		{file, []ociMount{{Destination: file, Type: "bind", Source: "/empty", Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}}},
		{link, []ociMount{
			{Destination: link, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755"}},
			{Destination: dir, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755"}},
		}},
	}
	for _, tt := range tests {
		got, err := hideMount(tt.path, "/empty")
		if err != nil {
			t.Errorf("hideMount(%q): %v", tt.path, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("hideMount(%q) mismatch (-want +got):\n%s", tt.path, diff)
		}
	}
}

func TestRunscError(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"none", "", ""},
		{"error", `{"msg":"executing processes for container: failed to load /x: no such file or directory","level":"error","time":"2026-01-01T00:00:00Z"}` + "\n",
			"executing processes for container: failed to load /x: no such file or directory"},
		{"text lines ignored", "W1126 warning\n{\"msg\":\"m\",\"level\":\"error\"}\n", "m"},
		{"not an error", `{"msg":"m","level":"info"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runscError([]byte(tt.log)); got != tt.want {
				t.Errorf("runscError(%q) = %q, want %q", tt.log, got, tt.want)
			}
		})
	}
}
