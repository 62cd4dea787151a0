// Package clients runs real, unmodified clients inside standin sandboxes
// against local fakes of five providers: curl, git, python3's urllib,
// Node's fetch, the official openai and @anthropic-ai/sdk npm packages and
// a Go net/http program, each configured only by the environment, as an
// agent's tools are. Every client must get the right answers while only
// the stand-in is ever inside the sandbox, and the real value must arrive
// upstream in the provider's auth slot and nowhere else.
//
// The fakes (fake_*_test.go) speak enough of each API for its real client
// and refuse anything but the real value (fakes_test.go checks that
// directly). The scripts the clients run are in testdata/; the npm
// packages are pinned in node/package.json and installed by `make test`
// (npm ci). docs/E2E.md describes the suites.
package clients

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/standin/standin/client"
	"github.com/standin/standin/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// provider is one preset with its fakes and what every client must get
// from them.
type provider struct {
	id     string   // the preset
	env    string   // the variable its SDKs read (the preset's envVar)
	real   string   // the real value, made with harness.RealValue
	hosts  []string // of its fakes, which the clients call
	format string   // the preset's key format the real value has, so the stand-in's
	// want maps each call every client makes to the answer it must get.
	want map[string]string
	// credential reads what a request to host carries in the provider's
	// auth slot for that host ("" if nothing).
	credential func(host string, h http.Header) string
	// curl reads each call's answer out of curl's raw output.
	curl map[string]extractor
}

var providers = []provider{
	{
		id: "openai", env: "OPENAI_API_KEY", real: openaiKey, hosts: []string{openaiHost},
		format: "project API key",
		want: map[string]string{
			"models":           openaiModel,
			"chat":             youSaid + prompt,
			"chat-stream":      youSaid + prompt,
			"responses":        youSaid + prompt,
			"responses-stream": youSaid + prompt,
		},
		credential: func(_ string, h http.Header) string { return bearer(h) },
		curl: map[string]extractor{
			"models":           jsonAt("data", 0, "id"),
			"chat":             jsonAt("choices", 0, "message", "content"),
			"chat-stream":      sseText("", "[DONE]", "choices", 0, "delta", "content"),
			"responses":        jsonAt("output", 0, "content", 0, "text"),
			"responses-stream": sseText("response.output_text.delta", "response.completed", "delta"),
		},
	},
	{
		id: "anthropic", env: "ANTHROPIC_API_KEY", real: anthropicKey, hosts: []string{anthropicHost},
		format: "API key",
		want: map[string]string{
			"messages":        youSaid + prompt,
			"messages-stream": youSaid + prompt,
		},
		credential: func(_ string, h http.Header) string { return anthropicToken(h) },
		curl: map[string]extractor{
			"messages":        jsonAt("content", 0, "text"),
			"messages-stream": sseText("content_block_delta", "message_stop", "delta", "text"),
		},
	},
	{
		id: "github", env: "GITHUB_TOKEN", real: githubKey, hosts: []string{githubAPIHost, githubHost},
		format: "classic personal access token",
		want: map[string]string{
			"user": "octocat",
			"repo": githubOwner + "/" + githubRepo,
		},
		credential: func(host string, h http.Header) string {
			if host == githubHost {
				return gitToken(h)
			}
			return githubToken(h)
		},
		curl: map[string]extractor{
			"user": jsonAt("login"),
			"repo": jsonAt("full_name"),
		},
	},
	{
		id: "slack", env: "SLACK_BOT_TOKEN", real: slackKey, hosts: []string{slackHost},
		format: "bot token",
		want: map[string]string{
			"auth.test":        "standin-bot",
			"chat.postMessage": "hello from the sandbox",
		},
		credential: func(_ string, h http.Header) string { return bearer(h) },
		curl: map[string]extractor{
			"auth.test":        slackOK(jsonAt("user")),
			"chat.postMessage": slackOK(jsonAt("message", "text")),
		},
	},
	{
		id: "stripe", env: "STRIPE_SECRET_KEY", real: stripeKey, hosts: []string{stripeHost},
		format: "secret key (test)",
		want: map[string]string{
			"customers": "cus_Fake0001",
			"charge":    "ch_Fake0001 succeeded 2000 usd",
		},
		credential: func(_ string, h http.Header) string { return stripeToken(h) },
		curl: map[string]extractor{
			"customers": jsonAt("data", 0, "id"),
			"charge":    joined(jsonAt("id"), jsonAt("status"), jsonAt("amount"), jsonAt("currency")),
		},
	},
}

// answers are what a client run got: provider -> call -> answer, or the
// single entry "error" for a provider whose calls failed.
type answers map[string]map[string]string

// sandboxClient is a client that makes every call of the providers it is
// given in one run and reports the answers.
type sandboxClient struct {
	name string
	// only lists the providers the client is for (nil: all).
	only []string
	// run makes the calls in sandbox sb; read reads the answers from what
	// it printed.
	run  func(t *testing.T, sb string, ids []string) harness.Result
	read func(stdout string) (answers, error)
}

// The scripts print their answers as JSON.
func jsonAnswers(stdout string) (answers, error) {
	var out answers
	err := json.Unmarshal([]byte(stdout), &out)
	return out, err
}

// goClientBin is the static Go client, built by TestClients.
var goClientBin string

var sandboxClients = []sandboxClient{
	{
		name: "curl",
		run: func(t *testing.T, sb string, ids []string) harness.Result {
			return harness.Exec(t, sb, append([]string{"sh", harness.Path("clients/testdata/curl.sh")}, ids...)...)
		},
		read: curlAnswers,
	},
	{
		name: "python-urllib",
		run: func(t *testing.T, sb string, ids []string) harness.Result {
			return harness.Exec(t, sb, append([]string{"python3", harness.Path("clients/testdata/urllib_client.py")}, ids...)...)
		},
		read: jsonAnswers,
	},
	{
		name: "node-fetch",
		run: func(t *testing.T, sb string, ids []string) harness.Result {
			return harness.Exec(t, sb, append([]string{"node", harness.Path("clients/testdata/fetch_client.mjs")}, ids...)...)
		},
		read: jsonAnswers,
	},
	{
		name: "go-net-http",
		run: func(t *testing.T, sb string, ids []string) harness.Result {
			// Copied in as a user would: the sandbox has no Go toolchain
			// and its /tmp is its own.
			harness.MustCLI(t, "", "cp", goClientBin, sb+":/home/sandbox/goclient")
			return harness.Sh(t, sb, "chmod +x /home/sandbox/goclient && /home/sandbox/goclient "+strings.Join(ids, " "))
		},
		read: jsonAnswers,
	},
	{
		name: "node-sdk",
		only: []string{"openai", "anthropic"},
		run: func(t *testing.T, sb string, ids []string) harness.Result {
			for _, pkg := range []string{"openai", "@anthropic-ai/sdk"} {
				if _, err := os.Stat(harness.Path("clients/node/node_modules/" + pkg + "/package.json")); err != nil {
					t.Fatalf("npm package %s is not installed: run `make e2e-deps` (npm ci --prefix e2e/clients/node)", pkg)
				}
			}
			return harness.Exec(t, sb, append([]string{"node", harness.Path("clients/node/sdk.mjs")}, ids...)...)
		},
		read: jsonAnswers,
	},
}

// TestClients runs every client in one sandbox that holds every provider's
// preset secret, as an agent with several keys has, and may reach only the
// presets' hosts. Each client makes every call of every provider it speaks
// to in one run (a Node process costs seconds of CPU under gVisor), then
// each provider's answers and upstream requests are checked on their own.
func TestClients(t *testing.T) {
	goClientBin = buildGoClient(t)
	sb, standIns := agentSandbox(t, presetsByID(t))
	for _, c := range sandboxClients {
		t.Run(c.name, func(t *testing.T) {
			var ps []provider
			var ids []string
			for _, p := range providers {
				if c.only == nil || slices.Contains(c.only, p.id) {
					ps = append(ps, p)
					ids = append(ids, p.id)
				}
			}
			mark := harness.Srv.Up.Mark()
			r := c.run(t, sb, ids)
			harness.AssertNoRealValue(t, c.name+"'s output", r.Output())
			got, err := c.read(r.Stdout)
			if err != nil {
				t.Fatalf("%s in the sandbox: exit %d, answers unreadable: %v\n%s", c.name, r.Code, err, redact(r.Output()))
			}
			failed := false
			for _, p := range ps {
				t.Run(p.id, func(t *testing.T) {
					if msg, ok := got[p.id]["error"]; ok {
						failed = true
						t.Fatalf("%s's calls to %s failed: %s\nstderr:\n%s", c.name, p.id, redact(msg), redact(r.Stderr))
					}
					if diff := cmp.Diff(p.want, got[p.id]); diff != "" {
						t.Errorf("%s's answers from %s (-want +got):\n%s", c.name, p.id, redact(diff))
					}
					reqs := upstreamSince(t, p, mark, standIns)
					if len(reqs) != len(p.want) {
						t.Errorf("%d requests reached %s's fakes, want %d (one per call): %v", len(reqs), p.id, len(p.want), reqs)
					}
					for _, req := range reqs {
						checkCredential(t, p, req, standIns[p.id])
					}
				})
			}
			if r.Code != 0 && !failed {
				t.Errorf("%s in the sandbox: exit %d with every answer right\n%s", c.name, r.Code, redact(r.Output()))
			}
		})
	}
	t.Run("git", func(t *testing.T) { testGit(t, sb, providerByID("github"), standIns) })
}

func providerByID(id string) provider {
	i := slices.IndexFunc(providers, func(p provider) bool { return p.id == id })
	return providers[i]
}

// buildGoClient builds testdata/goclient statically, so it runs in the
// sandbox whatever libraries are there.
func buildGoClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "goclient")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./e2e/clients/testdata/goclient")
	cmd.Dir = harness.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build goclient: %v\n%s", err, out)
	}
	return bin
}

// presetsByID reads the presets the way a user does, with `standin
// providers --json`.
func presetsByID(t *testing.T) map[string]client.Provider {
	t.Helper()
	var list []client.Provider
	if err := json.Unmarshal([]byte(harness.MustCLI(t, "", "providers", "--json")), &list); err != nil {
		t.Fatalf("standin providers --json: %v", err)
	}
	out := map[string]client.Provider{}
	for _, p := range list {
		out[p.ID] = p
	}
	return out
}

// agentSandbox stores each provider's real value as a secret with its
// preset and starts one sandbox holding them all under the presets' env
// vars, allowed only the presets' hosts. It checks what an agent there
// sees in its environment: a stand-in for each, shaped like the real
// value's format, and nothing of any real value. It returns the sandbox
// and the stand-ins by provider.
func agentSandbox(t *testing.T, presets map[string]client.Provider) (sb string, standIns map[string]string) {
	t.Helper()
	var args, allowed []string
	for _, p := range providers {
		preset, ok := presets[p.id]
		if !ok {
			t.Fatalf("no preset %q in `standin providers`", p.id)
		}
		if preset.EnvVar != p.env {
			t.Fatalf("preset %q names env var %q, the test uses %q", p.id, preset.EnvVar, p.env)
		}
		sec := harness.NewSecret(t, p.real, "--provider", p.id)
		args = append(args, "--secret", p.env+"="+sec)
		var hosts []string
		for _, h := range preset.Hosts {
			hosts = append(hosts, h.Host)
			if !slices.Contains(allowed, h.Host) {
				allowed = append(allowed, h.Host)
				args = append(args, "--allow-out", h.Host)
			}
		}
		for _, h := range p.hosts {
			if !slices.Contains(hosts, h) {
				t.Fatalf("fake host %q is not a host of preset %q (%v)", h, p.id, hosts)
			}
		}
	}
	sb = harness.NewSandbox(t, append(args, "--deny-out", "0.0.0.0/0", "--deny-out", "::/0")...)

	r := harness.Exec(t, sb, "env")
	harness.AssertNoRealValue(t, "env in the sandbox", r.Output())
	if r.Code != 0 {
		t.Fatalf("env in the sandbox: exit %d: %s", r.Code, redact(r.Stderr))
	}
	standIns = map[string]string{}
	for _, p := range providers {
		for _, line := range strings.Split(r.Stdout, "\n") {
			if v, ok := strings.CutPrefix(line, p.env+"="); ok {
				standIns[p.id] = v
			}
		}
		checkStandIn(t, p, presets[p.id], standIns[p.id])
	}
	return sb, standIns
}

// checkStandIn checks that standIn looks like a key of p's format: its
// regex and, where the format has one, its checksum.
func checkStandIn(t *testing.T, p provider, preset client.Provider, standIn string) {
	t.Helper()
	switch {
	case standIn == "":
		t.Fatalf("%s is not set in the sandbox", p.env)
	case same(standIn, p.real):
		t.Fatalf("%s in the sandbox is the real value", p.env)
	}
	i := slices.IndexFunc(preset.Formats, func(f client.Format) bool { return f.Name == p.format })
	if i < 0 {
		t.Fatalf("preset %q has no format %q", p.id, p.format)
	}
	f := preset.Formats[i]
	if !strings.HasPrefix(standIn, f.Prefix) || !regexp.MustCompile(f.Regex).MatchString(standIn) {
		t.Errorf("stand-in %q does not have the shape of a %s %s (prefix %q, %s)", standIn, preset.Name, f.Name, f.Prefix, f.Regex)
	}
	switch f.Checksum {
	case "":
	case "github-crc32-base62":
		if !githubChecksumValid(standIn[len(f.Prefix):]) {
			t.Errorf("stand-in %q has a bad GitHub checksum", standIn)
		}
	default:
		t.Errorf("format %q has checksum %q, which this test does not know", f.Name, f.Checksum)
	}
}

// upstreamSince returns the requests that reached p's fakes since mark.
// None may carry any stand-in anywhere, in any encoding: the gateway swaps
// them, or refuses.
func upstreamSince(t *testing.T, p provider, mark int, standIns map[string]string) []harness.Received {
	t.Helper()
	var reqs []harness.Received
	for _, h := range p.hosts {
		reqs = append(reqs, harness.Srv.Up.Since(mark, h)...)
	}
	for _, r := range reqs {
		for id, standIn := range standIns {
			// In any encoding: a basic credential is base64.
			if slices.ContainsFunc(harness.ValueForms(standIn), r.Contains) {
				t.Errorf("%v carried %s's stand-in upstream", r, id)
			}
		}
	}
	return reqs
}

// checkCredential checks that req carried p's real value in its auth slot.
func checkCredential(t *testing.T, p provider, req harness.Received, standIn string) {
	t.Helper()
	switch got := p.credential(req.Host, req.Header); {
	case same(got, p.real):
	case got == "":
		t.Errorf("%v carried no credential in %s's slot, want the real value", req, p.id)
	case got == standIn:
		t.Errorf("%v carried the stand-in in %s's slot, want the real value", req, p.id)
	case slices.ContainsFunc(providers, func(o provider) bool { return same(got, o.real) }):
		t.Errorf("%v carried another provider's real value in %s's slot", req, p.id)
	default:
		t.Errorf("%v carried an unknown credential (%d bytes) in %s's slot, want the real value", req, len(got), p.id)
	}
}

// redact replaces every real value of the package, in every encoding the
// leak checks know, so a failure message never prints one.
func redact(s string) string {
	for _, p := range providers {
		for _, form := range harness.ValueForms(p.real) {
			s = strings.ReplaceAll(s, form, "[real "+p.id+" value]")
		}
	}
	return s
}

// githubChecksumValid checks a GitHub token's body (after the prefix): its
// last 6 characters are the CRC32 of the 30 before them, in base62
// (github.blog 2021-04-05, "Behind GitHub's new authentication token
// formats").
func githubChecksumValid(body string) bool {
	if len(body) != 36 {
		return false
	}
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	v := crc32.ChecksumIEEE([]byte(body[:30]))
	var sum [6]byte
	for i := 5; i >= 0; i-- {
		sum[i] = digits[v%62]
		v /= 62
	}
	return string(sum[:]) == body[30:]
}
