package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/standin/standin/internal/api"
	"github.com/standin/standin/internal/gateway"
	"github.com/standin/standin/internal/policy"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/gvisor"
	"github.com/standin/standin/internal/sandbox/namespaces"
	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/sandbox/netstack"
	"github.com/standin/standin/internal/store"
)

// Sandbox states this package records.
const (
	stateRunning = "running"
	stateStopped = "stopped"
)

// nsPrefix starts the name of every network namespace a server makes.
const nsPrefix = "stn-"

// sandboxCABundle is where a sandbox finds its CA bundle: the path most TLS
// stacks read by default, and the one the CA variables name.
const sandboxCABundle = "/etc/ssl/certs/ca-certificates.crt"

// hostCABundle is the host's bundle, copied into each sandbox's with
// standin's CA appended.
const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// caEnvVars are the variables common TLS stacks read a CA bundle from:
// OpenSSL (curl, python ssl), Node, requests, curl, git.
var caEnvVars = []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}

// runner runs the server's sandboxes (it implements api.Runner). Each
// sandbox gets a network namespace whose only route is a TUN device; a
// userspace stack serves it, answers DNS only for names the sandbox's rules
// allow, and hands every TCP connection to the gateway. Nothing else leaves
// the sandbox.
type runner struct {
	rt      sandbox.Runtime
	gw      *gateway.Gateway
	store   store.Store
	dataDir string
	// stateDir is the runtime's state directory, removed when the server
	// stops with every sandbox stopped; "" if the runtime keeps none.
	stateDir string
	caPEM    []byte
	log      *slog.Logger
	// maxFlows is each sandbox's netstack.Options.MaxFlows (Config.MaxFlows).
	maxFlows int

	mu   sync.Mutex
	live map[string]*running // nil value: being started

	rulesMu sync.Mutex
	rules   map[string]policy.Rules // by sandbox id; nil when stale

	// The pool: poolSize sandboxes started ahead, with no identity, which
	// Start hands out; fillPool tops it up in the background.
	poolSize int
	pool     chan *running
	poolWake chan struct{}
	poolStop context.CancelFunc
	poolDone chan struct{}
}

var _ api.Runner = (*runner)(nil)

// running is what one sandbox uses; teardown releases it.
type running struct {
	inst   sandbox.Instance
	ns     *netns.NS
	st     *netstack.Stack
	dir    string // <data dir>/sandboxes/<instance id>
	cancel context.CancelFunc

	// sandboxID is whose sandbox this is: the API's id, which the rules and
	// the gateway know it by. Empty while it waits in the pool, when its
	// DNS answers nothing and its connections are dropped. The instance id
	// (runsc's container, namespace, directory) is the sandbox id for a
	// sandbox started on demand, and a pool id for one from the pool.
	sandboxID atomic.Pointer[string]
}

func (r *running) owner() string {
	if p := r.sandboxID.Load(); p != nil {
		return *p
	}
	return ""
}

func newRunner(rt sandbox.Runtime, gw *gateway.Gateway, st store.Store, dataDir string, logger *slog.Logger) *runner {
	stateDir := ""
	if _, ok := rt.(*gvisor.Runtime); ok {
		stateDir = runtimeStateDir(dataDir)
	}
	return &runner{
		rt: rt, gw: gw, store: st, dataDir: dataDir, stateDir: stateDir, caPEM: gw.CA().CertPEM(),
		log:  logger.With("component", "sandboxes"),
		live: map[string]*running{},
	}
}

// newRuntime builds the configured runtime; nil for "none".
func newRuntime(cfg Config, logger *slog.Logger) (sandbox.Runtime, error) {
	if cfg.Runtime == RuntimeNone {
		return nil, nil
	}
	const off = `, or set "runtime": "none" in the config (standin serve --runtime none) to keep sandboxes as records only`
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: runtime %s needs root (it creates namespaces and TUN devices): run `standin serve` as root%s",
			sandbox.ErrUnavailable, cfg.Runtime, off)
	}
	if cfg.Runtime == RuntimeNamespaces {
		if logger == nil {
			logger = slog.Default()
		}
		rt, err := namespaces.New(namespaces.Config{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("%w%s", err, off)
		}
		logger.Warn(`runtime "namespaces": sandboxes share the host's kernel (namespaces and a seccomp filter, no gVisor); ` +
			`a kernel bug reachable from the sandbox is an escape. Use the default runtime "gvisor" for code you do not trust`)
		return rt, nil
	}
	bin := cfg.RunscPath
	if bin == "" {
		var err error
		if bin, err = gvisor.FindRunsc(); err != nil {
			return nil, fmt.Errorf("%w (or set \"runscPath\" in the config)%s", err, off)
		}
	}
	rt, err := gvisor.New(gvisor.Config{Runsc: bin, StateDir: runtimeStateDir(cfg.DataDir), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, off)
	}
	return rt, nil
}

// RuntimeStateDir is runsc's state directory (holding its --root) for the
// server on dataDir. It is per data directory: Cleanup deletes every
// container under it, which must never hit another server's sandboxes.
func RuntimeStateDir(dataDir string) string { return runtimeStateDir(dataDir) }

func runtimeStateDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(filepath.Dir(gvisor.DefaultStateDir), "gvisor-"+hex.EncodeToString(sum[:6]))
}

// nsName is the network namespace of sandbox id.
func nsName(id string) string { return nsPrefix + strings.TrimPrefix(id, "sbx_") }

func (o *runner) sandboxesDir() string { return filepath.Join(o.dataDir, "sandboxes") }

// cleanup removes what a previous server on this data directory left
// running (it died or was killed): runsc containers, namespaces and files.
// Those sandboxes are not adopted again: their records become "stopped".
func (o *runner) cleanup(ctx context.Context) error {
	var errs []error
	if c, ok := o.rt.(interface {
		Cleanup(context.Context) ([]string, error)
	}); ok {
		if _, err := c.Cleanup(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	sbs, err := o.store.ListSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("clean up sandboxes: %w", err)
	}
	// Only namespaces of this data directory's sandboxes are ours: another
	// server on this machine has namespaces under the same prefix.
	ours := map[string]bool{}
	for _, sb := range sbs {
		ours[nsName(sb.ID)] = true
	}
	dirs, err := os.ReadDir(o.sandboxesDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, d := range dirs {
		ours[nsName(d.Name())] = true
	}
	names, err := netns.List(nsPrefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if ours[n] {
			if err := netns.Remove(n); err != nil {
				errs = append(errs, err)
			} else {
				o.log.Info("stale network namespace removed", "netns", n)
			}
		}
	}
	for _, d := range dirs {
		if err := os.RemoveAll(filepath.Join(o.sandboxesDir(), d.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sb := range sbs {
		if sb.State == stateRunning {
			if err := o.store.SetSandboxState(ctx, sb.ID, stateStopped); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
			o.log.Warn("sandbox of a previous run stopped; delete and create it again to run it", "sandbox_id", sb.ID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up sandboxes: %w", err)
	}
	return nil
}

// invalidate drops the cached rules; the API calls it after every write, so
// a rule change applies to the next DNS query.
func (o *runner) invalidate() {
	o.rulesMu.Lock()
	o.rules = nil
	o.rulesMu.Unlock()
}

// allow reports whether sandbox id's rules allow name: its DNS answers only
// for those names (the gateway checks every connection again).
func (o *runner) allow(ctx context.Context, id, name string) bool {
	o.rulesMu.Lock()
	defer o.rulesMu.Unlock()
	if o.rules == nil {
		sbs, err := o.store.ListSandboxes(ctx)
		if err != nil {
			o.log.Error("read sandbox rules", "error", err)
			return false
		}
		rules := make(map[string]policy.Rules, len(sbs))
		for _, sb := range sbs {
			rs, err := policy.ParseRules(sb.Network.AllowOut, sb.Network.DenyOut)
			if err != nil {
				o.log.Error("parse sandbox rules", "sandbox_id", sb.ID, "error", err)
				continue
			}
			rules[sb.ID] = rs
		}
		o.rules = rules
	}
	rs, ok := o.rules[id]
	return ok && rs.Decide(policy.Dest{Host: name}).Allow
}

// Start implements api.Runner: it takes a sandbox from the pool if one is
// ready, else starts one.
func (o *runner) Start(ctx context.Context, sb *store.Sandbox) (err error) {
	o.mu.Lock()
	if _, ok := o.live[sb.ID]; ok {
		o.mu.Unlock()
		return fmt.Errorf("start sandbox id %q: already running", sb.ID)
	}
	o.live[sb.ID] = nil
	o.mu.Unlock()

	var r *running
	select {
	case r = <-o.pool:
		// Refill a moment later: starting a sandbox takes most of a
		// CPU for a while, which the new owner's first commands would
		// compete with on a small machine.
		time.AfterFunc(poolRefillDelay, o.wakePool)
	default:
	}
	defer func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if err != nil {
			delete(o.live, sb.ID)
			return
		}
		o.live[sb.ID] = r
	}()
	if r != nil {
		// Its identity is set before any process runs in it: from here on
		// its DNS and connections follow sb's rules and secrets.
		id := sb.ID
		r.sandboxID.Store(&id)
		o.log.Debug("sandbox from the pool", "sandbox_id", sb.ID, "instance", r.inst.ID())
		return nil
	}
	r, err = o.build(ctx, sb.ID, sb.ID)
	return err
}

// build starts a sandbox instance named instID, owned by sandbox owner (""
// for the pool). On error nothing of it is left.
func (o *runner) build(ctx context.Context, instID, owner string) (r *running, err error) {
	r = &running{dir: filepath.Join(o.sandboxesDir(), instID)}
	if owner != "" {
		r.sandboxID.Store(&owner)
	}
	defer func() {
		if err != nil {
			if terr := r.teardown(context.WithoutCancel(ctx)); terr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", terr))
			}
			r = nil
		}
	}()
	// Connections live as long as the sandbox, not the API request.
	connCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel

	if err := os.MkdirAll(o.sandboxesDir(), 0o700); err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	if r.ns, err = netns.Create(nsName(instID), netns.Config{}); err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	r.st, err = netstack.New(r.ns.TUN, r.ns.Config.MTU, netstack.Options{
		DNSAddr: r.ns.Config.Gateway,
		Allow: func(name string) bool {
			id := r.owner()
			return id != "" && o.allow(connCtx, id, name)
		},
		TCP: func(c net.Conn, dst netip.AddrPort, name string) {
			id := r.owner()
			if id == "" {
				c.Close()
				return
			}
			o.gw.HandleConn(connCtx, c, gateway.ConnMeta{SandboxID: id, Dst: dst, Name: name})
		},
		MaxFlows: o.maxFlows,
		Logger:   o.log,
	})
	if err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}

	resolv := filepath.Join(r.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+r.ns.Config.Gateway.String()+"\n"), 0o644); err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	bundle := filepath.Join(r.dir, "ca-certificates.crt")
	host, err := os.ReadFile(hostCABundle)
	if err != nil {
		// The sandbox's bundle is mounted over the host's, which must
		// exist (runsc would otherwise create it on the host).
		return r, fmt.Errorf("start sandbox: read the host's CA bundle (install it with `apt-get install ca-certificates`): %w", err)
	}
	if len(host) > 0 && host[len(host)-1] != '\n' {
		host = append(host, '\n')
	}
	if err := os.WriteFile(bundle, append(host, o.caPEM...), 0o644); err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	var env []string
	for _, k := range caEnvVars {
		env = append(env, k+"="+sandboxCABundle)
	}
	// Stand-ins are not in Spec.Env: each Exec gets the current ones, so a
	// detached secret is gone from the next command, and a sandbox from the
	// pool carries nothing of its future owner.
	r.inst, err = o.rt.Start(ctx, sandbox.Spec{
		ID:    instID,
		Env:   env,
		NetNS: r.ns.Path,
		Mounts: []sandbox.Mount{
			{Source: resolv, Target: "/etc/resolv.conf"},
			{Source: bundle, Target: sandboxCABundle},
		},
		Hide: []string{o.dataDir},
	})
	if err != nil {
		return r, fmt.Errorf("start sandbox: %w", err)
	}
	return r, nil
}

// startPool starts keeping size sandboxes ready; stopAll ends it.
func (o *runner) startPool(size int) {
	if size <= 0 {
		return
	}
	o.poolSize = size
	o.pool = make(chan *running, size)
	o.poolWake = make(chan struct{}, 1)
	o.poolDone = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	o.poolStop = cancel
	go o.fillPool(ctx)
	o.wakePool()
}

func (o *runner) wakePool() {
	if o.poolWake == nil {
		return
	}
	select {
	case o.poolWake <- struct{}{}:
	default:
	}
}

// poolRefillDelay is how long after a sandbox is taken from the pool the
// pool starts replacing it.
const poolRefillDelay = time.Second

// poolRetry is how long fillPool waits after a failed start.
const poolRetry = 10 * time.Second

// fillPool starts sandboxes, one at a time, while the pool has room. One
// at a time keeps the pool's work from crowding out creates that found it
// empty.
func (o *runner) fillPool(ctx context.Context) {
	defer close(o.poolDone)
	for {
		for len(o.pool) < o.poolSize {
			var b [8]byte
			rand.Read(b[:])
			r, err := o.build(ctx, "pool-"+hex.EncodeToString(b[:]), "")
			if ctx.Err() != nil {
				if r != nil {
					r.teardown(context.Background())
				}
				return
			}
			if err != nil {
				o.log.Error("pre-start a sandbox for the pool", "error", err, "retry_in", poolRetry.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(poolRetry):
				}
				continue
			}
			// Warm it: the first command in a sandbox pays for loading the
			// shell and libc through the runtime's file system; a pooled
			// sandbox should answer its owner's first command at full speed.
			if _, err := r.inst.Exec(ctx, sandbox.ExecSpec{Args: []string{"sh", "-c", "true"}}); err != nil && ctx.Err() == nil {
				o.log.Warn("warm a pooled sandbox", "error", err)
			}
			o.pool <- r // never blocks: only this goroutine adds
		}
		select {
		case <-ctx.Done():
			return
		case <-o.poolWake:
		}
	}
}

// drainPool stops the pool's filler and deletes its sandboxes.
func (o *runner) drainPool(ctx context.Context) bool {
	if o.poolStop == nil {
		return true
	}
	o.poolStop()
	<-o.poolDone
	clean := true
	for {
		select {
		case r := <-o.pool:
			if err := r.teardown(ctx); err != nil {
				o.log.Error("delete pooled sandbox", "instance", r.inst.ID(), "error", err)
				clean = false
			}
		default:
			return clean
		}
	}
}

// teardown releases what the sandbox uses, whatever was built of it.
func (r *running) teardown(ctx context.Context) error {
	var errs []error
	if r.inst != nil {
		if err := r.inst.Delete(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if r.st != nil {
		if err := r.st.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.ns != nil {
		if err := r.ns.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.cancel != nil {
		r.cancel()
	}
	if err := os.RemoveAll(r.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Exec implements api.Runner.
func (o *runner) Exec(ctx context.Context, id string, spec sandbox.ExecSpec) (int, error) {
	o.mu.Lock()
	r := o.live[id]
	o.mu.Unlock()
	if r == nil {
		return 0, api.ErrNotRunning
	}
	code, err := r.inst.Exec(ctx, spec)
	if errors.Is(err, sandbox.ErrNotFound) {
		return 0, api.ErrNotRunning
	}
	return code, err
}

// Stop implements api.Runner.
func (o *runner) Stop(ctx context.Context, id string) error {
	o.mu.Lock()
	r, ok := o.live[id]
	if ok && r == nil {
		o.mu.Unlock()
		return fmt.Errorf("stop sandbox id %q: still starting", id)
	}
	delete(o.live, id)
	o.mu.Unlock()
	if r == nil {
		return nil
	}
	if err := r.teardown(ctx); err != nil {
		return fmt.Errorf("stop sandbox id %q: %w", id, err)
	}
	return nil
}

// Running implements api.Runner.
func (o *runner) Running(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.live[id] != nil
}

// stopAll stops every sandbox when the server shuts down; their records
// become "stopped".
func (o *runner) stopAll(ctx context.Context) {
	o.mu.Lock()
	var ids []string
	for id, r := range o.live {
		if r != nil {
			ids = append(ids, id)
		}
	}
	o.mu.Unlock()
	clean := o.drainPool(ctx)
	for _, id := range ids {
		if err := o.Stop(ctx, id); err != nil {
			o.log.Error("stop sandbox", "sandbox_id", id, "error", err)
			clean = false
		}
		if err := o.store.SetSandboxState(ctx, id, stateStopped); err != nil && !errors.Is(err, store.ErrNotFound) {
			o.log.Error("record sandbox stopped", "sandbox_id", id, "error", err)
		}
	}
	// A sandbox that would not stop keeps the state for the next start's
	// cleanup.
	if clean && o.stateDir != "" {
		if err := os.RemoveAll(o.stateDir); err != nil {
			o.log.Error("remove runtime state", "error", err)
		}
	}
}
