// Package sandbox defines how standin runs untrusted commands: a Runtime
// starts isolated Instances, and an Instance runs commands (Exec) until it is
// deleted.
//
// The interface is small on purpose so that the gateway and the API never
// depend on how isolation is done. The backend today is gVisor
// (sandbox/gvisor); Firecracker, where hardware virtualisation exists, or
// plain namespaces for development could be added beside it.
//
// Invariants every Runtime keeps:
//   - commands never run as root inside the sandbox;
//   - the host root filesystem is seen read-only; writes land in a layer of
//     the sandbox's own, which Delete throws away;
//   - paths in Spec.Hide are empty inside, whatever they hold on the host
//     (the daemon's data directory, master key, database and API socket);
//   - the sandbox's only network is the namespace in Spec.NetNS (or none).
//
// Package sandboxtest checks these, and the rest of what this package
// promises, of every backend.
//
// This package never imports the vault: a sandbox gets stand-in values in its
// environment, and nothing here can read a real one.
package sandbox

import (
	"context"
	"errors"
	"io"
)

// Errors callers branch on; detail is added by wrapping.
var (
	// ErrUnavailable means the runtime cannot run sandboxes on this machine:
	// its binary is missing, or the daemon lacks the privileges it needs.
	// The wrapped message says how to fix it.
	ErrUnavailable = errors.New("sandbox runtime unavailable")

	// ErrInvalidSpec means a Spec or ExecSpec was refused before anything
	// was started.
	ErrInvalidSpec = errors.New("invalid sandbox spec")

	// ErrNotFound means the instance has been deleted.
	ErrNotFound = errors.New("sandbox not found")
)

// Runtime starts sandboxes.
type Runtime interface {
	// Name identifies the backend in logs and status output ("gvisor").
	Name() string

	// Start creates and boots a sandbox. When it returns without error the
	// sandbox is ready for Exec. The context bounds the start only, not the
	// sandbox's life: that ends with Instance.Delete.
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Instance is one running sandbox.
type Instance interface {
	// ID is Spec.ID.
	ID() string

	// Exec runs a command in the sandbox and waits for it. exit is the
	// command's exit status (128+n if it died of signal n); err is non-nil
	// only if the command could not be run or waited for (not found, the
	// sandbox is gone, ctx done). When ctx is done the command is killed.
	Exec(ctx context.Context, spec ExecSpec) (exit int, err error)

	// Delete stops every process of the sandbox and removes its state,
	// including its writable layer. Deleting twice is not an error.
	Delete(ctx context.Context) error
}

// DefaultUID and DefaultGID are the user commands run as when Spec leaves
// them zero: nobody/nogroup on Debian.
const (
	DefaultUID = 65534
	DefaultGID = 65534
)

// HomeDir is $HOME inside every sandbox: an empty, writable directory owned
// by the sandbox user.
const HomeDir = "/home/sandbox"

// Spec describes a sandbox.
type Spec struct {
	// ID names the sandbox; unique among the runtime's live sandboxes.
	// Letters, digits, '_', '-' and '.', at most 64 characters, starting
	// with a letter or digit.
	ID string

	// Hostname inside the sandbox. If empty, "sandbox" is used.
	Hostname string

	// Env ("KEY=value") is given to every command, after the defaults
	// (PATH, HOME, LANG) and before ExecSpec.Env. It holds stand-ins, never
	// real credentials.
	Env []string

	// NetNS is the path of a prepared network namespace (for example
	// /run/netns/NAME) whose interfaces become the sandbox's. If empty, the
	// sandbox gets a fresh namespace with only lo.
	NetNS string

	// Mounts are extra bind mounts from the host, such as a generated
	// resolv.conf or CA bundle. They are applied after Hide.
	Mounts []Mount

	// Hide lists host paths that must look empty inside: a directory
	// becomes an empty read-only directory, a file an empty file. Use it
	// for the daemon's data directory, master key, database and API socket.
	// Paths that do not exist yet are hidden too, in case they appear later.
	Hide []string

	// UID and GID commands run as. Zero means DefaultUID/DefaultGID:
	// commands never run as root.
	UID, GID uint32
}

// Mount is a bind mount of a host file or directory into the sandbox.
type Mount struct {
	// Source is the absolute host path.
	Source string
	// Target is the absolute path inside the sandbox.
	Target string
	// Writable lets the sandbox write through to Source; read-only if false.
	Writable bool
}

// ExecSpec describes one command run in a sandbox.
type ExecSpec struct {
	// Args is the command and its arguments; Args[0] is looked up in PATH.
	Args []string

	// Env ("KEY=value") is added to, and overrides, Spec.Env.
	Env []string

	// Dir is the working directory. If empty, HomeDir is used.
	Dir string

	// Stdin is the command's standard input. If nil, it reads from an empty
	// input. Exec does not wait for Stdin to be drained once the command
	// exits.
	Stdin io.Reader

	// Stdout and Stderr receive the command's output. If nil, output is
	// discarded. With TTY both streams arrive, merged, on Stdout.
	Stdout, Stderr io.Writer

	// TTY runs the command on a pseudo-terminal of Rows x Cols
	// (zero means 24 x 80).
	TTY        bool
	Rows, Cols uint16

	// Resize, if non-nil, delivers new terminal sizes while a TTY command
	// runs (the user's window changed).
	Resize <-chan WindowSize
}

// WindowSize is a terminal's size in characters.
type WindowSize struct {
	Rows, Cols uint16
}
