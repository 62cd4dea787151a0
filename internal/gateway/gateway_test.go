package gateway

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
)

// requestWithToken builds a request to host carrying tok in slot, the way a
// client library of that provider would.
func requestWithToken(tb testing.TB, host string, slot client.AuthSlot, tok string) *http.Request {
	tb.Helper()
	u := "https://" + host + "/v1/things?keep=1"
	req := newReq(tb, http.MethodGet, u, nil)
	switch slot.Type {
	case client.SlotBearer:
		h := slot.Header
		if h == "" {
			h = "Authorization"
		}
		req.Header.Set(h, "Bearer "+tok)
	case client.SlotHeader:
		req.Header.Set(slot.Header, strings.Replace(slot.Template, "{value}", tok, 1))
	case client.SlotBasic:
		user, pass := slot.Username, tok
		if user == "" {
			user = "some-user"
		}
		if slot.SecretIn == "username" {
			user, pass = tok, ""
		}
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	case client.SlotQuery:
		q := req.URL.Query()
		q.Set(slot.Param, tok)
		req.URL.RawQuery = q.Encode()
	default:
		tb.Fatalf("unknown slot type %q", slot.Type)
	}
	return req
}

// occurrences counts where s appears in what the upstream received.
func occurrences(r seen, s string) (where []string) {
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, s) {
				where = append(where, "header "+k)
			}
			if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "Basic ")); err == nil && strings.Contains(string(b), s) {
				where = append(where, "basic "+k)
			}
		}
	}
	if q, err := url.QueryUnescape(r.RawQuery); err == nil && strings.Contains(q, s) {
		where = append(where, "query")
	}
	if strings.Contains(r.Path, s) {
		where = append(where, "path")
	}
	if strings.Contains(string(r.Body), s) {
		where = append(where, "body")
	}
	return where
}

// TestEveryPresetSwapsInItsSlot: for every provider preset and every auth
// slot of every host, a request through the gateway carrying the stand-in
// arrives upstream with the real value in that slot and nowhere else, and
// the sandbox only ever holds the stand-in.
func TestEveryPresetSwapsInItsSlot(t *testing.T) {
	providers := catalog.Providers()
	var hosts []string
	hostOf := func(pattern string) string {
		if d, ok := strings.CutPrefix(pattern, "*."); ok {
			return "tenant." + d
		}
		return pattern
	}
	for _, p := range providers {
		for _, h := range p.Hosts {
			hosts = append(hosts, hostOf(h.Host))
		}
	}
	rig := newRig(t, hosts...)
	ctx := context.Background()
	secrets := map[string]string{}
	values := map[string]string{}
	for _, p := range providers {
		name := "s-" + p.ID
		values[p.ID] = "REALVALUE" + strings.ReplaceAll(p.ID, "-", "") + "x0123456789abcdef"
		rig.secret(client.SecretCreate{Name: name, Provider: p.ID, Value: values[p.ID]})
		secrets["K_"+strings.ToUpper(strings.ReplaceAll(p.ID, "-", "_"))] = name
	}
	// A sandbox holds at most 64 bindings: split the presets over two.
	first, second := map[string]string{}, map[string]string{}
	for k, v := range secrets {
		if len(first) < 40 {
			first[k] = v
		} else {
			second[k] = v
		}
	}
	env := rig.sandbox(client.SandboxCreate{Name: "one", Secrets: first})
	env2 := rig.sandbox(client.SandboxCreate{Name: "two", Secrets: second})
	c1, c2 := rig.httpClient("one", false), rig.httpClient("two", false)
	for k, v := range env2 {
		env[k] = v
	}

	tested := 0
	for _, p := range providers {
		k := "K_" + strings.ToUpper(strings.ReplaceAll(p.ID, "-", "_"))
		tok, c := env[k], c1
		if _, ok := first[k]; !ok {
			c = c2
		}
		real := values[p.ID]
		for _, h := range p.Hosts {
			host := hostOf(h.Host)
			t.Run(fmt.Sprintf("%s/%s/%s", p.ID, host, slotKey(h.Auth)), func(t *testing.T) {
				before := len(rig.up.requests())
				status, _, body := do(t, c, requestWithToken(t, host, h.Auth, tok))
				if status != http.StatusOK {
					t.Fatalf("status %d: %s", status, body)
				}
				reqs := rig.up.requests()
				if len(reqs) != before+1 {
					t.Fatalf("upstream got %d requests, want 1", len(reqs)-before)
				}
				got := reqs[len(reqs)-1]
				if w := occurrences(got, real); len(w) != 1 {
					t.Errorf("real value arrived in %v, want exactly one slot", w)
				}
				if w := occurrences(got, tok); len(w) != 0 {
					t.Errorf("stand-in went upstream in %v", w)
				}
				hr := &http.Request{Header: got.Header, URL: &url.URL{RawQuery: got.RawQuery}}
				if v, ok, _ := TokenIn(hr, h.Auth); !ok || v != real {
					t.Errorf("slot %s upstream holds %q, want the real value", slotKey(h.Auth), v)
				}
				if got.Host != host {
					t.Errorf("upstream Host = %q, want %q", got.Host, host)
				}
				assertNoValue(t, real, "the sandbox (echoed response)", body)
			})
			tested++
		}
	}
	if tested < 70 {
		t.Errorf("tested %d host slots, want every preset's (> 70)", tested)
	}
	_ = ctx
}

// TestCustomSecretSchemes: a custom secret with a different scheme on each
// of its hosts.
func TestCustomSecretSchemes(t *testing.T) {
	rig := newRig(t, "api.corp.test", "git.corp.test", "q.corp.test", "h.corp.test")
	const real = "corp-REALVALUE-0123456789abcdef"
	rig.secret(client.SecretCreate{Name: "corp", Value: real, Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
		{Host: "git.corp.test", Auth: client.AuthSlot{Type: client.SlotBasic, Username: "x-access-token", SecretIn: "password"}},
		{Host: "q.corp.test", Auth: client.AuthSlot{Type: client.SlotQuery, Param: "key"}},
		{Host: "h.corp.test", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "X-Corp-Auth", Template: "Key={value};v=1"}},
	}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"CORP": "corp"}})
	c := rig.httpClient("sb", true)
	s, err := rig.api.GetSecret(context.Background(), "corp")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range s.Hosts {
		t.Run(h.Host, func(t *testing.T) {
			status, _, body := do(t, c, requestWithToken(t, h.Host, h.Auth, env["CORP"]))
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			reqs := rig.up.requests()
			got := reqs[len(reqs)-1]
			if w := occurrences(got, real); len(w) != 1 {
				t.Errorf("real value arrived in %v, want exactly one slot", w)
			}
			if got.Proto != "HTTP/2.0" {
				t.Errorf("upstream proto %s, want HTTP/2.0", got.Proto)
			}
			assertNoValue(t, real, "the sandbox", body)
		})
	}
}

// TestRevokedStandInRefusedAfterRestart: after a detach, a gateway that
// starts afresh on the same store (a daemon restart: nothing in memory)
// still intercepts the host and refuses the old stand-in, instead of
// splicing it out unswapped, and records the refusal for the secret.
func TestRevokedStandInRefusedAfterRestart(t *testing.T) {
	rig := newRig(t, "api.corp.test")
	const real = "corp-REALVALUE-0123456789abcdef"
	rig.secret(client.SecretCreate{Name: "corp", Value: real, Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotBearer}}}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"CORP": "corp"}})
	if err := rig.api.Detach(context.Background(), "sb", "CORP"); err != nil {
		t.Fatal(err)
	}

	// A new gateway on the same store, with its own explicit proxy.
	_, proxy := serveProxy(t, context.Background(), rig.cfg)
	pu := rig.proxyURL("sb")
	pu.Host = proxy
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: rig.caPool}}}

	before := len(rig.up.requests())
	status, _, body := do(t, c, requestWithToken(t, "api.corp.test", client.AuthSlot{Type: client.SlotBearer}, env["CORP"]))
	if status != http.StatusForbidden || !strings.Contains(string(body), CodeRevoked) {
		t.Fatalf("old stand-in after restart: status %d %s, want 403 %s", status, body, CodeRevoked)
	}
	if n := len(rig.up.requests()) - before; n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
	recs := rig.activity("corp")
	if len(recs) == 0 || recs[0].Outcome != "refused" || recs[0].Sandbox != "sb" {
		t.Errorf("activity = %+v, want a refused record for sandbox sb", recs)
	}
}
