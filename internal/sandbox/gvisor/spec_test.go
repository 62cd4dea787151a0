package gvisor

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
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

func TestHideMount(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	sandboxtest.WriteFile(t, file, "k", 0o600)
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
