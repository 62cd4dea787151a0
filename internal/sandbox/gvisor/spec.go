package gvisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/agent"
)

// The OCI runtime-spec types below are the subset runsc reads from a bundle's
// config.json. They are written out here, rather than imported from
// github.com/opencontainers/runtime-spec, to keep runsc's dependencies out of
// the main module.

type ociSpec struct {
	Version  string      `json:"ociVersion"`
	Process  *ociProcess `json:"process"`
	Root     ociRoot     `json:"root"`
	Hostname string      `json:"hostname,omitempty"`
	Mounts   []ociMount  `json:"mounts"`
	Linux    ociLinux    `json:"linux"`
}

type ociProcess struct {
	Terminal        bool        `json:"terminal,omitempty"`
	ConsoleSize     *ociBox     `json:"consoleSize,omitempty"`
	User            ociUser     `json:"user"`
	Args            []string    `json:"args"`
	Env             []string    `json:"env"`
	Cwd             string      `json:"cwd"`
	Capabilities    ociCaps     `json:"capabilities"`
	Rlimits         []ociRlimit `json:"rlimits,omitempty"`
	NoNewPrivileges bool        `json:"noNewPrivileges"`
}

type ociBox struct {
	Height uint `json:"height"`
	Width  uint `json:"width"`
}

type ociUser struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// ociCaps is always written with empty sets: commands get no capabilities,
// in particular not CAP_NET_RAW (raw and packet sockets).
type ociCaps struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Inheritable []string `json:"inheritable"`
	Permitted   []string `json:"permitted"`
	Ambient     []string `json:"ambient"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Namespaces []ociNamespace `json:"namespaces"`
}

type ociNamespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

// agentPath is where the agent binary (the daemon's own executable, see
// package agent) is mounted read-only inside every sandbox; it runs as the
// sandbox's PID 1, which also reaps orphans.
const agentPath = "/.standin-agent"

// defaultPath is PATH inside the sandbox (and for runsc itself).
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// noFile is RLIMIT_NOFILE inside the sandbox; build tools open many files.
const noFile = 1 << 16

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validate checks what Start cannot fix itself.
func validate(s sandbox.Spec) error {
	if !idPattern.MatchString(s.ID) {
		return fmt.Errorf("%w: id %q: want letters, digits, '_', '-', '.', at most 64", sandbox.ErrInvalidSpec, s.ID)
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

// user returns the uid and gid commands run as.
func user(s sandbox.Spec) ociUser {
	u := ociUser{UID: s.UID, GID: s.GID}
	if u.UID == 0 {
		u.UID = sandbox.DefaultUID
	}
	if u.GID == 0 {
		u.GID = sandbox.DefaultGID
	}
	return u
}

// bundleSpec builds the config.json of a sandbox. empty is an empty file
// used to hide host files; hide are paths always hidden in addition to
// s.Hide (the runtime's own state); agentExe is the host binary run as the
// sandbox's agent.
func bundleSpec(s sandbox.Spec, empty string, hide []string, agentExe string) (*ociSpec, error) {
	u := user(s)
	hostname := s.Hostname
	if hostname == "" {
		hostname = "sandbox"
	}
	spec := &ociSpec{
		Version: "1.0.2",
		Process: &ociProcess{
			User:            u,
			Args:            []string{agentPath, agent.ArgAgent},
			Env:             []string{defaultPath},
			Cwd:             "/",
			Capabilities:    noCaps(),
			Rlimits:         []ociRlimit{{Type: "RLIMIT_NOFILE", Hard: noFile, Soft: noFile}},
			NoNewPrivileges: true,
		},
		// Read-only as far as the host is concerned: runsc's gofer serves
		// "/" read-only because of --overlay2, and the sandbox writes into
		// its own overlay layer. (Readonly: true here would make runsc skip
		// the overlay and leave "/" unwritable inside.)
		Root:     ociRoot{Path: "/", Readonly: false},
		Hostname: hostname,
		Linux: ociLinux{
			Namespaces: []ociNamespace{
				{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"},
				{Type: "network", Path: s.NetNS},
			},
		},
	}
	home := fmt.Sprintf("mode=0700,uid=%d,gid=%d", u.UID, u.GID)
	spec.Mounts = []ociMount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "nodev", "mode=1777"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		{Destination: "/var/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		{Destination: sandbox.HomeDir, Type: "tmpfs", Source: "tmpfs", Options: append([]string{"nosuid", "nodev"}, strings.Split(home, ",")...)},
	}
	for _, h := range slices.Concat(hide, s.Hide) {
		m, err := hideMount(h, empty)
		if err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, m...)
	}
	spec.Mounts = append(spec.Mounts, ociMount{
		Destination: agentPath, Type: "bind", Source: filepath.Clean(agentExe),
		Options: []string{"bind", "ro", "nosuid", "nodev"},
	})
	for _, m := range s.Mounts {
		mode := "ro"
		if m.Writable {
			mode = "rw"
		}
		spec.Mounts = append(spec.Mounts, ociMount{
			Destination: filepath.Clean(m.Target), Type: "bind", Source: filepath.Clean(m.Source),
			Options: []string{"bind", mode, "nosuid", "nodev"},
		})
	}
	return spec, nil
}

// hideMount masks a host path: an empty read-only tmpfs over a directory
// (or over a path that does not exist yet), the empty file over a file.
// Both the path and, if it is a symlink, its target are masked.
func hideMount(path, empty string) ([]ociMount, error) {
	path = filepath.Clean(path)
	paths := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		paths = append(paths, real)
	}
	var ms []ociMount
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir():
			ms = append(ms, ociMount{Destination: p, Type: "tmpfs", Source: "tmpfs",
				Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755"}})
		case err != nil:
			return nil, fmt.Errorf("hide %q: %w", p, err)
		default:
			ms = append(ms, ociMount{Destination: p, Type: "bind", Source: empty,
				Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	return ms, nil
}

func noCaps() ociCaps {
	return ociCaps{Bounding: []string{}, Effective: []string{}, Inheritable: []string{}, Permitted: []string{}, Ambient: []string{}}
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
