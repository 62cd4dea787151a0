package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
)

// stateCreated is a sandbox's state until the runtime starts it.
const stateCreated = "created"

// maxMintAttempts bounds the retries when a stand-in's hash equals the
// secret's fingerprint. One retry is already astronomically unlikely; the
// bound only keeps a broken minter from looping forever.
const maxMintAttempts = 8

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request) error {
	var req client.SandboxCreate
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := validateName("sandbox", req.Name); err != nil {
		return err
	}
	if err := validateNetwork(req.Network); err != nil {
		return err
	}
	timeout, err := parseTimeout(req.Timeout)
	if err != nil {
		return err
	}
	if len(req.Secrets) > maxBindings {
		return badRequest(CodeInvalidField, "secrets has %d entries; the limit is %d", len(req.Secrets), maxBindings)
	}
	envs := make([]string, 0, len(req.Secrets))
	for env := range req.Secrets {
		if err := validateEnvVar(env); err != nil {
			return err
		}
		envs = append(envs, env)
	}
	slices.Sort(envs)
	secs := make([]*store.Secret, len(envs))
	for i, env := range envs {
		sec, err := s.secretByName(r, req.Secrets[env])
		if err != nil {
			return err
		}
		secs[i] = sec
	}

	id, err := newID(s.rand(), "sbx_", 16)
	if err != nil {
		return err
	}
	now := s.now()
	sb := &store.Sandbox{ID: id, Name: req.Name, State: stateCreated, Network: normalizeNetwork(req.Network), CreatedAt: now}
	bs := make([]store.Binding, len(envs))
	for i, env := range envs {
		b, err := s.newBinding(sb, env, secs[i], now)
		if err != nil {
			return err
		}
		bs[i] = *b
	}
	if err := s.Store.CreateSandbox(r.Context(), sb, bs); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return newError(http.StatusConflict, CodeAlreadyExists, "sandbox %q already exists; pick another name or delete it first", req.Name)
		}
		return fmt.Errorf("create sandbox: %w", err)
	}
	if s.Sandboxes != nil {
		if err := s.startSandbox(r, sb); err != nil {
			return err
		}
	}
	if timeout > 0 {
		s.expireAfter(sb.ID, timeout)
	}
	out, err := s.sandboxOut(sb, bs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// newBinding mints a binding of sec to sb under env. The stand-in is
// derived from the binding id; an attempt whose hash equals the secret's
// fingerprint (the stand-in would be the real value) is skipped.
func (s *Server) newBinding(sb *store.Sandbox, env string, sec *store.Secret, now time.Time) (*store.Binding, error) {
	id, err := newID(s.rand(), "bnd_", 16)
	if err != nil {
		return nil, err
	}
	shape, err := decodeShape(sec.Shape)
	if err != nil {
		return nil, fmt.Errorf("secret id %q: %w", sec.ID, err)
	}
	for attempt := range maxMintAttempts {
		tok, err := s.Minter.StandIn(id, attempt, shape)
		if err != nil {
			return nil, fmt.Errorf("mint stand-in: %w", err)
		}
		h := s.Minter.Hash([]byte(tok))
		if subtle.ConstantTimeCompare(h, sec.Fingerprint) == 1 {
			continue
		}
		return &store.Binding{
			ID: id, SandboxID: sb.ID, EnvVar: env, SecretID: sec.ID, Shape: sec.Shape,
			Attempt: attempt, StandInHash: h, CreatedAt: now,
			SandboxName: sb.Name, SecretName: sec.Name,
		}, nil
	}
	return nil, fmt.Errorf("mint stand-in: %d attempts all equal the value's fingerprint", maxMintAttempts)
}

// importedBinding binds sec with a stand-in the caller chose.
func (s *Server) importedBinding(sb *store.Sandbox, env string, sec *store.Secret, tok string, now time.Time) (*store.Binding, error) {
	if len(tok) < 16 || len(tok) > 256 {
		return nil, badRequest(CodeInvalidField, "standIn must be 16 to 256 characters")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return nil, badRequest(CodeInvalidField, "standIn must be printable ASCII without spaces")
		}
	}
	h := s.Minter.Hash([]byte(tok))
	if subtle.ConstantTimeCompare(h, sec.Fingerprint) == 1 {
		return nil, badRequest(CodeInvalidField, "standIn equals the secret's value; a stand-in must not be the credential")
	}
	id, err := newID(s.rand(), "bnd_", 16)
	if err != nil {
		return nil, err
	}
	return &store.Binding{
		ID: id, SandboxID: sb.ID, EnvVar: env, SecretID: sec.ID, Shape: sec.Shape,
		Attempt: store.ImportedStandIn, StandInHash: h, CreatedAt: now,
		SandboxName: sb.Name, SecretName: sec.Name,
	}, nil
}

// sandboxOut is the sandbox's own view, the one place stand-ins are shown:
// each is derived again from the binding id, attempt and shape.
func (s *Server) sandboxOut(sb *store.Sandbox, bs []store.Binding) (client.Sandbox, error) {
	out := client.Sandbox{
		ID: sb.ID, Name: sb.Name, State: sb.State, Network: normalizeNetwork(sb.Network),
		Bindings: make([]client.Binding, 0, len(bs)), CreatedAt: sb.CreatedAt,
	}
	if at, ok := s.expiresAt(sb.ID); ok {
		out.ExpiresAt = &at
	}
	for i := range bs {
		cb, err := s.bindingOut(sb.Name, &bs[i])
		if err != nil {
			return client.Sandbox{}, err
		}
		out.Bindings = append(out.Bindings, cb)
	}
	slices.SortFunc(out.Bindings, func(a, b client.Binding) int { return strings.Compare(a.EnvVar, b.EnvVar) })
	return out, nil
}

func (s *Server) bindingOut(sandbox string, b *store.Binding) (client.Binding, error) {
	if b.Attempt == store.ImportedStandIn {
		return client.Binding{Sandbox: sandbox, EnvVar: b.EnvVar, Secret: b.SecretName, CreatedAt: b.CreatedAt}, nil
	}
	shape, err := decodeShape(b.Shape)
	if err != nil {
		return client.Binding{}, fmt.Errorf("binding id %q: %w", b.ID, err)
	}
	tok, err := s.Minter.StandIn(b.ID, b.Attempt, shape)
	if err != nil {
		return client.Binding{}, fmt.Errorf("derive stand-in of binding id %q: %w", b.ID, err)
	}
	return client.Binding{Sandbox: sandbox, EnvVar: b.EnvVar, Secret: b.SecretName, StandIn: tok, CreatedAt: b.CreatedAt}, nil
}

// sandboxByName loads the sandbox named in the path.
func (s *Server) sandboxByName(r *http.Request, name string) (*store.Sandbox, error) {
	if !nameRE.MatchString(name) {
		return nil, notFound("sandbox", name)
	}
	sb, err := s.Store.GetSandbox(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("sandbox", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox: %w", err)
	}
	return sb, nil
}

// sandboxView loads a sandbox's bindings and builds its view.
func (s *Server) sandboxView(r *http.Request, sb *store.Sandbox) (client.Sandbox, error) {
	bs, err := s.Store.ListBindings(r.Context(), sb.ID, "")
	if err != nil {
		return client.Sandbox{}, fmt.Errorf("list bindings: %w", err)
	}
	return s.sandboxOut(sb, bs)
}

func (s *Server) listSandboxes(w http.ResponseWriter, r *http.Request) error {
	sbs, err := s.Store.ListSandboxes(r.Context())
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	out := client.List[client.Sandbox]{Items: make([]client.Sandbox, 0, len(sbs))}
	for i := range sbs {
		v, err := s.sandboxView(r, &sbs[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request) error {
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	v, err := s.sandboxView(r, sb)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) deleteSandbox(w http.ResponseWriter, r *http.Request) error {
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	s.cancelTimeout(sb.ID)
	if s.Sandboxes != nil {
		if err := s.Sandboxes.Stop(context.WithoutCancel(r.Context()), sb.ID); err != nil {
			return fmt.Errorf("stop sandbox: %w", err)
		}
	}
	if err := s.Store.DeleteSandbox(r.Context(), sb.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("sandbox", sb.Name)
		}
		return fmt.Errorf("delete sandbox: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) error {
	var req client.Attach
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := validateEnvVar(req.EnvVar); err != nil {
		return err
	}
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	sec, err := s.secretByName(r, req.Secret)
	if err != nil {
		return err
	}
	var b *store.Binding
	if req.StandIn != "" {
		b, err = s.importedBinding(sb, req.EnvVar, sec, req.StandIn, s.now())
	} else {
		b, err = s.newBinding(sb, req.EnvVar, sec, s.now())
	}
	if err != nil {
		return err
	}
	if err := s.Store.CreateBinding(r.Context(), b); err != nil {
		if errors.Is(err, store.ErrConflict) && req.StandIn != "" && strings.Contains(err.Error(), "stand-in") {
			return newError(http.StatusConflict, CodeAlreadyExists, "that stand-in is already in use by another binding; choose another")
		}
		if errors.Is(err, store.ErrConflict) {
			return newError(http.StatusConflict, CodeAlreadyExists,
				"sandbox %q already has a secret bound to %s; detach it first with `standin sandbox detach %s %s`",
				sb.Name, req.EnvVar, sb.Name, req.EnvVar)
		}
		if errors.Is(err, store.ErrNotFound) {
			// The sandbox or secret went away since we looked.
			return newError(http.StatusNotFound, CodeNotFound, "sandbox %q or secret %q was deleted meanwhile", sb.Name, sec.Name)
		}
		return fmt.Errorf("create binding: %w", err)
	}
	out, err := s.bindingOut(sb.Name, b)
	if err != nil {
		return err
	}
	if req.StandIn != "" {
		out.StandIn = req.StandIn
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) error {
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	env := r.PathValue("env")
	noBinding := func() error {
		what := "that variable"
		if envRE.MatchString(env) && !looksLikeCredential(env) {
			what = env
		}
		return newError(http.StatusNotFound, CodeNotFound,
			"sandbox %q has no secret bound to %s; `standin sandbox get %s` lists its bindings", sb.Name, what, sb.Name)
	}
	if !envRE.MatchString(env) {
		return noBinding()
	}
	if err := s.Store.DeleteBinding(r.Context(), sb.ID, env); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return noBinding()
		}
		return fmt.Errorf("delete binding: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setNetwork(w http.ResponseWriter, r *http.Request) error {
	var req client.NetworkRules
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := validateNetwork(req); err != nil {
		return err
	}
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	n := normalizeNetwork(req)
	if err := s.Store.SetSandboxNetwork(r.Context(), sb.ID, n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("sandbox", sb.Name)
		}
		return fmt.Errorf("set sandbox network: %w", err)
	}
	sb.Network = n
	v, err := s.sandboxView(r, sb)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
