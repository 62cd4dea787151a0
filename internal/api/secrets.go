package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/vault"
)

// providerCustom is the provider id of a secret without a catalog entry.
const providerCustom = "custom"

// secretCreateBody is client.SecretCreate with the value decoded into
// wipeable bytes. A test keeps the JSON fields of the two identical.
type secretCreateBody struct {
	Name        string            `json:"name"`
	Provider    string            `json:"provider,omitempty"`
	Hosts       []client.HostAuth `json:"hosts,omitempty"`
	Value       secretBytes       `json:"value"`
	Description string            `json:"description,omitempty"`
}

// secretRotateBody is client.SecretRotate, likewise.
type secretRotateBody struct {
	Value secretBytes `json:"value"`
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) error {
	var req secretCreateBody
	defer func() { clear(req.Value) }()
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := validateName("secret", req.Name); err != nil {
		return err
	}
	provider := req.Provider
	var prov *catalog.Provider
	hosts := req.Hosts
	switch provider {
	case "", providerCustom:
		provider = providerCustom
		if len(hosts) == 0 {
			return badRequest(CodeInvalidHost,
				"a custom secret needs \"hosts\": where it is sent and how (or pass a provider id; run `standin providers` to see them)")
		}
	default:
		p, ok := catalog.Lookup(provider)
		if !ok {
			// A value that passes the shape test (lowercase hex, say) is
			// still hidden when it is this request's value.
			what := quoteName(provider)
			if containsValue(provider, req.Value) {
				what = "(the secret value: it belongs in \"value\" only)"
			}
			return badRequest(CodeUnknownProvider, "unknown provider %s; run `standin providers` to see the ids, or use \"custom\" with hosts",
				what)
		}
		prov = &p
		if len(hosts) == 0 {
			hosts = p.Hosts
		}
	}
	if err := validateValue(req.Value); err != nil {
		return err
	}
	if containsValue(req.Name, req.Value) {
		return badRequest(CodeInvalidName, "secret name contains the secret value; a name is %s", nameRule)
	}
	if err := validateHosts(hosts, req.Value); err != nil {
		return err
	}
	if err := validateDescription(req.Description, req.Value); err != nil {
		return err
	}
	fp := s.Minter.Hash(req.Value)
	if err := s.refuseStandIn(r, fp); err != nil {
		return err
	}

	id, err := newID(s.rand(), "sec_", 16)
	if err != nil {
		return err
	}
	shape, err := json.Marshal(catalog.ShapeFor(prov, req.Value))
	if err != nil {
		return fmt.Errorf("encode shape: %w", err)
	}
	sealed, err := s.Vault.Seal(id, 1, vault.NewValue(req.Value))
	clear(req.Value)
	if err != nil {
		return fmt.Errorf("seal secret: %w", err)
	}
	keyID, err := vault.KeyID(sealed)
	if err != nil {
		return fmt.Errorf("read key id of sealed secret: %w", err)
	}
	now := s.now()
	sec := &store.Secret{
		ID: id, Name: req.Name, Provider: provider, Description: req.Description,
		Hosts: hosts, Shape: shape, Version: 1, KeyID: keyID, Sealed: sealed,
		Fingerprint: fp, CreatedAt: now, RotatedAt: now,
	}
	if err := s.Store.CreateSecret(r.Context(), sec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return newError(http.StatusConflict, CodeAlreadyExists,
				"secret %q already exists; rotate it with `standin secret rotate %s` or pick another name", req.Name, req.Name)
		}
		return fmt.Errorf("create secret: %w", err)
	}
	out, err := secretOut(sec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// refuseStandIn refuses a value that is one of our stand-ins: someone
// copied it out of a sandbox. Fingerprints and stand-in hashes are the same
// keyed hash, so one lookup answers.
func (s *Server) refuseStandIn(r *http.Request, fp []byte) error {
	_, err := s.Store.BindingByHash(r.Context(), fp)
	switch {
	case err == nil:
		return badRequest(CodeInvalidValue,
			"value is a stand-in (the token a sandbox sees), not a real credential; pass the provider's real key")
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return fmt.Errorf("look up value among stand-ins: %w", err)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	secs, err := s.Store.ListSecrets(r.Context())
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	out := client.List[client.Secret]{Items: make([]client.Secret, 0, len(secs))}
	for i := range secs {
		cs, err := secretOut(&secs[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, cs)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// secretByName loads the secret named in the path, with a not_found error
// that says how to list secrets.
func (s *Server) secretByName(r *http.Request, name string) (*store.Secret, error) {
	if !nameRE.MatchString(name) {
		return nil, notFound("secret", name)
	}
	sec, err := s.Store.GetSecret(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("secret", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret: %w", err)
	}
	return sec, nil
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) error {
	sec, err := s.secretByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	out, err := secretOut(sec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	var req secretRotateBody
	defer func() { clear(req.Value) }()
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	sec, err := s.secretByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := validateValue(req.Value); err != nil {
		return err
	}
	fp := s.Minter.Hash(req.Value)
	if err := s.refuseStandIn(r, fp); err != nil {
		return err
	}
	var prov *catalog.Provider
	if sec.Provider != providerCustom {
		if p, ok := catalog.Lookup(sec.Provider); ok {
			prov = &p
		}
	}
	// The shape is re-read from the new value (a provider may have moved to
	// a new key format); existing bindings keep theirs, so stand-ins already
	// handed out do not change.
	shape, err := json.Marshal(catalog.ShapeFor(prov, req.Value))
	if err != nil {
		return fmt.Errorf("encode shape: %w", err)
	}
	version := sec.Version + 1
	sealed, err := s.Vault.Seal(sec.ID, version, vault.NewValue(req.Value))
	clear(req.Value)
	if err != nil {
		return fmt.Errorf("seal secret: %w", err)
	}
	keyID, err := vault.KeyID(sealed)
	if err != nil {
		return fmt.Errorf("read key id of sealed secret: %w", err)
	}
	sec.Version, sec.Sealed, sec.KeyID, sec.Fingerprint, sec.Shape = version, sealed, keyID, fp, shape
	sec.RotatedAt = s.now()
	if err := s.Store.RotateSecret(r.Context(), sec); err != nil {
		switch {
		case errors.Is(err, store.ErrStale):
			return newError(http.StatusConflict, CodeConflict,
				"secret %q was rotated by someone else at the same time; check it and retry", sec.Name)
		case errors.Is(err, store.ErrNotFound):
			return notFound("secret", sec.Name)
		}
		return fmt.Errorf("rotate secret: %w", err)
	}
	out, err := secretOut(sec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	sec, err := s.secretByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.Store.DeleteSecret(r.Context(), sec.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("secret", sec.Name)
		}
		return fmt.Errorf("delete secret: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// secretSandboxes lists where a secret is bound. Stand-ins are left out:
// only the sandbox's own view shows them.
func (s *Server) secretSandboxes(w http.ResponseWriter, r *http.Request) error {
	sec, err := s.secretByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	bs, err := s.Store.ListBindings(r.Context(), "", sec.ID)
	if err != nil {
		return fmt.Errorf("list bindings: %w", err)
	}
	out := client.List[client.Binding]{Items: make([]client.Binding, 0, len(bs))}
	for _, b := range bs {
		out.Items = append(out.Items, client.Binding{
			Sandbox: b.SandboxName, EnvVar: b.EnvVar, Secret: sec.Name, CreatedAt: b.CreatedAt,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func secretOut(sec *store.Secret) (client.Secret, error) {
	shape, err := decodeShape(sec.Shape)
	if err != nil {
		return client.Secret{}, fmt.Errorf("secret id %q: %w", sec.ID, err)
	}
	hosts := sec.Hosts
	if hosts == nil {
		hosts = []client.HostAuth{}
	}
	return client.Secret{
		ID: sec.ID, Name: sec.Name, Provider: sec.Provider, Description: sec.Description,
		Hosts: hosts, Format: shape.FormatName(), Version: sec.Version,
		CreatedAt: sec.CreatedAt, RotatedAt: sec.RotatedAt,
	}, nil
}

func decodeShape(b []byte) (catalog.Shape, error) {
	var sh catalog.Shape
	if err := json.Unmarshal(b, &sh); err != nil {
		return sh, fmt.Errorf("decode stored shape: %w", err)
	}
	return sh, nil
}

func (s *Server) listProviders(w http.ResponseWriter, _ *http.Request) error {
	ps := catalog.Providers()
	out := client.List[client.Provider]{Items: make([]client.Provider, 0, len(ps))}
	for _, p := range ps {
		cp := client.Provider{ID: p.ID, Name: p.Name, EnvVar: p.EnvVar, Hosts: p.Hosts,
			Formats: make([]client.Format, 0, len(p.Formats))}
		if cp.Hosts == nil {
			cp.Hosts = []client.HostAuth{}
		}
		for _, f := range p.Formats {
			cp.Formats = append(cp.Formats, client.Format{Name: f.Name, Prefix: f.Prefix, Regex: f.Regex, Checksum: f.Checksum})
		}
		for _, u := range p.Unsupported {
			cp.Unsupported = append(cp.Unsupported, u.Host+": "+u.Reason)
		}
		out.Items = append(out.Items, cp)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
