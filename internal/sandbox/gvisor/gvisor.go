// Package gvisor runs sandboxes under gVisor's runsc: each sandbox is an OCI
// container with its own userspace kernel (the Sentry, on the systrap
// platform), so the sandbox's system calls never reach the host kernel
// directly.
//
// A sandbox sees the host's root filesystem read-only under a writable
// in-memory layer (--overlay2=root:memory), an empty /tmp, /var/tmp and
// $HOME of its own, and runs commands as an unprivileged user with no
// capabilities. runsc is given --host-uds=none (no host Unix sockets) and
// --net-raw=false (no raw or packet sockets); it has no AF_VSOCK support at
// all. The runtime's state directory and Spec.Hide paths are masked.
//
// runsc is built by `make runsc` from the version pinned in tools/runsc. It
// needs root. The runtime gives runsc a clean environment, since the
// daemon's may hold the master key.
package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/agent"
)

// DefaultStateDir is where runsc's state and the bundles live when
// Config.StateDir is empty.
const DefaultStateDir = "/run/standin/gvisor"

// Log attribute keys.
const (
	logKeySandbox = "sandbox_id"
	logKeyError   = "error"
	logKeyElapsed = "elapsed"
)

// Config configures a Runtime. The zero value is usable.
type Config struct {
	// Runsc is the path of the runsc binary. If empty, "runsc" next to the
	// running executable (bin/runsc beside bin/standin) is used, then runsc
	// from PATH.
	Runsc string

	// StateDir holds runsc's state (its --root) and one bundle directory
	// per sandbox; it is hidden from every sandbox. If empty,
	// DefaultStateDir is used.
	StateDir string

	// Overlay is where a sandbox's writable layer lives: "memory" (the
	// default) or an absolute directory, in which runsc keeps each layer
	// in a file (disk instead of RAM, for sandboxes that write a lot).
	Overlay string

	// Platform is runsc's platform. If empty, "systrap" is used (kvm needs
	// /dev/kvm and hangs on hosts without working nested virtualisation).
	Platform string

	// DebugLogDir, if set, makes runsc write debug logs there (one file
	// per runsc command). For diagnosing runsc itself only: the logs are
	// large and include the command lines run in sandboxes.
	DebugLogDir string

	// Agent is the binary each sandbox runs as its first process, to run
	// commands (see package agent): a binary whose main calls agent.Main.
	// If empty, AgentName next to the running executable is used (`make
	// build` puts bin/standin-agent beside bin/standin), else the running
	// executable itself.
	Agent string

	// Logger receives start and delete events. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Runtime starts gVisor sandboxes. It is safe for concurrent use.
type Runtime struct {
	runsc   string
	root    string   // runsc --root
	bundles string   // one directory per sandbox
	hide    []string // hidden from every sandbox: the state and overlay dirs
	flags   []string // passed to every runsc command
	agent   string   // host path of the agent binary
	log     *slog.Logger

	ids sandbox.IDs[Instance]

	mu        sync.Mutex
	subreaper bool // holds the process's subreaper flag
	closed    bool
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New checks that runsc can be run and prepares the state directory.
// It does not touch sandboxes left by a previous daemon: see Cleanup.
func New(cfg Config) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: runsc needs root (to create namespaces and chroot its processes); running as uid %d", sandbox.ErrUnavailable, os.Geteuid())
	}
	bin := cfg.Runsc
	if bin == "" {
		var err error
		if bin, err = FindRunsc(); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: runsc %q is not an executable file: run `make runsc` to build it", sandbox.ErrUnavailable, bin)
	}
	agentExe, agentWarn := cfg.Agent, error(nil)
	if agentExe == "" {
		var err error
		if agentExe, agentWarn, err = findAgent(); err != nil {
			return nil, fmt.Errorf("%w: find the agent binary: %w", sandbox.ErrUnavailable, err)
		}
	} else if err := agent.CheckProtocol(context.Background(), agentExe); err != nil {
		return nil, fmt.Errorf("%w: %w", sandbox.ErrUnavailable, err)
	}
	if fi, err := os.Stat(agentExe); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: agent %q is not an executable file", sandbox.ErrUnavailable, agentExe)
	}
	if err := ensureAgentMountPoint(); err != nil {
		return nil, fmt.Errorf("%w: %w", sandbox.ErrUnavailable, err)
	}
	state := cfg.StateDir
	if state == "" {
		state = DefaultStateDir
	}
	state, err := filepath.Abs(state)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	r := &Runtime{
		runsc:   bin,
		agent:   agentExe,
		root:    filepath.Join(state, "runsc"),
		bundles: filepath.Join(state, "bundles"),
		log:     cfg.Logger,
		hide:    []string{state},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "sandbox")
	if agentWarn != nil {
		r.log.Warn("sandboxes run the standin binary as their agent, which starts slower than standin-agent; rebuild both with `make build`",
			logKeyError, agentWarn)
	}
	// The sandboxes' host processes become ours to reap (see reap.go).
	// Without it deletes still work, only slower.
	// Close releases it.
	if err := holdSubreaper(); err != nil {
		r.log.Warn("sandbox deletes will wait for init to reap runsc's processes", logKeyError, err)
	} else {
		r.subreaper = true
	}
	for _, d := range []string{state, r.root, r.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
	}

	overlay := cfg.Overlay
	switch {
	case overlay == "" || overlay == "memory":
		overlay = "memory"
	case filepath.IsAbs(overlay):
		if err := os.MkdirAll(overlay, 0o700); err != nil {
			return nil, fmt.Errorf("create overlay dir: %w", err)
		}
		r.hide = append(r.hide, filepath.Clean(overlay))
		overlay = "dir=" + filepath.Clean(overlay)
	default:
		return nil, fmt.Errorf("%w: overlay %q: want \"memory\" or an absolute directory", sandbox.ErrInvalidSpec, cfg.Overlay)
	}
	platform := cfg.Platform
	if platform == "" {
		platform = "systrap"
	}
	r.flags = []string{
		"--root=" + r.root,
		"--platform=" + platform,
		"--overlay2=root:" + overlay,
		"--host-uds=none",
		"--host-fifo=none",
		"--net-raw=false",
		// No resource limits are set yet, so a cgroup would only cost time
		// and, when runsc's removal of it races with exiting processes
		// ("device or resource busy"), leave directories behind. Limits
		// (memory, CPU, pids) will need this dropped and a cgroupsPath.
		"--ignore-cgroups",
	}
	if cfg.DebugLogDir != "" {
		r.flags = append(r.flags, "--debug", "--debug-log="+filepath.Clean(cfg.DebugLogDir)+"/")
	}
	return r, nil
}

// ensureAgentMountPoint makes, on the host, the mount points runsc would
// otherwise make there itself as root: the empty file the agent is mounted
// on (see agentPath) and the empty directory the sandboxes' home is.
func ensureAgentMountPoint() error {
	if err := os.MkdirAll(filepath.Dir(agentPath), 0o755); err != nil {
		return fmt.Errorf("create the agent's mount point: %w", err)
	}
	if err := os.MkdirAll(sandbox.HomeDir, 0o755); err != nil {
		return fmt.Errorf("create the sandbox home's mount point: %w", err)
	}
	f, err := os.OpenFile(agentPath, os.O_CREATE|os.O_RDONLY, 0o755)
	if err != nil {
		return fmt.Errorf("create the agent's mount point: %w", err)
	}
	return f.Close()
}

// AgentName is the file name of the agent-only binary (cmd/standin-agent)
// that the runtime looks for next to the running executable.
const AgentName = "standin-agent"

// findAgent returns AgentName next to the running executable, or else the
// running executable, whose main also calls agent.Main. The small binary
// is preferred because the agent's start is part of every sandbox's: under
// gVisor each page the Go runtime touches at start is a costly fault, and
// the agent-only binary is about a sixth of standin's size (80 against 130
// ms to the first command's end here). A standin-agent that does not speak
// this build's protocol (left from an older build) is passed over, and
// warn says why.
func findAgent() (path string, warn, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	path, warn = agentNextTo(exe)
	return path, warn, nil
}

// agentNextTo is findAgent for the executable exe.
func agentNextTo(exe string) (path string, warn error) {
	p := filepath.Join(filepath.Dir(exe), AgentName)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		if warn = agent.CheckProtocol(context.Background(), p); warn == nil {
			return p, nil
		}
	}
	return exe, warn
}

// FindRunsc returns the runsc binary next to the running executable, or
// else the one in PATH.
func FindRunsc() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), "runsc")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("runsc")
	if err != nil {
		return "", fmt.Errorf("%w: runsc not found next to the standin binary or in PATH: run `make runsc` (it builds bin/runsc at the gVisor version pinned in tools/runsc)", sandbox.ErrUnavailable)
	}
	return p, nil
}

// Close ends what New started for the process as a whole: the daemon stops
// being the child subreaper that reaps runsc's processes (see reap.go), so
// a process that goes on without sandboxes, such as a test binary, does
// not adopt orphans it will never reap. Delete the sandboxes first: their
// processes would then be left to the host's init. Closing twice is a
// no-op.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.subreaper {
		releaseSubreaper()
	}
	return nil
}

// Name implements sandbox.Runtime.
func (r *Runtime) Name() string { return "gvisor" }

// Root is runsc's state directory (its --root).
func (r *Runtime) Root() string { return r.root }

// Start implements sandbox.Runtime: it writes an OCI bundle and runs
// `runsc run --detach`, whose init only reaps orphans; commands come later
// through Exec.
func (r *Runtime) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Instance, error) {
	// Reserved while it starts: Cleanup leaves it alone.
	return sandbox.StartInstance(&r.ids, spec, func() (*Instance, error) { return r.start(ctx, spec) })
}

func (r *Runtime) start(ctx context.Context, spec sandbox.Spec) (*Instance, error) {
	began := time.Now()
	bundle := filepath.Join(r.bundles, spec.ID)
	// Left by a daemon that died: its container must go before the ID can
	// be reused.
	if _, err := os.Stat(bundle); err == nil {
		if err := r.remove(ctx, spec.ID); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	empty := filepath.Join(bundle, "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	oci, err := bundleSpec(spec, empty, r.hide, r.agent)
	if err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidSpec, err)
	}
	if err := writeJSON(filepath.Join(bundle, "config.json"), oci); err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	// runsc run --detach leaves two processes (sandbox and gofer) holding
	// its stdio, so its stderr goes to a file rather than a pipe that would
	// never see EOF.
	errPath := filepath.Join(bundle, "runsc.stderr")
	errFile, err := os.OpenFile(errPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	defer errFile.Close()
	args := []string{"--network=none"}
	if spec.NetNS != "" {
		// gVisor's netstack takes over the namespace's interfaces (and
		// removes their addresses from the host side). GSO is off: the
		// namespace's device is a TUN, which has none.
		args = []string{"--network=sandbox", "--gso=false"}
	}
	args = append(args, "run", "--detach", "--bundle="+bundle, spec.ID)
	// The agent's stdin and stdout: runsc hands these to the sandbox's
	// first process, and we keep the other ends.
	toAgentR, toAgentW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("agent pipe: %w", err)
	}
	fromAgentR, fromAgentW, err := os.Pipe()
	if err != nil {
		toAgentR.Close()
		toAgentW.Close()
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("agent pipe: %w", err)
	}
	cmd := r.command(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = toAgentR, fromAgentW, errFile
	err = cmd.Run()
	toAgentR.Close()
	fromAgentW.Close()
	if err != nil {
		toAgentW.Close()
		fromAgentR.Close()
		msg := tail(errPath)
		// Whatever runsc left running is ours to reap once it dies.
		_, _, _ = r.watchSandbox(spec.ID)
		// Never leave a half-started container behind.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = r.remove(cctx, spec.ID)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start sandbox %q: %w", spec.ID, ctx.Err())
		}
		return nil, fmt.Errorf("start sandbox %q: runsc: %w: %s%s", spec.ID, err, msg, hint(msg))
	}
	sandboxProc, gofer, err := r.watchSandbox(spec.ID)
	if err != nil {
		r.log.Debug("sandbox processes not watched: delete leaves the wait to runsc", logKeySandbox, spec.ID, logKeyError, err)
	}
	r.log.Info("sandbox started", logKeySandbox, spec.ID, logKeyElapsed, time.Since(began))
	return &Instance{
		rt:      r,
		id:      spec.ID,
		bundle:  bundle,
		env:     spec.Environ(),
		agent:   agent.NewClient(fromAgentR, toAgentW),
		pipes:   []*os.File{toAgentW, fromAgentR},
		sandbox: sandboxProc,
		gofer:   gofer,
	}, nil
}

// Cleanup deletes every container under the runtime's runsc root, and every
// bundle, that no live Instance of this Runtime owns: what a previous daemon
// left behind when it died. It returns the IDs it deleted.
func (r *Runtime) Cleanup(ctx context.Context) ([]string, error) {
	var out bytes.Buffer
	cmd := r.command(ctx, "list", "--format=json")
	cmd.Stdout = &out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("list sandboxes: runsc: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var listed []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil {
		return nil, fmt.Errorf("list sandboxes: decode runsc output: %w", err)
	}
	ids := map[string]bool{}
	for _, c := range listed {
		ids[c.ID] = true
	}
	dirs, err := os.ReadDir(r.bundles)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	for _, d := range dirs {
		ids[d.Name()] = true
	}

	var removed []string
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if r.ids.Held(id) {
			continue
		}
		if err := r.remove(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, id)
		r.log.Info("stale sandbox deleted", logKeySandbox, id)
	}
	return removed, errors.Join(errs...)
}

// remove kills and deletes a container and removes its bundle.
func (r *Runtime) remove(ctx context.Context, id string) error {
	// delete --force kills the sandbox and waits until it is gone; it
	// succeeds when the container does not exist.
	var stderr bytes.Buffer
	cmd := r.command(ctx, "delete", "--force", id)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("delete sandbox %q: runsc: %w: %s", id, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.RemoveAll(filepath.Join(r.bundles, id)); err != nil {
		return fmt.Errorf("delete sandbox %q: %w", id, err)
	}
	return nil
}

func (r *Runtime) forget(id string) {
	r.ids.Forget(id)
}

// command returns a runsc command with the runtime's flags and a clean
// environment: the daemon's may hold the master key, and runsc's processes
// (and whatever escaped into them) could read it from /proc.
func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.runsc, slices.Concat(r.flags, args)...)
	cmd.Env = []string{defaultPath}
	cmd.Dir = "/"
	return cmd
}

// tail returns the end of a runsc stderr file, trimmed.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// hint adds what to do for the failures we know.
func hint(msg string) string {
	switch {
	case strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "permission denied"):
		return " (runsc needs root with CAP_SYS_ADMIN; inside a container, run it privileged)"
	}
	return ""
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
