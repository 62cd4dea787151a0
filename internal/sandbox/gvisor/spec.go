package gvisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
//
// runsc makes the mount point of a bind mount on the host, as root, when it
// is missing there (even under one of the sandbox's own tmpfs), so this is
// a path of standin's own that the runtime creates, empty, on the host.
const agentPath = "/run/standin-agent"

// defaultPath is PATH inside the sandbox (and for runsc itself).
const defaultPath = "PATH=" + sandbox.DefaultPath

// noFile is RLIMIT_NOFILE inside the sandbox; build tools open many files.
const noFile = 1 << 16

// user returns the uid and gid commands run as.
func user(s sandbox.Spec) ociUser {
	d := s.WithDefaults()
	return ociUser{UID: d.UID, GID: d.GID}
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
		// runsc would make a missing mount point on the host's own
		// filesystem, as root: refuse rather than write there. Under the
		// home directory, whose mount point the runtime owns, it may.
		if _, err := os.Stat(m.Target); err != nil && !underHome(m.Target) {
			return nil, fmt.Errorf("mount target %q does not exist on the host, and runsc would create it there: mount onto an existing path", m.Target)
		}
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

// underHome reports whether p is inside sandbox.HomeDir.
func underHome(p string) bool {
	rel, err := filepath.Rel(sandbox.HomeDir, filepath.Clean(p))
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
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
