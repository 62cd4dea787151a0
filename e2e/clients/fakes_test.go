package clients

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/e2e/harness"
)

// TestFakes checks the fakes themselves, straight over loopback with no
// sandbox or gateway in between: each accepts its provider's real value
// and refuses a wrong one and none, the way the provider does. Without
// this, a fake that took any key would let TestClients pass with a
// gateway that swapped nothing.
func TestFakes(t *testing.T) {
	const wrong = "wrong-key-0123456789abcdef"
	jsonBody := `{"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "ping"}], "input": "ping"}`
	basic := func(user, pass string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	}
	bearerH := func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} }
	type answer struct {
		status int
		has    string // in the body
	}
	tests := []struct {
		name, method, url, ctype, body string
		auth                           func(key string) http.Header
		key                            string
		ok, bad, none                  answer
		challenge                      bool // a 401 must ask for basic auth
	}{
		{
			name: "openai models", method: "GET", url: "https://api.openai.com/v1/models",
			auth: bearerH, key: openaiKey,
			ok: answer{200, openaiModel}, bad: answer{401, "invalid_api_key"}, none: answer{401, "invalid_api_key"},
		},
		{
			// The real value, but in a slot OpenAI does not read.
			name: "openai key in x-api-key", method: "GET", url: "https://api.openai.com/v1/models",
			auth: func(k string) http.Header { return http.Header{"X-Api-Key": {k}} }, key: openaiKey,
			ok: answer{401, "invalid_api_key"}, bad: answer{401, "invalid_api_key"}, none: answer{401, "invalid_api_key"},
		},
		{
			name: "openai chat", method: "POST", url: "https://api.openai.com/v1/chat/completions",
			ctype: "application/json", body: jsonBody, auth: bearerH, key: openaiKey,
			ok: answer{200, youSaid + prompt}, bad: answer{401, "invalid_api_key"}, none: answer{401, "invalid_api_key"},
		},
		{
			name: "openai responses", method: "POST", url: "https://api.openai.com/v1/responses",
			ctype: "application/json", body: jsonBody, auth: bearerH, key: openaiKey,
			ok: answer{200, youSaid + prompt}, bad: answer{401, "invalid_api_key"}, none: answer{401, "invalid_api_key"},
		},
		{
			name: "anthropic messages", method: "POST", url: "https://api.anthropic.com/v1/messages",
			ctype: "application/json", body: jsonBody, key: anthropicKey,
			auth: func(k string) http.Header {
				return http.Header{"X-Api-Key": {k}, "Anthropic-Version": {"2023-06-01"}}
			},
			ok: answer{200, youSaid + prompt}, bad: answer{401, "authentication_error"}, none: answer{401, "authentication_error"},
		},
		{
			name: "anthropic messages bearer", method: "POST", url: "https://api.anthropic.com/v1/messages",
			ctype: "application/json", body: jsonBody, key: anthropicKey,
			auth: func(k string) http.Header {
				return http.Header{"Authorization": {"Bearer " + k}, "Anthropic-Version": {"2023-06-01"}}
			},
			ok: answer{200, youSaid + prompt}, bad: answer{401, "authentication_error"}, none: answer{401, "authentication_error"},
		},
		{
			name: "github user bearer", method: "GET", url: "https://api.github.com/user",
			auth: bearerH, key: githubKey,
			ok: answer{200, "octocat"}, bad: answer{401, "Bad credentials"}, none: answer{401, "Bad credentials"},
		},
		{
			name: "github repo token", method: "GET", url: "https://api.github.com/repos/octo/demo",
			auth: func(k string) http.Header { return http.Header{"Authorization": {"token " + k}} }, key: githubKey,
			ok: answer{200, "octo/demo"}, bad: answer{401, "Bad credentials"}, none: answer{401, "Bad credentials"},
		},
		{
			// No repository is served outside the git test: past the
			// credential check, the fake answers 404.
			name: "git smart http", method: "GET", url: "https://github.com/octo/demo.git/info/refs?service=git-upload-pack",
			auth: func(k string) http.Header { return basic("x-access-token", k) }, key: githubKey,
			ok: answer{404, "Repository not found."}, bad: answer{401, "Invalid username or token."}, none: answer{401, "Invalid username or token."},
			challenge: true,
		},
		{
			name: "slack auth.test", method: "GET", url: "https://slack.com/api/auth.test",
			auth: bearerH, key: slackKey,
			ok: answer{200, `"ok":true`}, bad: answer{200, `"error":"invalid_auth"`}, none: answer{200, `"error":"not_authed"`},
		},
		{
			name: "slack chat.postMessage", method: "POST", url: "https://slack.com/api/chat.postMessage",
			ctype: "application/json", body: `{"channel": "C0FAKE0001", "text": "hi"}`, auth: bearerH, key: slackKey,
			ok: answer{200, `"text":"hi"`}, bad: answer{200, `"error":"invalid_auth"`}, none: answer{200, `"error":"not_authed"`},
		},
		{
			name: "stripe customers basic", method: "GET", url: "https://api.stripe.com/v1/customers",
			auth: func(k string) http.Header { return basic(k, "") }, key: stripeKey,
			ok: answer{200, "cus_Fake0001"}, bad: answer{401, "Invalid API Key"}, none: answer{401, "Invalid API Key"},
		},
		{
			name: "stripe charge bearer", method: "POST", url: "https://api.stripe.com/v1/charges",
			ctype: "application/x-www-form-urlencoded", body: "amount=2000&currency=usd", auth: bearerH, key: stripeKey,
			ok: answer{200, "succeeded"}, bad: answer{401, "Invalid API Key"}, none: answer{401, "Invalid API Key"},
		},
	}
	hc := fakeClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				what   string
				header http.Header
				want   answer
			}{
				{"the real value", tt.auth(tt.key), tt.ok},
				{"a wrong key", tt.auth(wrong), tt.bad},
				{"no key", http.Header{}, tt.none},
			} {
				req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = c.header
				req.Header.Set("User-Agent", "standin-e2e")
				if tt.ctype != "" {
					req.Header.Set("Content-Type", tt.ctype)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("%s %s with %s: %v", tt.method, tt.url, c.what, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				harness.AssertNoRealValue(t, "the fake's answer", string(body))
				if resp.StatusCode != c.want.status || !strings.Contains(string(body), c.want.has) {
					t.Errorf("%s %s with %s = %d %q, want %d with %q", tt.method, tt.url, c.what, resp.StatusCode, redact(string(body)), c.want.status, c.want.has)
				}
				if tt.challenge && resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s with %s: 401 without WWW-Authenticate, so git would not ask its credential helper", tt.method, tt.url, c.what)
				}
			}
		})
	}
}

// fakeClient is an HTTP client that reaches every fake host at the
// harness's loopback upstream, trusting its CA.
func fakeClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(harness.Srv.Up.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", harness.Srv.Up.CAFile)
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Whatever the URL's host, the connection goes to the loopback
		// upstream; TLS still checks the name.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", harness.Srv.Up.Addr)
		},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
