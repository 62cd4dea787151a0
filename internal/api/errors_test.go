package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/standin/standin/client"
)

// errorCase is one request that must fail with status and code.
type errorCase struct {
	name               string
	method, path, body string
	hdr                []string // header name/value pairs; "" value deletes
	status             int
	code               string
	msg                string // substring of the message, if set
}

// setupErrorEnv makes a secret "gh" bound as GH_TOKEN in sandbox "box" and
// returns the binding's stand-in.
func setupErrorEnv(tb testing.TB, e *testEnv) string {
	tb.Helper()
	ctx := context.Background()
	mustCreate(tb, e.client, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	sb, err := e.client.CreateSandbox(ctx, client.SandboxCreate{Name: "box", Secrets: map[string]string{"GH_TOKEN": "gh"}})
	if err != nil {
		tb.Fatalf("CreateSandbox: %v", err)
	}
	return sb.Bindings[0].StandIn
}

func errorCases(standIn string) []errorCase {
	secret := func(fields string) string { return `{"name":"new",` + fields + `}` }
	custom := `"hosts":[{"host":"api.example.com","auth":{"type":"bearer"}}]`
	return []errorCase{
		// auth
		{name: "no token", method: "GET", path: "/v1/secrets", hdr: []string{"Authorization", ""},
			status: 401, code: CodeUnauthorized, msg: "admin.token"},
		{name: "wrong token", method: "GET", path: "/v1/secrets", hdr: []string{"Authorization", "Bearer nope"}, status: 401, code: CodeUnauthorized},
		{name: "token prefix", method: "GET", path: "/v1/secrets", hdr: []string{"Authorization", "Bearer " + testToken[:10]}, status: 401, code: CodeUnauthorized},
		{name: "basic scheme", method: "GET", path: "/v1/secrets", hdr: []string{"Authorization", "Basic " + testToken}, status: 401, code: CodeUnauthorized},
		{name: "unknown route without token", method: "GET", path: "/v1/nope", hdr: []string{"Authorization", ""}, status: 401, code: CodeUnauthorized},
		{name: "openapi without token", method: "GET", path: "/v1/openapi.json", hdr: []string{"Authorization", ""}, status: 401, code: CodeUnauthorized},

		// routing
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: CodeNotFound, msg: "no such route"},
		{name: "root", method: "GET", path: "/", status: 404, code: CodeNotFound},
		{name: "unclean path", method: "GET", path: "/v1//secrets", status: 404, code: CodeNotFound},
		{name: "dot segment", method: "GET", path: "/v1/secrets/../secrets", status: 404, code: CodeNotFound},
		{name: "odd method", method: "BREW", path: "/v1/secrets", status: 405, code: CodeMethodNotAllowed, msg: "other"},
		{name: "trailing slash", method: "GET", path: "/v1/secrets/", status: 404, code: CodeNotFound},
		{name: "method not allowed", method: "PATCH", path: "/v1/secrets", status: 405, code: CodeMethodNotAllowed, msg: "GET"},
		{name: "delete health", method: "DELETE", path: "/v1/health", status: 405, code: CodeMethodNotAllowed},
		{name: "put secret", method: "PUT", path: "/v1/secrets/gh", status: 405, code: CodeMethodNotAllowed},

		// JSON
		{name: "empty body", method: "POST", path: "/v1/secrets", body: "", status: 400, code: CodeInvalidJSON, msg: "empty"},
		{name: "truncated", method: "POST", path: "/v1/secrets", body: `{"name":`, status: 400, code: CodeInvalidJSON},
		{name: "syntax", method: "POST", path: "/v1/secrets", body: `{"name" "x"}`, status: 400, code: CodeInvalidJSON, msg: "byte offset"},
		{name: "array", method: "POST", path: "/v1/secrets", body: `[]`, status: 400, code: CodeInvalidJSON},
		{name: "wrong type", method: "POST", path: "/v1/secrets", body: `{"name":1,"value":"x"}`, status: 400, code: CodeInvalidJSON, msg: `field "name" must be a string`},
		{name: "nested wrong type", method: "POST", path: "/v1/secrets", body: secret(`"value":"abcdefgh","hosts":[{"host":1}]`), status: 400, code: CodeInvalidJSON, msg: `"hosts.host"`},
		{name: "value number", method: "POST", path: "/v1/secrets", body: `{"name":"x","value":12345678}`, status: 400, code: CodeInvalidJSON, msg: `"value" must be a JSON string`},
		{name: "unknown field", method: "POST", path: "/v1/secrets", body: `{"name":"x","valu":"y"}`, status: 400, code: CodeInvalidJSON, msg: "accepted fields: name, provider, hosts, value, description"},
		{name: "trailing data", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh"`) + `{}`, status: 400, code: CodeInvalidJSON, msg: "exactly one"},
		{name: "too large", method: "POST", path: "/v1/secrets", body: secret(`"value":"` + strings.Repeat("a", 70000) + `"`), status: 413, code: CodeRequestTooLarge},
		{name: "attach unknown field", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"env":"X","secret":"gh"}`, status: 400, code: CodeInvalidJSON},
		{name: "network bad json", method: "PUT", path: "/v1/sandboxes/box/network", body: `{"allowOut":"x"}`, status: 400, code: CodeInvalidJSON, msg: `"allowOut" must be an array`},

		// secret create
		{name: "unknown provider", method: "POST", path: "/v1/secrets", body: secret(`"provider":"nope","value":"abcdefgh"`), status: 400, code: CodeUnknownProvider, msg: "standin providers"},
		{name: "custom without hosts", method: "POST", path: "/v1/secrets", body: secret(`"value":"abcdefgh"`), status: 400, code: CodeInvalidHost},
		{name: "custom explicit without hosts", method: "POST", path: "/v1/secrets", body: secret(`"provider":"custom","value":"abcdefgh"`), status: 400, code: CodeInvalidHost},
		{name: "public suffix wildcard", method: "POST", path: "/v1/secrets", body: secret(`"value":"abcdefgh","hosts":[{"host":"*.com","auth":{"type":"bearer"}}]`), status: 400, code: CodeInvalidHost},
		{name: "provider host override bad", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh","hosts":[{"host":"api.github.com","auth":{"type":"header","header":"X"}}]`), status: 400, code: CodeInvalidHost},
		{name: "bad name", method: "POST", path: "/v1/secrets", body: `{"name":"Bad Name","provider":"github","value":"abcdefgh"}`, status: 400, code: CodeInvalidName, msg: "lowercase"},
		{name: "missing name", method: "POST", path: "/v1/secrets", body: `{"provider":"github","value":"abcdefgh"}`, status: 400, code: CodeInvalidName},
		{name: "long name", method: "POST", path: "/v1/secrets", body: `{"name":"` + strings.Repeat("a", 64) + `","provider":"github","value":"abcdefgh"}`, status: 400, code: CodeInvalidName},
		{name: "value too large", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"` + strings.Repeat("a", 8193) + `"`), status: 413, code: CodeValueTooLarge},
		{name: "empty value", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":""`), status: 400, code: CodeInvalidValue},
		{name: "missing value", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github"`), status: 400, code: CodeInvalidValue},
		{name: "newline value", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh\n"`), status: 400, code: CodeInvalidValue, msg: "paste error"},
		{name: "leading space", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":" abcdefgh"`), status: 400, code: CodeInvalidValue, msg: "whitespace"},
		{name: "trailing nbsp", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh\u00a0"`), status: 400, code: CodeInvalidValue},
		{name: "NUL", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abc\u0000defgh"`), status: 400, code: CodeInvalidValue, msg: "control"},
		{name: "tab", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abc\tdefgh"`), status: 400, code: CodeInvalidValue},
		{name: "invalid utf8", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abc` + "\xff" + `defgh"`), status: 400, code: CodeInvalidValue, msg: "UTF-8"},
		{name: "stand-in as value", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"` + standIn + `"`), status: 400, code: CodeInvalidValue, msg: "stand-in"},
		{name: "description contains value", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh","description":"key abcdefgh"`), status: 400, code: CodeInvalidField},
		{name: "description too long", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh","description":"` + strings.Repeat("d", 1025) + `"`), status: 400, code: CodeInvalidField},
		{name: "description newline", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh","description":"a\nb"`), status: 400, code: CodeInvalidField},
		{name: "name is the value", method: "POST", path: "/v1/secrets", body: `{"name":"abcdefgh1","provider":"github","value":"abcdefgh1"}`, status: 400, code: CodeInvalidName, msg: "contains the secret value"},
		{name: "name looks like a key", method: "POST", path: "/v1/secrets", body: `{"name":"bkua_` + strings.Repeat("a1", 20) + `","provider":"github","value":"abcdefgh"}`, status: 400, code: CodeInvalidName, msg: "looks like a credential"},
		{name: "host field is the value", method: "POST", path: "/v1/secrets", body: secret(`"value":"abcdefgh","hosts":[{"host":"a.example.com","auth":{"type":"query","param":"abcdefgh"}}]`), status: 400, code: CodeInvalidHost, msg: "hosts[0].auth.param contains the secret value"},
		{name: "host field looks like a key", method: "POST", path: "/v1/secrets", body: secret(`"value":"abcdefgh","hosts":[{"host":"a.example.com","auth":{"type":"header","header":"X","template":"k {value} Zq9xY8wV7uT6sR5qP4oN3mL2"}}]`), status: 400, code: CodeInvalidHost, msg: "hosts[0].auth.template looks like a credential"},
		{name: "description looks like a key", method: "POST", path: "/v1/secrets", body: secret(`"provider":"github","value":"abcdefgh","description":"old key ghp_` + strings.Repeat("aB3", 12) + `"`), status: 400, code: CodeInvalidField, msg: "looks like a credential"},
		{name: "duplicate secret", method: "POST", path: "/v1/secrets", body: `{"name":"gh","provider":"github","value":"abcdefgh"}`, status: 409, code: CodeAlreadyExists, msg: "rotate"},
		{name: "custom with good hosts but bad value", method: "POST", path: "/v1/secrets", body: secret(custom + `,"value":"a b\n"`), status: 400, code: CodeInvalidValue},

		// secret reads and rotate
		{name: "get unknown secret", method: "GET", path: "/v1/secrets/nope", status: 404, code: CodeNotFound, msg: "secret \"nope\" not found; list them with `standin secret list`"},
		{name: "get malformed secret name", method: "GET", path: "/v1/secrets/No%20Such", status: 404, code: CodeNotFound, msg: "secret with that name not found"},
		{name: "rotate unknown", method: "POST", path: "/v1/secrets/nope/rotate", body: `{"value":"abcdefgh"}`, status: 404, code: CodeNotFound},
		{name: "rotate bad value", method: "POST", path: "/v1/secrets/gh/rotate", body: `{"value":"abc\r\n"}`, status: 400, code: CodeInvalidValue},
		{name: "rotate empty", method: "POST", path: "/v1/secrets/gh/rotate", body: `{"value":""}`, status: 400, code: CodeInvalidValue},
		{name: "rotate too large", method: "POST", path: "/v1/secrets/gh/rotate", body: `{"value":"` + strings.Repeat("a", 9000) + `"}`, status: 413, code: CodeValueTooLarge},
		{name: "rotate to stand-in", method: "POST", path: "/v1/secrets/gh/rotate", body: `{"value":"` + standIn + `"}`, status: 400, code: CodeInvalidValue, msg: "stand-in"},
		{name: "rotate unknown field", method: "POST", path: "/v1/secrets/gh/rotate", body: `{"value":"abcdefgh","name":"x"}`, status: 400, code: CodeInvalidJSON},
		{name: "delete unknown secret", method: "DELETE", path: "/v1/secrets/nope", status: 404, code: CodeNotFound},
		{name: "sandboxes of unknown secret", method: "GET", path: "/v1/secrets/nope/sandboxes", status: 404, code: CodeNotFound},
		{name: "activity of unknown secret", method: "GET", path: "/v1/secrets/nope/activity", status: 404, code: CodeNotFound},

		// activity queries
		{name: "activity bad status", method: "GET", path: "/v1/secrets/gh/activity?status=6xx", status: 400, code: CodeInvalidQuery},
		{name: "activity status number", method: "GET", path: "/v1/secrets/gh/activity?status=200", status: 400, code: CodeInvalidQuery},
		{name: "activity bad since", method: "GET", path: "/v1/secrets/gh/activity?since=yesterday", status: 400, code: CodeInvalidQuery, msg: "RFC 3339"},
		{name: "activity since after until", method: "GET", path: "/v1/secrets/gh/activity?since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z", status: 400, code: CodeInvalidQuery},
		{name: "activity bad cursor", method: "GET", path: "/v1/secrets/gh/activity?cursor=abc", status: 400, code: CodeInvalidQuery, msg: "nextCursor"},
		{name: "activity cursor and after", method: "GET", path: "/v1/secrets/gh/activity?cursor=" + encodeCursor(5) + "&after=3", status: 400, code: CodeInvalidQuery},
		{name: "activity bad after", method: "GET", path: "/v1/secrets/gh/activity?after=x", status: 400, code: CodeInvalidQuery},
		{name: "activity limit 0", method: "GET", path: "/v1/secrets/gh/activity?limit=0", status: 400, code: CodeInvalidQuery},
		{name: "activity limit large", method: "GET", path: "/v1/secrets/gh/activity?limit=5000", status: 400, code: CodeInvalidQuery},
		{name: "activity unknown param", method: "GET", path: "/v1/secrets/gh/activity?stauts=2xx", status: 400, code: CodeInvalidQuery},
		{name: "activity repeated param", method: "GET", path: "/v1/secrets/gh/activity?status=2xx&status=4xx", status: 400, code: CodeInvalidQuery},
		{name: "activity bad sandbox", method: "GET", path: "/v1/secrets/gh/activity?sandbox=Bad%20Name", status: 400, code: CodeInvalidQuery},

		// sandboxes
		{name: "sandbox bad name", method: "POST", path: "/v1/sandboxes", body: `{"name":"-x"}`, status: 400, code: CodeInvalidName},
		{name: "sandbox duplicate", method: "POST", path: "/v1/sandboxes", body: `{"name":"box"}`, status: 409, code: CodeAlreadyExists},
		{name: "sandbox unknown secret", method: "POST", path: "/v1/sandboxes", body: `{"name":"new","secrets":{"X":"nope"}}`, status: 404, code: CodeNotFound},
		{name: "sandbox reserved env", method: "POST", path: "/v1/sandboxes", body: `{"name":"new","secrets":{"PATH":"gh"}}`, status: 400, code: CodeInvalidEnvVar, msg: "reserved"},
		{name: "sandbox bad env", method: "POST", path: "/v1/sandboxes", body: `{"name":"new","secrets":{"1X":"gh"}}`, status: 400, code: CodeInvalidEnvVar},
		{name: "sandbox bad rule", method: "POST", path: "/v1/sandboxes", body: `{"name":"new","network":{"allowOut":["ok.example.com","not a rule!"]}}`, status: 400, code: CodeInvalidRule, msg: "allowOut[1]"},
		{name: "sandbox bad inspect", method: "POST", path: "/v1/sandboxes", body: `{"name":"new","network":{"inspect":"some"}}`, status: 400, code: CodeInvalidRule, msg: "inspect"},
		{name: "get unknown sandbox", method: "GET", path: "/v1/sandboxes/nope", status: 404, code: CodeNotFound, msg: "sandbox \"nope\" not found"},
		{name: "delete unknown sandbox", method: "DELETE", path: "/v1/sandboxes/nope", status: 404, code: CodeNotFound},

		// bindings
		{name: "attach to unknown sandbox", method: "POST", path: "/v1/sandboxes/nope/secrets", body: `{"envVar":"X","secret":"gh"}`, status: 404, code: CodeNotFound},
		{name: "attach unknown secret", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"X","secret":"nope"}`, status: 404, code: CodeNotFound},
		{name: "attach taken env", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"GH_TOKEN","secret":"gh"}`, status: 409, code: CodeAlreadyExists, msg: "detach"},
		{name: "attach empty env", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach bad env", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"A-B","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach long env", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"` + strings.Repeat("A", 129) + `","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach key as env", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"ghp_` + strings.Repeat("aB3", 12) + `","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar, msg: "looks like a credential"},
		{name: "attach HOME", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"HOME","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach https_proxy", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"https_proxy","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach SSL_CERT_FILE", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"SSL_CERT_FILE","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach STANDIN_", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"STANDIN_CA","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "attach LD_PRELOAD", method: "POST", path: "/v1/sandboxes/box/secrets", body: `{"envVar":"LD_PRELOAD","secret":"gh"}`, status: 400, code: CodeInvalidEnvVar},
		{name: "detach unknown env", method: "DELETE", path: "/v1/sandboxes/box/secrets/NOPE", status: 404, code: CodeNotFound, msg: "NOPE"},
		{name: "detach malformed env", method: "DELETE", path: "/v1/sandboxes/box/secrets/a-b", status: 404, code: CodeNotFound},
		{name: "detach from unknown sandbox", method: "DELETE", path: "/v1/sandboxes/nope/secrets/GH_TOKEN", status: 404, code: CodeNotFound},

		// network
		{name: "network bad rule", method: "PUT", path: "/v1/sandboxes/box/network", body: `{"denyOut":["10.0.0.0/99"]}`, status: 400, code: CodeInvalidRule, msg: "denyOut[0]"},
		{name: "network rule looks like a key", method: "PUT", path: "/v1/sandboxes/box/network", body: `{"allowOut":["zq9xy8wv7ut6sr5qp4on3ml2.example.com","Zq9xY8wV7uT6sR5qP4oN3mL2.example.com"]}`, status: 400, code: CodeInvalidRule, msg: "allowOut[1]"},
		{name: "network bad inspect", method: "PUT", path: "/v1/sandboxes/box/network", body: `{"inspect":"none"}`, status: 400, code: CodeInvalidRule},
		{name: "network unknown sandbox", method: "PUT", path: "/v1/sandboxes/nope/network", body: `{}`, status: 404, code: CodeNotFound},
		{name: "network too many rules", method: "PUT", path: "/v1/sandboxes/box/network", body: `{"allowOut":[` + strings.TrimSuffix(strings.Repeat(`"a.example.com",`, 257), ",") + `]}`, status: 400, code: CodeInvalidRule},
	}
}

func TestErrors(t *testing.T) {
	e := newTestEnv(t)
	standIn := setupErrorEnv(t, e)
	for _, tc := range errorCases(standIn) {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			var eb client.ErrorBody
			if err := json.Unmarshal(r.body, &eb); err != nil {
				t.Fatalf("%s %s: body %q is not an error body: %v", tc.method, tc.path, r.body, err)
			}
			if r.status != tc.status || eb.Error.Code != tc.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.code)
			}
			if eb.Error.Message == "" || !strings.Contains(eb.Error.Message, tc.msg) {
				t.Errorf("%s %s message = %q, want it to contain %q", tc.method, tc.path, eb.Error.Message, tc.msg)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s Content-Type = %q, want application/json", tc.method, tc.path, ct)
			}
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("%s %s: 405 without Allow header", tc.method, tc.path)
			}
			if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", tc.method, tc.path)
			}
		})
	}
}

func TestInternalErrorHidesDetail(t *testing.T) {
	e := newTestEnv(t)
	mustCreate(t, e.client, client.SecretCreate{Name: "gh", Provider: "github", Value: githubCanary})
	// A closed store makes every call fail with a driver error.
	e.store.Close()
	r := e.do(t, "GET", "/v1/secrets", "")
	var eb client.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || r.status != 500 || eb.Error.Code != CodeInternal {
		t.Fatalf("GET /v1/secrets on a closed store = %d %s, want 500 internal", r.status, r.body)
	}
	id := r.header.Get("X-Request-Id")
	if id == "" || !strings.Contains(eb.Error.Message, id) {
		t.Errorf("internal error message %q does not name request id %q", eb.Error.Message, id)
	}
	if strings.Contains(eb.Error.Message, "sql") || strings.Contains(eb.Error.Message, "closed") {
		t.Errorf("internal error message %q leaks the error detail", eb.Error.Message)
	}
	e.http.Close()
	if !strings.Contains(e.logs.String(), `"msg":"api internal error"`) || !strings.Contains(e.logs.String(), id) {
		t.Errorf("log lacks the internal error line with request id %s:\n%s", id, e.logs.String())
	}
}
