package attacks

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// valueBack: the secret's host (an upstream the agent cannot control,
// but can ask to echo) sends the real value it received back in every way
// it can; the sandbox sees only the stand-in.
func valueBack(t *testing.T, ag *agent) {
	si := ag.apiStandIn

	tests := []struct {
		name, path string
		// check judges the response the sandbox got.
		check func(a *attack, resp response)
	}{
		{name: "in the body", path: "/echo/body", check: func(a *attack, resp response) {
			a.want(string(resp.body) == "you sent: Bearer "+si+"\n", "body %q, want the stand-in echoed", resp.body)
		}},
		{name: "in a header", path: "/echo/header", check: func(a *attack, resp response) {
			a.want(resp.header.Get("X-Echo") == "Bearer "+si, "X-Echo %q, want the stand-in", resp.header.Get("X-Echo"))
		}},
		{name: "in Location", path: "/echo/location", check: func(a *attack, resp response) {
			want := "https://" + otherHost + "/cb?key=" + url.QueryEscape(si) + "&raw=" + si
			a.want(resp.status == 302 && resp.header.Get("Location") == want, "%d Location %q, want 302 %q", resp.status, resp.header.Get("Location"), want)
		}},
		{name: "base64-encoded", path: "/echo/base64", check: func(a *attack, resp response) {
			lines := strings.Fields(string(resp.body))
			a.want(len(lines) == 9, "%d lines, want 9", len(lines))
			// Decoded, at every alignment: no real value either.
			for _, l := range lines {
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
					if b, err := enc.DecodeString(l); err == nil {
						a.inside("a decoded base64 line", string(b))
					}
				}
			}
		}},
		{name: "split across two flushed chunks", path: "/echo/split", check: func(a *attack, resp response) {
			a.want(string(resp.body) == "key="+si+";\n", "body %q, want the stand-in, whole", resp.body)
		}},
		{name: "one byte per flushed chunk", path: "/echo/bytes", check: func(a *attack, resp response) {
			a.want(string(resp.body) == "key="+si+";\n", "body %q, want the stand-in, whole", resp.body)
		}},
	}
	for _, tt := range tests {
		run(t, "value back/"+tt.name, func(t *testing.T, a *attack) {
			mark := harness.Srv.Up.Mark()
			protos := []string{"--http1.1", "--http2"}
			var args []string
			for _, proto := range protos {
				// -N: no buffering in curl, each chunk printed as it comes.
				args = append(args, proto+" -N https://"+apiHost+tt.path+` -H "Authorization: Bearer $API_KEY"`)
			}
			for i, cr := range curls(t, a, ag.name, args...) {
				if cr.code != 0 {
					t.Fatalf("curl %s: exit %d %s", protos[i], cr.code, cr.err)
				}
				tt.check(a, cr.resp)
			}
			// The upstream had the real value to echo.
			got := harness.Srv.Up.Since(mark, "")
			a.upstream(got, apiHost)
			a.want(len(got) == len(protos), "upstream got %v, want %d requests", got, len(protos))
			for _, r := range got {
				a.want(r.Header.Get("Authorization") == "Bearer "+ag.apiReal, "upstream got %v without the real value", r)
			}
		})
	}
}
