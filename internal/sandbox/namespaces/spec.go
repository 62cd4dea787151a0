package namespaces

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/standin/standin/internal/sandbox"
)

// The checks and the environment below are the gvisor runtime's, so that a
// Spec means the same under either backend.

// defaultPath is PATH inside the sandbox.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// hostNameMax is HOST_NAME_MAX: sethostname refuses longer names.
const hostNameMax = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validate checks what Start cannot fix itself.
func validate(s sandbox.Spec) error {
	if !idPattern.MatchString(s.ID) {
		return fmt.Errorf("%w: id %q: want letters, digits, '_', '-', '.', at most 64", sandbox.ErrInvalidSpec, s.ID)
	}
	if len(s.Hostname) > hostNameMax || strings.ContainsRune(s.Hostname, 0) {
		return fmt.Errorf("%w: hostname %q: want at most %d bytes", sandbox.ErrInvalidSpec, s.Hostname, hostNameMax)
	}
	if err := validateEnv(s.Env); err != nil {
		return err
	}
	if s.NetNS != "" && !filepath.IsAbs(s.NetNS) {
		return fmt.Errorf("%w: netns %q is not an absolute path", sandbox.ErrInvalidSpec, s.NetNS)
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return fmt.Errorf("%w: mount %q -> %q: paths must be absolute", sandbox.ErrInvalidSpec, m.Source, m.Target)
		}
		if filepath.Clean(m.Target) == "/" {
			return fmt.Errorf("%w: mount %q -> %q: cannot mount on /", sandbox.ErrInvalidSpec, m.Source, m.Target)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("%w: mount source: %w", sandbox.ErrInvalidSpec, err)
		}
	}
	for _, h := range s.Hide {
		if !filepath.IsAbs(h) || filepath.Clean(h) == "/" {
			return fmt.Errorf("%w: hide %q: want an absolute path other than /", sandbox.ErrInvalidSpec, h)
		}
	}
	return nil
}

func validateEnv(env []string) error {
	for _, kv := range env {
		// Only the key is quoted: the value may be a stand-in, and errors
		// are logged.
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%w: environment entry with key %q: want KEY=value", sandbox.ErrInvalidSpec, k)
		}
	}
	return nil
}

// ids returns the uid and gid commands run as: never root.
func ids(s sandbox.Spec) (uid, gid uint32) {
	uid, gid = s.UID, s.GID
	if uid == 0 {
		uid = sandbox.DefaultUID
	}
	if gid == 0 {
		gid = sandbox.DefaultGID
	}
	return uid, gid
}

// config returns what the init needs to build the sandbox of s.
func config(s sandbox.Spec, scratch string) (*initConfig, error) {
	uid, gid := ids(s)
	cfg := &initConfig{Scratch: scratch, Hostname: s.Hostname, UID: uid, GID: gid, NewNet: s.NetNS == ""}
	if cfg.Hostname == "" {
		cfg.Hostname = "sandbox"
	}
	for _, h := range s.Hide {
		hs, err := hide(h)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidSpec, err)
		}
		cfg.Hide = append(cfg.Hide, hs...)
	}
	for _, m := range s.Mounts {
		cfg.Mounts = append(cfg.Mounts, bind{Source: filepath.Clean(m.Source), Target: filepath.Clean(m.Target), Writable: m.Writable})
	}
	return cfg, nil
}

// hide returns what masks a host path: an empty directory over a directory
// (or over a path that does not exist yet), the empty file over a file.
// Both the path and, if it is a symlink, its target are masked.
func hide(path string) ([]hidden, error) {
	path = filepath.Clean(path)
	paths := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		paths = append(paths, real)
	}
	var hs []hidden
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir():
			hs = append(hs, hidden{Path: p})
		case err != nil:
			return nil, fmt.Errorf("hide %q: %w", p, err)
		default:
			hs = append(hs, hidden{Path: p, File: true})
		}
	}
	return hs, nil
}

// mergeEnv returns the environment of a command: later entries override
// earlier ones with the same key, and the order of first appearance is kept.
func mergeEnv(lists ...[]string) []string {
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

func orDefault(v, d uint16) uint16 {
	if v == 0 {
		return d
	}
	return v
}
