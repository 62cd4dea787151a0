package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/standin/standin/internal/sandbox"
)

// The host's root is seen read-only, writes land in a layer of the
// sandbox's own, and Delete throws that away.
func (s *suite) testFilesystem(t *testing.T) {
	r := s.cfg.New(t)
	dir := HostDir(t)
	shared := filepath.Join(dir, "shared")
	WriteFile(t, shared, "original\n", 0o666)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	in := Start(t, r, sandbox.Spec{})

	tests := []struct {
		name   string
		script string
		exit   int
	}{
		{"write tmp", "echo x > /tmp/f && cat /tmp/f", 0},
		{"write var tmp", "echo x > /var/tmp/f && cat /var/tmp/f", 0},
		{"write home", "echo x > $HOME/f && cat $HOME/f", 0},
		{"write dev shm", "echo x > /dev/shm/f && cat /dev/shm/f", 0},
		{"dev null", "echo x > /dev/null && head -c 4 /dev/urandom | wc -c | grep -qx 4", 0},
		{"write root", "echo x > /standin-test", 2},
		{"write usr", "echo x > /usr/standin-test", 2},
		{"write etc", "echo x >> /etc/passwd", 2},
		{"write dev", "echo x > /dev/standin-test", 2},
		{"host memory device", "mknod /tmp/mem c 1 1 2>/dev/null; head -c 1 /tmp/mem", 1},
		{"read shadow", "cat /etc/shadow", 1},
		{"read root home", "ls /root", 2},
		{"host tmp not seen", "test ! -e " + t.TempDir(), 0},
		{"home owned", "test \"$(stat -c %u:%a $HOME)\" = 65534:700", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sh(t, in, tt.script); got.Exit != tt.exit {
				t.Errorf("sh -c %q: exit %d, want %d (stderr %q)", tt.script, got.Exit, tt.exit, got.Stderr)
			}
		})
	}
	for _, f := range []string{"/standin-test", "/usr/standin-test"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s exists on the host", f)
		}
	}

	// A host file the sandbox user may write: the write lands in the
	// sandbox's own layer, never on the host.
	t.Run("overlay", func(t *testing.T) {
		got := Sh(t, in, fmt.Sprintf("echo changed > %s && cat %s && echo new > %s/new", shared, shared, dir))
		if got.Exit != 0 || got.Stdout != "changed\n" {
			t.Errorf("write inside = %+v, want \"changed\\n\", exit 0", got)
		}
		b, err := os.ReadFile(shared)
		if err != nil || string(b) != "original\n" {
			t.Errorf("host file after write inside = %q, %v; want %q", b, err, "original\n")
		}
		if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
			t.Error("file made inside exists on the host")
		}
	})

	// Files written in one sandbox are not seen in another, nor once the
	// sandbox is deleted.
	t.Run("separate layers", func(t *testing.T) {
		id := ID()
		a := Start(t, r, sandbox.Spec{ID: id})
		write := fmt.Sprintf("echo mine > /tmp/mine && echo mine > $HOME/mine && echo mine > %s && cat /tmp/mine $HOME/mine %s", shared, shared)
		if got := Sh(t, a, write); got.Stdout != "mine\nmine\nmine\n" {
			t.Fatalf("writing = %+v", got)
		}
		const read = "cat /tmp/mine $HOME/mine %s 2>/dev/null"
		if got := Sh(t, in, fmt.Sprintf(read, shared)); got.Stdout != "changed\n" {
			t.Errorf("other sandbox sees %q, want only its own %q", got.Stdout, "changed\n")
		}
		if err := a.Delete(t.Context()); err != nil {
			t.Fatal(err)
		}
		again := Start(t, r, sandbox.Spec{ID: id})
		if got := Sh(t, again, fmt.Sprintf(read, shared)); got.Stdout != "original\n" {
			t.Errorf("after Delete, a sandbox of the same ID sees %q, want only %q", got.Stdout, "original\n")
		}
	})
}

// Spec.Hide paths, and the runtime's own, look empty inside and cannot be
// written.
func (s *suite) testHide(t *testing.T) {
	r := s.cfg.New(t)
	dir := HostDir(t)
	hidden := filepath.Join(dir, "data")
	visible := filepath.Join(dir, "visible")
	hiddenFile := filepath.Join(dir, "master.key")
	later := filepath.Join(dir, "later")
	link := filepath.Join(dir, "link")
	for _, d := range []string{hidden, visible} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		WriteFile(t, filepath.Join(d, "secret-canary"), "canary\n", 0o644)
	}
	WriteFile(t, hiddenFile, "canary\n", 0o644)
	if err := os.Symlink(hidden, link); err != nil {
		t.Fatal(err)
	}

	in := Start(t, r, sandbox.Spec{Hide: []string{link, hiddenFile, later}})
	// Created after the sandbox started: still hidden.
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(later, "secret-canary"), "canary\n", 0o644)

	tests := []struct {
		name   string
		script string
		want   Result
	}{
		{"control", "cat " + filepath.Join(visible, "secret-canary"), Result{Stdout: "canary\n"}},
		{"dir", "ls -A " + hidden, Result{}},
		{"through symlink", "ls -A " + link + "/", Result{}},
		{"file", "cat " + hiddenFile, Result{}},
		{"file size", "stat -c %s " + hiddenFile, Result{Stdout: "0\n"}},
		{"created later", "ls -A " + later, Result{}},
		{"not writable", "touch " + hidden + "/x 2>/dev/null", Result{Exit: 1}},
		{"read-only", "awk '$2 == \"" + hidden + "\" || $2 == \"" + hiddenFile + "\" { split($4, o, \",\"); print o[1] }' /proc/mounts", Result{Stdout: "ro\nro\n"}},
		{"file not writable", "{ echo x > " + hiddenFile + "; } 2>/dev/null", Result{Exit: 2}},
	}
	if s.cfg.Hidden != nil {
		for _, p := range s.cfg.Hidden(r) {
			tests = append(tests, struct {
				name   string
				script string
				want   Result
			}{"runtime's " + p, "ls -A " + p, Result{}})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sh(t, in, tt.script); got != tt.want {
				t.Errorf("sh -c %q = %+v, want %+v", tt.script, got, tt.want)
			}
		})
	}
}

// Spec.Mounts bind host paths in, read-only unless Writable, after Hide.
func (s *suite) testMounts(t *testing.T) {
	r := s.cfg.New(t)
	dir := HostDir(t)
	resolv := filepath.Join(dir, "resolv.conf")
	WriteFile(t, resolv, "nameserver 100.96.0.1\n", 0o644)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	// A target that is a dangling symlink on the host, as /etc/resolv.conf
	// is under systemd-resolved: the mount lands where it points.
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "run", "stub-resolv.conf"), dangling); err != nil {
		t.Fatal(err)
	}
	// The hidden directory exists on the host, with a file where a mount
	// lands after Hide has emptied the directory.
	if err := os.Mkdir(filepath.Join(dir, "hidden"), 0o755); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, "hidden", "resolv.conf"), "host file, hidden\n", 0o644)
	mounts := []sandbox.Mount{
		{Source: resolv, Target: "/etc/resolv.conf"},
		{Source: resolv, Target: dir + "/missing/new-file"}, // target missing on the host
		{Source: resolv, Target: dangling},
		{Source: work, Target: "/home/sandbox/work", Writable: true},
		{Source: resolv, Target: dir + "/hidden/resolv.conf"}, // after Hide
	}
	cat := "cat /etc/resolv.conf " + dir + "/missing/new-file " + dangling + " " + dir + "/hidden/resolv.conf"
	want := strings.Repeat("nameserver 100.96.0.1\n", 4)
	if s.cfg.Gaps.MissingMountTargets {
		for _, m := range mounts[1:3] {
			_, err := r.Start(context.Background(), sandbox.Spec{ID: ID(), Mounts: []sandbox.Mount{m}})
			if !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("Start with mount target %s missing on the host = %v, want ErrInvalidSpec", m.Target, err)
			}
		}
		mounts = slices.Delete(mounts, 1, 3)
		cat = "cat /etc/resolv.conf " + dir + "/hidden/resolv.conf"
		want = strings.Repeat("nameserver 100.96.0.1\n", 2)
	}
	in := Start(t, r, sandbox.Spec{Hide: []string{dir + "/hidden"}, Mounts: mounts})
	if got := Sh(t, in, cat); got.Stdout != want {
		t.Errorf("mounted files = %+v, want %q", got, want)
	}
	if got := Sh(t, in, "echo x >> /etc/resolv.conf"); got.Exit == 0 {
		t.Error("read-only mount was writable")
	}
	if got := Sh(t, in, "echo out > work/f"); got.Exit != 0 {
		t.Errorf("write to writable mount = %+v", got)
	}
	if b, err := os.ReadFile(filepath.Join(work, "f")); err != nil || string(b) != "out\n" {
		t.Errorf("host file written through mount = %q, %v; want %q", b, err, "out\n")
	}
	for _, p := range []string{"missing", "run"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("mount point %s made on the host", filepath.Join(dir, p))
		}
	}
}
