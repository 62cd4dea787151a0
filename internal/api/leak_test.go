package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
)

// leakForms returns the byte strings that would show a value leaked: the
// value, its hex (both cases) and its base64 (std and URL alphabets) at all
// three alignments, trimmed of the edge characters that depend on what
// surrounds the value.
func leakForms(value string) map[string]string {
	forms := map[string]string{
		"raw":       value,
		"hex":       hex.EncodeToString([]byte(value)),
		"HEX":       strings.ToUpper(hex.EncodeToString([]byte(value))),
		"canary":    "LEAKCANARY",
		"json-utf8": strings.Trim(mustJSON(value), `"`),
	}
	for shift := range 3 {
		b := append(bytes.Repeat([]byte{'#'}, shift), value...)
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
			s := enc.EncodeToString(b)
			forms[name+"-base64-"+string(rune('0'+shift))] = s[4 : len(s)-4]
		}
	}
	return forms
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// assertNoLeak fails if haystack holds any form of any value.
func assertNoLeak(tb testing.TB, where string, haystack []byte, values []string) {
	tb.Helper()
	for _, v := range values {
		for form, needle := range leakForms(v) {
			if i := bytes.Index(haystack, []byte(needle)); i >= 0 {
				lo, hi := max(0, i-80), min(len(haystack), i+len(needle)+80)
				tb.Errorf("%s holds the value (%s form) at byte %d: ...%q...", where, form, i, haystack[lo:hi])
			}
		}
	}
}

// TestNoSecretLeaks drives every endpoint, including errors with a value
// in the wrong field, and checks that no response, header, log line or file
// in the data directory holds a value in any common encoding.
func TestNoSecretLeaks(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c := e.client
	values := []string{anthropicCanary, githubCanary, customCanary}
	// A rotated value keeps its shape and its canary.
	rotated := func(v string) string {
		i := strings.Index(v, "LEAKCANARY") + len("LEAKCANARY")
		return v[:i] + "R0t8" + v[i+4:]
	}
	for _, v := range values {
		values = append(values, rotated(v))
	}

	// Every route, successfully.
	mustCreate(t, c, client.SecretCreate{Name: "anthropic", Provider: "anthropic", Value: anthropicCanary, Description: "prod key"})
	mustCreate(t, c, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	mustCreate(t, c, client.SecretCreate{Name: "custom", Provider: "custom", Hosts: customHosts, Value: customCanary})
	for _, n := range []struct{ name, value string }{{"anthropic", anthropicCanary}, {"gh", githubCanary}, {"custom", customCanary}} {
		if _, err := c.RotateSecret(ctx, n.name, rotated(n.value)); err != nil {
			t.Fatalf("RotateSecret(%q): %v", n.name, err)
		}
	}
	sb, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "box",
		Secrets: map[string]string{"ANTHROPIC_API_KEY": "anthropic", "CUSTOM": "custom"},
		Network: client.NetworkRules{AllowOut: []string{"api.anthropic.com"}}})
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	if _, err := c.Attach(ctx, "box", "GH_TOKEN", "gh"); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	sec, _ := e.store.GetSecret(ctx, "gh")
	if err := e.store.AppendActivity(ctx, []store.Activity{{Time: time.Now(), SecretID: sec.ID, SecretName: "gh",
		SandboxID: sb.ID, SandboxName: "box", Method: "GET", Host: "api.github.com", Path: "/user", Status: 200, Outcome: "swapped"}}); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { return c.Health(ctx) },
		func() error { _, err := c.Providers(ctx); return err },
		func() error { _, err := c.ListSecrets(ctx); return err },
		func() error { _, err := c.GetSecret(ctx, "anthropic"); return err },
		func() error { _, err := c.SecretSandboxes(ctx, "gh"); return err },
		func() error { _, err := c.SecretActivity(ctx, "gh", client.ActivityFilter{Limit: 1}); return err },
		func() error { _, err := c.ListSandboxes(ctx); return err },
		func() error { _, err := c.GetSandbox(ctx, "box"); return err },
		func() error {
			_, err := c.SetNetwork(ctx, "box", client.NetworkRules{DenyOut: []string{"0.0.0.0/0"}})
			return err
		},
		func() error { return c.Detach(ctx, "box", "CUSTOM") },
	} {
		if err := call(); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	e.do(t, "GET", "/v1/openapi.json", "")

	// The same routes with values in the wrong places. Each must fail.
	var clientErrs []string
	for _, v := range values {
		q := url.QueryEscape(v)
		p := url.PathEscape(v)
		js := mustJSON(v)
		bad := []struct{ method, path, body string }{
			{"POST", "/v1/secrets", `{"name":` + js + `,"provider":"github","value":` + js + `}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":` + js + `,"value":` + js + `}`},
			{"POST", "/v1/secrets", `{"name":"x1","value":` + js + `,"hosts":[{"host":` + js + `,"auth":{"type":"bearer"}}]}`},
			{"POST", "/v1/secrets", `{"name":"x1","value":` + js + `,"hosts":[{"host":"a.example.com","auth":{"type":"header","header":` + js + `,"template":` + js + `}}]}`},
			{"POST", "/v1/secrets", `{"name":"x1","value":` + js + `,"hosts":[{"host":"a.example.com","auth":{"type":` + js + `}}]}`},
			{"POST", "/v1/secrets", `{"name":"x1","value":` + js + `,"hosts":[{"host":"a.example.com","auth":{"type":"query","param":` + js + `}}]}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":` + js + `,"description":` + js + `}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github",` + js + `:"value"}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":"` + v + `\n"}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":" ` + v + `"}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":"` + strings.Repeat(v, 8192/len(v)+1) + `"}`},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":` + js},
			{"POST", "/v1/secrets", `{"name":"x1","provider":"github","value":` + v + `}`},
			{"POST", "/v1/secrets", `{"name":"gh","provider":"github","value":` + js + `}`},
			{"POST", "/v1/secrets", `[` + js + `]`},
			{"POST", "/v1/secrets", js},
			{"GET", "/v1/secrets/" + p, ""},
			{"DELETE", "/v1/secrets/" + p, ""},
			{"PATCH", "/v1/secrets/" + p, ""},
			{"POST", "/v1/secrets/" + p + "/rotate", `{"value":` + js + `}`},
			{"POST", "/v1/secrets/gh/rotate", `{"value":"` + v + `\r\n"}`},
			{"POST", "/v1/secrets/gh/rotate", `{"value":` + js + `,` + js + `:1}`},
			{"POST", "/v1/secrets/gh/rotate", `{"value":{"x":` + js + `}}`},
			{"GET", "/v1/secrets/" + p + "/sandboxes", ""},
			{"GET", "/v1/secrets/gh/activity?sandbox=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?status=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?since=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?until=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?cursor=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?after=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?limit=" + q, ""},
			{"GET", "/v1/secrets/gh/activity?" + q + "=1", ""},
			{"GET", "/v1/" + p, ""},
			{"GET", "/v1//secrets/" + p, ""},
			{"GET", "/v1/secrets/./" + p, ""},
			{"POST", "/v1/sandboxes", `{"name":` + js + `}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","secrets":{` + js + `:"gh"}}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","secrets":{"X":` + js + `}}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","network":{"allowOut":[` + js + `]}}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","network":{"denyOut":["10.0.0.0/8",` + js + `]}}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","network":{"inspect":` + js + `}}`},
			{"POST", "/v1/sandboxes", `{"name":"x1","secrets":{"X":1,"Y":` + js + `}}`},
			{"GET", "/v1/sandboxes/" + p, ""},
			{"DELETE", "/v1/sandboxes/" + p, ""},
			{"POST", "/v1/sandboxes/box/secrets", `{"envVar":` + js + `,"secret":"gh"}`},
			{"POST", "/v1/sandboxes/box/secrets", `{"envVar":"NEW","secret":` + js + `}`},
			{"POST", "/v1/sandboxes/" + p + "/secrets", `{"envVar":"NEW","secret":"gh"}`},
			{"DELETE", "/v1/sandboxes/box/secrets/" + p, ""},
			{"PUT", "/v1/sandboxes/box/network", `{"allowOut":[` + js + `]}`},
			{"PUT", "/v1/sandboxes/box/network", `{"allowOut":[` + js + `],"denyOut":[` + js + `]}`},
			{"PUT", "/v1/sandboxes/box/network", `{"inspect":` + js + `}`},
			{"PUT", "/v1/sandboxes/" + p + "/network", `{}`},
		}
		for _, b := range bad {
			r := e.do(t, b.method, b.path, b.body)
			if r.status < 400 {
				t.Errorf("%s %s with a value in the wrong place = %d, want an error", b.method, strings.ReplaceAll(b.path, v, "<value>"), r.status)
			}
		}
		// A value as the method.
		if r := e.do(t, v, "/v1/secrets", ""); r.status != 405 {
			t.Errorf("value as method = %d, want 405", r.status)
		}
		// A value as the token, and in an unrelated header.
		for _, hdr := range [][]string{{"Authorization", "Bearer " + v}, {"X-Api-Key", v}, {"Authorization", v}} {
			e.do(t, "GET", "/v1/secrets", "", hdr...)
		}
		// The SDK's errors must not carry values either.
		for _, call := range []func() error{
			func() error { _, err := c.GetSecret(ctx, v); return err },
			func() error { _, err := c.RotateSecret(ctx, "gh", v+"\n"); return err },
			func() error {
				_, err := c.CreateSecret(ctx, client.SecretCreate{Name: v, Provider: "github", Value: v})
				return err
			},
			func() error { _, err := c.Attach(ctx, "box", v, "gh"); return err },
			func() error {
				_, err := c.SetNetwork(ctx, "box", client.NetworkRules{AllowOut: []string{v}})
				return err
			},
			func() error { _, err := client.New(e.http.URL, v).ListSecrets(ctx); return err },
		} {
			err := call()
			if err == nil {
				t.Errorf("SDK call with a value in the wrong place succeeded")
				continue
			}
			clientErrs = append(clientErrs, err.Error())
		}
	}

	// Deletes last, so everything above saw live rows.
	if err := c.DeleteSandbox(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(ctx, "custom"); err != nil {
		t.Fatal(err)
	}

	e.http.Close() // waits for handlers, so every log line is written
	assertNoLeak(t, "responses", []byte(e.responses.String()), values)
	assertNoLeak(t, "logs", []byte(e.logs.String()), values)
	assertNoLeak(t, "SDK errors", []byte(strings.Join(clientErrs, "\n")), values)
	if strings.Contains(e.logs.String(), testToken) {
		t.Errorf("logs hold the admin token")
	}
	if n := strings.Count(e.logs.String(), `"msg":"api request"`); n < 100 {
		t.Errorf("logs have %d request lines, want one per request (hundreds)", n)
	}

	readDir := func(when string) {
		var files int
		err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			assertNoLeak(t, when+" "+filepath.Base(path), b, values)
			return nil
		})
		if err != nil {
			t.Fatalf("walk data dir: %v", err)
		}
		if files < 2 {
			t.Errorf("%s: only %d files in the data dir; want the database and its companions", when, files)
		}
	}
	readDir("open")
	e.store.Close()
	readDir("closed")
}
