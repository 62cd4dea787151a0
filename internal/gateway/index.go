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
	ListRevoked(ctx context.Context) ([]store.Revoked, error)
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
	// gone maps HMAC(stand-in) of removed bindings to what they were.
	gone map[[32]byte]*goneInfo
}

// goneInfo is a removed binding: its sandbox and the secret it stood for.
type goneInfo struct {
	sandboxID string
	secret    *secretInfo // id and name only
}

type sandboxInfo struct {
	ID, Name string
	Rules    policy.Rules
	Inspect  bool
	// bindings of this sandbox.
	bindings []*bindingInfo
	// revokedHosts are host entries of secrets that were bound to this
	// sandbox and no longer are (detach, secret delete; kept by the store
	// across restarts): requests there are still intercepted, so an old
	// stand-in fails closed instead of going out unswapped.
	revokedHosts []client.HostAuth
	// shapes are the stand-in shapes of bindings this sandbox has or had:
	// a token of such a shape that is not active is refused even when its
	// hash is unknown.
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
	revoked, err := ix.store.ListRevoked(ctx)
	if err != nil {
		return nil, fmt.Errorf("load revoked bindings: %w", err)
	}
	s := &snapshot{
		sandboxes: make(map[string]*sandboxInfo, len(sbs)),
		byName:    make(map[string]*sandboxInfo, len(sbs)),
		byHash:    make(map[[32]byte]*bindingInfo, len(bs)),
		gone:      make(map[[32]byte]*goneInfo, len(revoked)),
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
		sb.shapes = appendShape(sb.shapes, shape)
		s.byHash[hashKey(b.StandInHash)] = bi
	}
	for _, r := range revoked {
		sb := s.sandboxes[r.SandboxID]
		if sb == nil {
			continue
		}
		sb.revokedHosts = append(sb.revokedHosts, r.Hosts...)
		var shape catalog.Shape
		if json.Unmarshal(r.Shape, &shape) == nil {
			sb.shapes = appendShape(sb.shapes, shape)
		}
		s.gone[hashKey(r.StandInHash)] = &goneInfo{sandboxID: sb.ID, secret: &secretInfo{ID: r.SecretID, Name: r.SecretName}}
	}
	return s, nil
}

func appendShape(list []catalog.Shape, sh catalog.Shape) []catalog.Shape {
	for _, x := range list {
		if x == sh {
			return list
		}
	}
	return append(list, sh)
}

// wasStandIn reports whether tok was a stand-in of sandbox sb whose
// binding is gone (and for which secret, if known), or has the shape of one
// of its stand-ins.
func (s *snapshot) wasStandIn(sb *sandboxInfo, h [32]byte, tok string) (bool, *secretInfo) {
	if g := s.gone[h]; g != nil && g.sandboxID == sb.ID {
		return true, g.secret
	}
	for _, sh := range sb.shapes {
		if sh.Valid(tok) {
			return true, nil
		}
	}
	return false, nil
}

// tokenHash is the index key of a presented token.
func (ix *index) tokenHash(tok string) [32]byte {
	return hashKey(ix.minter.Hash([]byte(tok)))
}
