package attacks

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
	"github.com/standin/standin/e2e/harness"
)

// valueBack: the secret's host (an upstream the agent cannot control,
// but can ask to echo) sends the real value it received back in every way
// it can, in the forms server code writes text in, and split across the
// fragments of a WebSocket message; the sandbox sees only the stand-in.
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
			for _, resp := range fetchEcho(t, a, ag.name, tt.path, "API_KEY", ag.apiReal) {
				tt.check(a, resp)
			}
		})
	}

	// Most keys hold no byte that percent-encoding, JSON or HTML change, so
	// this attack has a secret of its own whose value does, attached to
	// the agent for the attack only.
	run(t, "value back/encoded the way server code writes it", func(t *testing.T, a *attack) {
		// A value with bytes that each form changes.
		real := harness.RealValue(`sk-forms+/=&<>"'`, 40)
		for _, f := range serverForms {
			if f.encode(real) == real {
				t.Fatalf("the value is the same %s: the attack would test nothing", f.name)
			}
		}
		sec := harness.NewSecret(t, real, "--host", apiHost+"=bearer")
		// A stand-in with a "/" (about half of them, minted from the
		// value's alphabet) has forms that differ from it too, so the
		// lines show each form of the value replaced by the same form of
		// the stand-in, not by the stand-in as it is.
		si := attach(t, ag.name, "FORMS_KEY", sec)
		for i := 0; !strings.Contains(si, "/"); i++ {
			if i == 30 {
				t.Fatalf("30 stand-ins minted for %s, none with a \"/\"", sec)
			}
			harness.MustCLI(t, "", "sandbox", "detach", ag.name, "FORMS_KEY")
			si = attach(t, ag.name, "FORMS_KEY", sec)
		}
		var want []string
		for _, f := range serverForms {
			want = append(want, f.encode(si))
		}
		for _, resp := range fetchEcho(t, a, ag.name, "/echo/forms", "FORMS_KEY", real) {
			lines := strings.Split(strings.TrimSuffix(string(resp.body), "\n"), "\n")
			if diff := cmp.Diff(want, lines); diff != "" {
				a.want(false, "/echo/forms lines differ from the stand-in's forms (-want +got):\n%s", diff)
			}
			// Read back as a client would: no real value either.
			for i, l := range lines[:min(len(lines), len(serverForms))] {
				f := serverForms[i]
				d, err := f.decode(l)
				a.want(err == nil, "decode %s line %q: %v", f.name, l, err)
				a.inside("the decoded "+f.name+" line", d)
			}
		}
	})

	run(t, "value back/in WebSocket fragments", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		r := py(t, ag.name, "ws.py", apiHost, "/echo/ws", "API_KEY")
		a.sandboxSaw(r)
		if r.Code != 0 {
			t.Fatalf("ws.py: exit %d\n%s", r.Code, r.Output())
		}
		// The fragments are still two (frame headers pass through), and
		// the joined message holds the stand-in, whole.
		got := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
		for i, l := range got {
			if msg, ok := strings.CutPrefix(l, "message 1 2 "); ok {
				var text string
				err := json.Unmarshal([]byte(msg), &text)
				a.want(err == nil, "ws.py message %q: %v", msg, err)
				a.inside("the joined message", text)
				got[i] = "message 1 2 " + text
			}
		}
		want := []string{"handshake 101 accept=ok", "message 1 2 key=" + si + ";", "close 1000"}
		if diff := cmp.Diff(want, got); diff != "" {
			a.want(false, "ws.py printed (-want +got):\n%s", diff)
		}
		up := harness.Srv.Up.Since(mark, "")
		a.upstream(up, apiHost)
		a.want(len(up) == 1 && up[0].Header.Get("Authorization") == "Bearer "+ag.apiReal, "upstream got %v, want one upgrade with the real value", up)
	})
}

// fetchEcho gets path on apiHost with curl inside the sandbox, over HTTP/1.1
// and over HTTP/2, the stand-in in $env as the bearer token, and returns the
// two responses. The upstream must have got real, the value to echo, in the
// slot of both requests and nowhere else.
func fetchEcho(t *testing.T, a *attack, sandbox, path, env, real string) []response {
	t.Helper()
	mark := harness.Srv.Up.Mark()
	protos := []string{"--http1.1", "--http2"}
	var args []string
	for _, proto := range protos {
		// -N: no buffering in curl, each chunk printed as it comes.
		args = append(args, proto+" -N https://"+apiHost+path+` -H "Authorization: Bearer $`+env+`"`)
	}
	var out []response
	for i, cr := range curls(t, a, sandbox, args...) {
		if cr.code != 0 {
			t.Fatalf("curl %s: exit %d %s", protos[i], cr.code, cr.err)
		}
		out = append(out, cr.resp)
	}
	got := harness.Srv.Up.Since(mark, "")
	a.upstream(got, apiHost)
	a.want(len(got) == len(protos), "upstream got %v, want %d requests", got, len(protos))
	for _, r := range got {
		a.want(r.Header.Get("Authorization") == "Bearer "+real, "upstream got %v without the real value", r)
	}
	return out
}

// attach binds secret to the sandbox as env until the test ends and
// returns its stand-in.
func attach(t *testing.T, sandbox, env, secret string) string {
	t.Helper()
	var b client.Binding
	out := harness.MustCLI(t, "", "sandbox", "attach", sandbox, env+"="+secret, "--json")
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.StandIn == "" {
		t.Fatalf("sandbox attach --json: %v in %q", err, out)
	}
	t.Cleanup(func() { harness.CLI(t, "", "sandbox", "detach", sandbox, env) })
	return b.StandIn
}
