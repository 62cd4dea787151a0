package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/standin/standin/client"
)

// hexValue is shaped like a 40-hex-digit token (lowercase only).
const hexValue = "9f3c1a7e5b2d48c6a0e1f7b3d5c9a2e4b6d8f0a1"

// TestProbeValueErrorPaths sends values of the wrong shape or in broken
// JSON to create and rotate, and checks that no response or log line holds
// the value (in any common encoding) or its fingerprint.
func TestProbeValueErrorPaths(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	mustCreate(t, e.client, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	v := customCanary
	bad := []struct{ name, path, body string }{
		{"raw control char", "/v1/secrets/gh/rotate", `{"value":"` + v + "\x01" + v + `"}`},
		{"invalid escape", "/v1/secrets/gh/rotate", `{"value":"` + v + `\q` + v + `"}`},
		{"NUL escape", "/v1/secrets/gh/rotate", `{"value":"` + v + `\u0000` + v + `"}`},
		{"tab", "/v1/secrets/gh/rotate", `{"value":"` + v + `\t` + v + `"}`},
		{"invalid utf8", "/v1/secrets/gh/rotate", `{"value":"` + v + "\xff\xfe" + v + `"}`},
		{"too long value", "/v1/secrets/gh/rotate", `{"value":"` + strings.Repeat(v, maxValue/len(v)+1) + `"}`},
		{"too large body", "/v1/secrets/gh/rotate", `{"value":"` + strings.Repeat(v, maxBody/len(v)+1) + `"}`},
		{"unterminated", "/v1/secrets/gh/rotate", `{"value":"` + v},
		{"value unquoted", "/v1/secrets/gh/rotate", `{"value":` + v + `}`},
		{"value as number", "/v1/secrets/gh/rotate", `{"value":1234567890123456789012345}`},
		{"value as array", "/v1/secrets/gh/rotate", `{"value":["` + v + `"]}`},
		{"value twice", "/v1/secrets/gh/rotate", `{"value":"` + v + `","value":"` + v + `x"}x`},
		{"name as number", "/v1/secrets", `{"name":1234567890123456789012345,"provider":"github","value":"` + v + `"}`},
		{"hosts as string", "/v1/secrets", `{"name":"x1","hosts":"` + v + `","value":"` + v + `"}`},
		{"auth as string", "/v1/secrets", `{"name":"x1","hosts":[{"host":"a.example.com","auth":"` + v + `"}],"value":"` + v + `"}`},
		{"bad utf8 name", "/v1/secrets", `{"name":"` + v + "\xff" + `","provider":"github","value":"` + v + `"}`},
	}
	// A lowercase hex token passes the name rule and the shape test, so
	// only comparing with the value in the same request can hide it.
	bad = append(bad, struct{ name, path, body string }{"value as provider", "/v1/secrets",
		`{"name":"x1","provider":"` + hexValue + `","value":"` + hexValue + `"}`})
	for _, b := range bad {
		r := e.do(t, "POST", b.path, b.body)
		if r.status < 400 {
			t.Errorf("%s: POST %s = %d, want an error", b.name, b.path, r.status)
		}
	}
	// The same value as another secret: no uniqueness oracle, and the
	// answers carry no fingerprint.
	if _, err := e.client.CreateSecret(ctx, client.SecretCreate{Name: "gh2", Provider: "github", Value: githubCanary}); err != nil {
		t.Errorf("CreateSecret with another secret's value: %v, want success (a refusal would be a guessing oracle)", err)
	}
	mustCreate(t, e.client, client.SecretCreate{Name: "gh3", Provider: "github", Value: "ghp_" + strings.Repeat("Ab1", 12)})
	if _, err := e.client.RotateSecret(ctx, "gh3", githubCanary); err != nil {
		t.Errorf("RotateSecret to another secret's value: %v, want success", err)
	}
	e.http.Close()
	values := []string{v, hexValue, githubCanary}
	assertNoLeak(t, "responses", []byte(e.responses.String()), values)
	assertNoLeak(t, "logs", []byte(e.logs.String()), values)
	fp := e.minter.Hash([]byte(githubCanary))
	for _, s := range []string{hex.EncodeToString(fp), string(mustJSON(fp))[1:20]} {
		if strings.Contains(e.responses.String()+e.logs.String(), s) {
			t.Errorf("responses or logs hold the value's fingerprint %q", s)
		}
	}
}

// TestProbeSecretBytesFormat checks that the request type holding a value
// redacts itself however it is printed, logged or encoded.
func TestProbeSecretBytesFormat(t *testing.T) {
	b := secretBytes(customCanary)
	body := secretCreateBody{Name: "x", Value: b}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%c", "%U"} {
		out = append(out, fmt.Sprintf(verb, b), fmt.Sprintf(verb, body), fmt.Sprintf(verb, &body))
	}
	j, _ := json.Marshal(body)
	out = append(out, string(j))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("probe", "value", b, "body", body, "ptr", &body)
	}
	out = append(out, logs.String())
	all := strings.Join(out, "\n")
	assertNoLeak(t, "formatted secretBytes", []byte(all), []string{customCanary})
	if strings.Contains(all, fmt.Sprint([]byte(customCanary)[:6])[1:10]) {
		t.Errorf("formatted secretBytes holds the value's bytes as numbers")
	}
}
