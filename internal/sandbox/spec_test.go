package sandbox_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
)

func TestSpecValidate(t *testing.T) {
	ok := sandbox.Spec{ID: "sbx_01.a-b"}
	tests := []struct {
		name string
		edit func(*sandbox.Spec)
		want string // the error, "" if valid
	}{
		{"minimal", func(*sandbox.Spec) {}, ""},
		{"empty id", func(s *sandbox.Spec) { s.ID = "" },
			`invalid sandbox spec: id "": want letters, digits, '_', '-', '.', at most 64`},
		{"id with slash", func(s *sandbox.Spec) { s.ID = "a/b" },
			`invalid sandbox spec: id "a/b": want letters, digits, '_', '-', '.', at most 64`},
		{"id with dots", func(s *sandbox.Spec) { s.ID = "../x" },
			`invalid sandbox spec: id "../x": want letters, digits, '_', '-', '.', at most 64`},
		{"id starting with dot", func(s *sandbox.Spec) { s.ID = ".a" },
			`invalid sandbox spec: id ".a": want letters, digits, '_', '-', '.', at most 64`},
		{"id too long", func(s *sandbox.Spec) { s.ID = strings.Repeat("a", 65) },
			`invalid sandbox spec: id "` + strings.Repeat("a", 65) + `": want letters, digits, '_', '-', '.', at most 64`},
		{"id of 64", func(s *sandbox.Spec) { s.ID = strings.Repeat("a", 64) }, ""},
		{"hostname", func(s *sandbox.Spec) { s.Hostname = strings.Repeat("h", 64) }, ""},
		{"hostname too long", func(s *sandbox.Spec) { s.Hostname = strings.Repeat("h", 65) },
			`invalid sandbox spec: hostname "` + strings.Repeat("h", 65) + `": want at most 64 bytes`},
		{"hostname with NUL", func(s *sandbox.Spec) { s.Hostname = "a\x00b" },
			`invalid sandbox spec: hostname "a\x00b": want at most 64 bytes`},
		{"env", func(s *sandbox.Spec) { s.Env = []string{"A=1", "B="} }, ""},
		{"env without =", func(s *sandbox.Spec) { s.Env = []string{"A"} },
			`invalid sandbox spec: environment entry with key "A": want KEY=value`},
		{"env without key", func(s *sandbox.Spec) { s.Env = []string{"=1"} },
			`invalid sandbox spec: environment entry with key "": want KEY=value`},
		{"env with NUL", func(s *sandbox.Spec) { s.Env = []string{"A=1\x00"} },
			`invalid sandbox spec: environment entry with key "A": want KEY=value`},
		{"netns", func(s *sandbox.Spec) { s.NetNS = "/run/netns/x" }, ""}, // whether it exists is the runtime's to check
		{"relative netns", func(s *sandbox.Spec) { s.NetNS = "ns" },
			`invalid sandbox spec: netns "ns" is not an absolute path`},
		{"mount", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/etc/hostname", Target: "/x"}} }, ""},
		{"relative mount target", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/etc/hostname", Target: "x"}} },
			`invalid sandbox spec: mount "/etc/hostname" -> "x": paths must be absolute`},
		{"relative mount source", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "etc/hostname", Target: "/x"}} },
			`invalid sandbox spec: mount "etc/hostname" -> "/x": paths must be absolute`},
		{"mount on root", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/usr", Target: "/."}} },
			`invalid sandbox spec: mount "/usr" -> "/.": cannot mount on /`},
		{"mount source missing", func(s *sandbox.Spec) { s.Mounts = []sandbox.Mount{{Source: "/no/such", Target: "/x"}} },
			`invalid sandbox spec: mount source: stat /no/such: no such file or directory`},
		{"hide", func(s *sandbox.Spec) { s.Hide = []string{"/var/lib/standin"} }, ""},
		{"hide missing", func(s *sandbox.Spec) { s.Hide = []string{"/no/such"} }, ""},
		{"hide root", func(s *sandbox.Spec) { s.Hide = []string{"//"} },
			`invalid sandbox spec: hide "//": want an absolute path other than /`},
		{"hide relative", func(s *sandbox.Spec) { s.Hide = []string{"data"} },
			`invalid sandbox spec: hide "data": want an absolute path other than /`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			err := s.Validate()
			if got := errString(err); got != tt.want || err != nil && !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("Validate(%+v) = %v, want %q (ErrInvalidSpec)", s, err, tt.want)
			}
		})
	}
}

func TestExecSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec sandbox.ExecSpec
		want string // the error, "" if valid
	}{
		{"command", sandbox.ExecSpec{Args: []string{"true"}}, ""},
		{"no args", sandbox.ExecSpec{}, "invalid sandbox spec: exec: no command"},
		{"empty command", sandbox.ExecSpec{Args: []string{"", "x"}}, "invalid sandbox spec: exec: no command"},
		{"env", sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"A=1"}}, ""},
		{"bad env", sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"NOEQUALS"}},
			`invalid sandbox spec: environment entry with key "NOEQUALS": want KEY=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if got := errString(err); got != tt.want || err != nil && !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("Validate(%q, %q) = %v, want %q (ErrInvalidSpec)", tt.spec.Args, tt.spec.Env, err, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Errors name the key of a bad environment entry, never its value: it may
// be a stand-in, and errors are logged.
func TestValidateEnvRedacts(t *testing.T) {
	for _, env := range [][]string{{"TOKEN=secret\x00value"}, {"=secret"}} {
		s := sandbox.Spec{ID: "sbx", Env: env}
		if err := s.Validate(); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Spec{Env: %q}.Validate() = %v, want an error without the value", env, err)
		}
		e := sandbox.ExecSpec{Args: []string{"true"}, Env: env}
		if err := e.Validate(); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("ExecSpec{Env: %q}.Validate() = %v, want an error without the value", env, err)
		}
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
		{"three lists", [][]string{{"A=1"}, {"B=2"}, {"A=3"}}, []string{"A=3", "B=2"}},
		{"empty value overrides", [][]string{{"A=1"}, {"A="}}, []string{"A="}},
		{"value with =", [][]string{{"A=x=y"}}, []string{"A=x=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, sandbox.MergeEnv(tt.lists...)); diff != "" {
				t.Errorf("MergeEnv(%q) mismatch (-want +got):\n%s", tt.lists, diff)
			}
		})
	}
}

func TestSpecDefaults(t *testing.T) {
	tests := []struct {
		name    string
		spec    sandbox.Spec
		want    sandbox.Spec
		wantEnv []string
	}{
		{"zero", sandbox.Spec{ID: "a"},
			sandbox.Spec{ID: "a", Hostname: "sandbox", UID: 65534, GID: 65534},
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/sandbox", "LANG=C.UTF-8"}},
		{"set", sandbox.Spec{ID: "a", Hostname: "box", UID: 1000, GID: 100, Env: []string{"LANG=C", "X=1"}},
			sandbox.Spec{ID: "a", Hostname: "box", UID: 1000, GID: 100, Env: []string{"LANG=C", "X=1"}},
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/sandbox", "LANG=C", "X=1"}},
		{"uid only", sandbox.Spec{ID: "a", UID: 1000},
			sandbox.Spec{ID: "a", Hostname: "sandbox", UID: 1000, GID: 65534},
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/sandbox", "LANG=C.UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.spec.WithDefaults()); diff != "" {
				t.Errorf("WithDefaults(%+v) mismatch (-want +got):\n%s", tt.spec, diff)
			}
			if diff := cmp.Diff(tt.wantEnv, tt.spec.Environ()); diff != "" {
				t.Errorf("Environ(%+v) mismatch (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

func TestExecSpecDefaults(t *testing.T) {
	base := []string{"PATH=/bin", "A=base"}
	tests := []struct {
		name string
		spec sandbox.ExecSpec
		want sandbox.ExecSpec
	}{
		{"zero", sandbox.ExecSpec{Args: []string{"true"}},
			sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"PATH=/bin", "A=base"}, Dir: "/home/sandbox"}},
		{"set", sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"A=exec", "B=2"}, Dir: "/usr"},
			sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"PATH=/bin", "A=exec", "B=2"}, Dir: "/usr"}},
		{"tty", sandbox.ExecSpec{Args: []string{"sh"}, TTY: true},
			sandbox.ExecSpec{Args: []string{"sh"}, Env: []string{"PATH=/bin", "A=base", "TERM=xterm-256color"}, Dir: "/home/sandbox", TTY: true, Rows: 24, Cols: 80}},
		{"tty set", sandbox.ExecSpec{Args: []string{"sh"}, Env: []string{"TERM=dumb"}, TTY: true, Rows: 40, Cols: 100},
			sandbox.ExecSpec{Args: []string{"sh"}, Env: []string{"PATH=/bin", "A=base", "TERM=dumb"}, Dir: "/home/sandbox", TTY: true, Rows: 40, Cols: 100}},
		{"no tty size without tty", sandbox.ExecSpec{Args: []string{"true"}, Rows: 40},
			sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"PATH=/bin", "A=base"}, Dir: "/home/sandbox", Rows: 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.spec.WithDefaults(base)); diff != "" {
				t.Errorf("WithDefaults(%+v) mismatch (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
	if diff := cmp.Diff([]string{"PATH=/bin", "A=base"}, base); diff != "" {
		t.Errorf("WithDefaults changed the base environment (-want +got):\n%s", diff)
	}
}
