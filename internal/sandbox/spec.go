package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// What every Runtime checks and fills in the same way, so that a Spec means
// the same under every backend.

// DefaultPath is $PATH inside every sandbox.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultHostname is the hostname of a sandbox whose Spec leaves it empty.
const DefaultHostname = "sandbox"

// hostNameMax is HOST_NAME_MAX: sethostname refuses longer names.
const hostNameMax = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks what a Runtime cannot fix itself: the errors wrap
// ErrInvalidSpec. It reads the host's filesystem, since a mount's Source
// must exist. Whether the ID is free and NetNS is a network namespace are
// for the Runtime to check.
func (s Spec) Validate() error {
	if !idPattern.MatchString(s.ID) {
		return fmt.Errorf("%w: id %q: want letters, digits, '_', '-', '.', at most 64", ErrInvalidSpec, s.ID)
	}
	if len(s.Hostname) > hostNameMax || strings.ContainsRune(s.Hostname, 0) {
		return fmt.Errorf("%w: hostname %q: want at most %d bytes", ErrInvalidSpec, s.Hostname, hostNameMax)
	}
	if err := validateEnv(s.Env); err != nil {
		return err
	}
	if s.NetNS != "" && !filepath.IsAbs(s.NetNS) {
		return fmt.Errorf("%w: netns %q is not an absolute path", ErrInvalidSpec, s.NetNS)
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return fmt.Errorf("%w: mount %q -> %q: paths must be absolute", ErrInvalidSpec, m.Source, m.Target)
		}
		if filepath.Clean(m.Target) == "/" {
			return fmt.Errorf("%w: mount %q -> %q: cannot mount on /", ErrInvalidSpec, m.Source, m.Target)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("%w: mount source: %w", ErrInvalidSpec, err)
		}
	}
	for _, h := range s.Hide {
		if !filepath.IsAbs(h) || filepath.Clean(h) == "/" {
			return fmt.Errorf("%w: hide %q: want an absolute path other than /", ErrInvalidSpec, h)
		}
	}
	return nil
}

// Validate checks an ExecSpec before anything is run: the errors wrap
// ErrInvalidSpec.
func (e ExecSpec) Validate() error {
	if len(e.Args) == 0 || e.Args[0] == "" {
		return fmt.Errorf("%w: exec: no command", ErrInvalidSpec)
	}
	return validateEnv(e.Env)
}

func validateEnv(env []string) error {
	for _, kv := range env {
		// Only the key is quoted: the value may be a stand-in, and errors
		// are logged.
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%w: environment entry with key %q: want KEY=value", ErrInvalidSpec, k)
		}
	}
	return nil
}

// WithDefaults returns s with the zero fields that have a default set to
// it: Hostname, UID and GID (commands never run as root).
func (s Spec) WithDefaults() Spec {
	if s.Hostname == "" {
		s.Hostname = DefaultHostname
	}
	if s.UID == 0 {
		s.UID = DefaultUID
	}
	if s.GID == 0 {
		s.GID = DefaultGID
	}
	return s
}

// Environ returns the environment every command of the sandbox starts
// from: PATH, HOME and LANG, overridden by s.Env.
func (s Spec) Environ() []string {
	return MergeEnv([]string{"PATH=" + DefaultPath, "HOME=" + HomeDir, "LANG=C.UTF-8"}, s.Env)
}

// WithDefaults returns e as a Runtime runs it in a sandbox whose
// environment (see Spec.Environ) is env: Env is e.Env merged over env, with
// TERM=xterm-256color added for a TTY unless set; Dir is HomeDir if empty;
// Rows and Cols of a TTY are 24 and 80 if zero.
func (e ExecSpec) WithDefaults(env []string) ExecSpec {
	e.Env = MergeEnv(env, e.Env)
	if e.Dir == "" {
		e.Dir = HomeDir
	}
	if e.TTY {
		if !hasKey(e.Env, "TERM") {
			e.Env = append(e.Env, "TERM=xterm-256color")
		}
		if e.Rows == 0 {
			e.Rows = 24
		}
		if e.Cols == 0 {
			e.Cols = 80
		}
	}
	return e
}

// MergeEnv returns the environment of a command: later entries override
// earlier ones with the same key, and the order of first appearance is kept.
func MergeEnv(lists ...[]string) []string {
	var out []string
	at := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := at[k]; ok {
				out[i] = kv
				continue
			}
			at[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}
