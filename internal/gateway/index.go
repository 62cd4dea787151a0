package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/policy"
	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/store"
)

// Store is the part of the store the gateway reads.
type Store interface {
	ListSandboxes(ctx context.Context) ([]store.Sandbox, error)
	ListSecrets(ctx context.Context) ([]store.Secret, error)
	ListBindings(ctx context.Context, sandboxID, secretID string) ([]store.Binding, error)
}

// snapshot is an immutable in-memory view of sandboxes, bindings and secret
// metadata, so the request path reads no database. Any API write
// invalidates it (Gateway.Invalidate) before the write is acknowledged, so
// a detach or rotate takes effect on the very next request.
type snapshot struct {
	sandboxes map[string]*sandboxInfo // by id
	byName    map[string]*sandboxInfo
	// byHash maps HMAC(stand-in) to its binding.
	byHash map[[32]byte]*bindingInfo
}

type sandboxInfo struct {
	ID, Name string
	Rules    policy.Rules
	Inspect  bool
	// bindings of this sandbox.
	bindings []*bindingInfo
	// revokedHosts are host entries of secrets that were bound to this
	// sandbox and no longer are (detach, secret delete): requests there are
	// still intercepted, so an old stand-in fails closed instead of going
	// out unswapped.
	revokedHosts []client.HostAuth
	// shapes are the stand-in shapes of bindings this sandbox has or had:
	// a token of such a shape that is not active is refused even when its
	// hash is not remembered (after a restart).
	shapes []catalog.Shape
}

type bindingInfo struct {
	ID, EnvVar string
	Sandbox    *sandboxInfo
	Secret     *secretInfo
	StandIn    string
	Shape      catalog.Shape
	// Imported: the stand-in was chosen by the caller and is known only
	// by its hash (StandIn is a placeholder).
	Imported bool
}

type secretInfo struct {
	ID, Name string
	Hosts    []client.HostAuth
	Version  int
	Sealed   []byte
}

// interceptsHost reports whether a secret is, or was, bound to the sandbox
// for host: such flows are terminated so that stand-ins are swapped or
// refused, never sent out as they are.
func (sb *sandboxInfo) interceptsHost(host string) bool {
	for _, b := range sb.bindings {
		if len(catalog.SlotsFor(b.Secret.Hosts, host)) > 0 {
			return true
		}
	}
	return len(catalog.SlotsFor(sb.revokedHosts, host)) > 0
}

// index holds the current snapshot and rebuilds it on demand.
type index struct {
	store  Store
	minter *standin.Minter

	mu   sync.Mutex
	gen  uint64
	snap *snapshot
	// revoked remembers, per sandbox id, host entries and stand-in shapes
	// of secrets once bound there; it outlives snapshots (not restarts).
	revoked map[string]revokedInfo
	// gone remembers hashes of stand-ins whose binding was removed, and
	// the sandbox they belonged to.
	gone map[[32]byte]string
	// last is the previous snapshot, to see which bindings went away.
	last *snapshot
}

type revokedInfo struct {
	hosts  []client.HostAuth
	shapes []catalog.Shape
}

func hashKey(h []byte) (k [32]byte) {
	copy(k[:], h)
	return k
}

// invalidate drops the snapshot; the next get rebuilds it.
func (ix *index) invalidate() {
	ix.mu.Lock()
	ix.gen++
	ix.snap = nil
	ix.mu.Unlock()
}

// get returns the current snapshot, rebuilding it if needed. A rebuild that
// raced with an invalidation is used for this call but not kept.
func (ix *index) get(ctx context.Context) (*snapshot, error) {
	ix.mu.Lock()
	s, gen := ix.snap, ix.gen
	ix.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := ix.build(ctx)
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.rememberRevoked(s)
	if ix.gen == gen {
		ix.snap = s
	}
	return s, nil
}

func (ix *index) build(ctx context.Context) (*snapshot, error) {
	sbs, err := ix.store.ListSandboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("load sandboxes: %w", err)
	}
	secs, err := ix.store.ListSecrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("load secrets: %w", err)
	}
	bs, err := ix.store.ListBindings(ctx, "", "")
	if err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	s := &snapshot{
		sandboxes: make(map[string]*sandboxInfo, len(sbs)),
		byName:    make(map[string]*sandboxInfo, len(sbs)),
		byHash:    make(map[[32]byte]*bindingInfo, len(bs)),
	}
	for _, sb := range sbs {
		rules, err := policy.ParseRules(sb.Network.AllowOut, sb.Network.DenyOut)
		if err != nil {
			// The API validated these; a row that no longer parses
			// fails closed: deny everything for that sandbox.
			rules = policy.Rules{}
			deny, _ := policy.ParseRules(nil, []string{"0.0.0.0/0", "::/0"})
			rules.Deny = deny.Deny
		}
		info := &sandboxInfo{ID: sb.ID, Name: sb.Name, Rules: rules, Inspect: sb.Network.Inspect == "all"}
		s.sandboxes[sb.ID] = info
		s.byName[sb.Name] = info
	}
	secrets := make(map[string]*secretInfo, len(secs))
	for _, sec := range secs {
		secrets[sec.ID] = &secretInfo{ID: sec.ID, Name: sec.Name, Hosts: sec.Hosts, Version: sec.Version, Sealed: sec.Sealed}
	}
	for _, b := range bs {
		sb, sec := s.sandboxes[b.SandboxID], secrets[b.SecretID]
		if sb == nil || sec == nil {
			continue
		}
		var shape catalog.Shape
		if err := json.Unmarshal(b.Shape, &shape); err != nil {
			return nil, fmt.Errorf("binding %s: decode shape: %w", b.ID, err)
		}
		// An imported stand-in is known only by its hash: responses that
		// echo the value get a fixed marker instead.
		tok := ""
		if b.Attempt != store.ImportedStandIn {
			tok, err = ix.minter.StandIn(b.ID, b.Attempt, shape)
			if err != nil {
				return nil, fmt.Errorf("binding %s: derive stand-in: %w", b.ID, err)
			}
		}
		bi := &bindingInfo{ID: b.ID, EnvVar: b.EnvVar, Sandbox: sb, Secret: sec, StandIn: tok, Shape: shape,
			Imported: b.Attempt == store.ImportedStandIn}
		sb.bindings = append(sb.bindings, bi)
		s.byHash[hashKey(b.StandInHash)] = bi
	}
	return s, nil
}

// rememberRevoked carries what left each sandbox (host entries, shapes,
// stand-in hashes) into the new snapshot. Called with ix.mu held.
func (ix *index) rememberRevoked(s *snapshot) {
	if ix.revoked == nil {
		ix.revoked = map[string]revokedInfo{}
		ix.gone = map[[32]byte]string{}
	}
	if ix.last != nil {
		for h, b := range ix.last.byHash {
			if _, ok := s.byHash[h]; !ok {
				ix.gone[h] = b.Sandbox.ID
			}
		}
	}
	ix.last = s
	for id, sb := range s.sandboxes {
		seen := map[string]bool{}
		ri := ix.revoked[id]
		var out revokedInfo
		addHost := func(h client.HostAuth) {
			k := h.Host + "\x00" + slotKey(h.Auth)
			if !seen[k] {
				seen[k] = true
				out.hosts = append(out.hosts, h)
			}
		}
		addShape := func(sh catalog.Shape) {
			k := fmt.Sprintf("%+v", sh)
			if !seen[k] {
				seen[k] = true
				out.shapes = append(out.shapes, sh)
			}
		}
		for _, h := range ri.hosts {
			addHost(h)
		}
		for _, sh := range ri.shapes {
			addShape(sh)
		}
		for _, b := range sb.bindings {
			for _, h := range b.Secret.Hosts {
				addHost(h)
			}
			addShape(b.Shape)
		}
		ix.revoked[id] = out
		sb.revokedHosts, sb.shapes = out.hosts, out.shapes
	}
	for id := range ix.revoked {
		if s.sandboxes[id] == nil {
			delete(ix.revoked, id)
		}
	}
	for h, id := range ix.gone {
		if s.sandboxes[id] == nil {
			delete(ix.gone, h)
		}
	}
}

// wasStandIn reports whether tok was a stand-in of sandbox sb (its binding
// is gone) or has the shape of one of its stand-ins.
func (ix *index) wasStandIn(sb *sandboxInfo, h [32]byte, tok string) bool {
	ix.mu.Lock()
	id, ok := ix.gone[h]
	ix.mu.Unlock()
	if ok && id == sb.ID {
		return true
	}
	for _, sh := range sb.shapes {
		if sh.Valid(tok) {
			return true
		}
	}
	return false
}

// tokenHash is the index key of a presented token.
func (ix *index) tokenHash(tok string) [32]byte {
	return hashKey(ix.minter.Hash([]byte(tok)))
}
