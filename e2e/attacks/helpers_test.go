package attacks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/e2e/harness"
)

// attack is one recorded attack: it runs as a subtest, and when that ends
// it is recorded as stopped if every assertion held and nothing leaked.
type attack struct {
	t     *testing.T
	leaks int
}

// run runs f as the attack name (also the subtest's name) and records it.
func run(t *testing.T, name string, f func(t *testing.T, a *attack)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		a := &attack{t: t}
		t.Cleanup(func() {
			harness.RecordAttack(t, name, !t.Failed() && a.leaks == 0, a.leaks)
		})
		f(t, a)
	})
}

// inside counts the real values in what the sandbox saw.
func (a *attack) inside(where, s string) {
	a.t.Helper()
	if n := harness.CountRealValues(s); n > 0 {
		a.t.Logf("%s holds %d real value(s)", where, n)
		a.leaks += n
	}
}

// sandboxSaw is inside for a command's whole output.
func (a *attack) sandboxSaw(r harness.Result) {
	a.t.Helper()
	a.inside("the sandbox's output", r.Output())
}

// upstream counts real values that reached an upstream outside the slot:
// anywhere on a host other than slotHost ("" for none), and on slotHost
// anywhere but one in the Authorization header (the bearer slot).
func (a *attack) upstream(reqs []harness.Received, slotHost string) {
	a.t.Helper()
	for _, r := range reqs {
		var b strings.Builder
		b.WriteString(r.Path + "\n")
		for k, vs := range r.Header {
			for _, v := range vs {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		b.Write(r.Body)
		n := harness.CountRealValues(b.String())
		if r.Host == slotHost && n > 0 && harness.CountRealValues(r.Header.Get("Authorization")) == 1 {
			n--
		}
		if n > 0 {
			a.t.Errorf("upstream request %v holds %d real value(s) outside the auth slot", r, n)
			a.leaks += n
		}
	}
}

// want fails the attack with the message unless ok.
func (a *attack) want(ok bool, format string, args ...any) {
	a.t.Helper()
	if !ok {
		a.t.Errorf(format, args...)
	}
}

// agent is the sandbox most attacks run in: three secrets bound and rules
// that allow only the attack hosts and the rebinding names.
type agent struct {
	name                                string
	apiReal, bReal, rebindReal          string
	apiStandIn, bStandIn, rebindStandIn string
	bin                                 string // attacker inside, once copied
}

// attacker returns the attacker program's path inside the agent, copying
// it in on first use.
func (ag *agent) attacker(t *testing.T) string {
	t.Helper()
	if ag.bin == "" {
		ag.bin = attackerBin(t, ag.name)
	}
	return ag.bin
}

// newAgent creates the agent sandbox with API_KEY (bearer on apiHost),
// B_KEY (bearer on bHost) and REBIND_KEY (bearer on every rebinding name);
// its rules allow apiHost, otherHost, bHost and the rebinding names and
// deny everything else, IPv4 and IPv6.
func newAgent(t *testing.T) *agent {
	t.Helper()
	ag := &agent{
		apiReal:    harness.RealValue("sk-attack-api-", 40),
		bReal:      harness.RealValue("sk-attack-b-", 40),
		rebindReal: harness.RealValue("sk-attack-rebind-", 40),
	}
	secAPI := harness.NewSecret(t, ag.apiReal, "--host", apiHost+"=bearer")
	secB := harness.NewSecret(t, ag.bReal, "--host", bHost+"=bearer")
	rebindArgs := []string{}
	for _, n := range rebindNames {
		rebindArgs = append(rebindArgs, "--host", n+"=bearer")
	}
	secRebind := harness.NewSecret(t, ag.rebindReal, rebindArgs...)
	args := []string{"--secret", "API_KEY=" + secAPI, "--secret", "B_KEY=" + secB, "--secret", "REBIND_KEY=" + secRebind}
	for _, h := range append([]string{apiHost, otherHost, bHost}, rebindNames...) {
		args = append(args, "--allow-out", h)
	}
	args = append(args, "--deny-out", "0.0.0.0/0", "--deny-out", "::/0")
	ag.name = harness.NewSandbox(t, args...)

	r := harness.Exec(t, ag.name, "printenv", "API_KEY", "B_KEY", "REBIND_KEY")
	lines := strings.Fields(r.Stdout)
	if r.Code != 0 || len(lines) != 3 {
		t.Fatalf("printenv in the agent: exit %d, %d values\n%s", r.Code, len(lines), r.Stderr)
	}
	ag.apiStandIn, ag.bStandIn, ag.rebindStandIn = lines[0], lines[1], lines[2]
	for i, real := range []string{ag.apiReal, ag.bReal, ag.rebindReal} {
		if lines[i] == real || harness.CountRealValues(lines[i]) != 0 {
			t.Fatalf("variable %d inside the sandbox holds a real value", i)
		}
	}
	return ag
}

// py runs a python3 script from testdata in the sandbox.
func py(t *testing.T, sandbox, script string, args ...string) harness.Result {
	t.Helper()
	return harness.Exec(t, sandbox, append([]string{"python3", harness.Path(filepath.Join("attacks", "testdata", script))}, args...)...)
}

// probe runs net.py probes and returns their lines by probe.
func probe(t *testing.T, a *attack, sandbox string, probes ...string) map[string]string {
	t.Helper()
	r := py(t, sandbox, "net.py", probes...)
	a.sandboxSaw(r)
	if r.Code != 0 {
		t.Fatalf("net.py: exit %d\n%s", r.Code, r.Output())
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(r.Stdout), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		out[k] = v
	}
	for _, p := range probes {
		if _, ok := out[p]; !ok {
			t.Fatalf("net.py printed no line for %q:\n%s", p, r.Output())
		}
	}
	return out
}

// rawTLS sends each request over TLS (a connection each) to host:port with
// server name sni from inside the sandbox (raw.py, one command for all)
// and returns every byte that came back on each connection.
func rawTLS(t *testing.T, a *attack, sandbox, host, port, sni string, insecure bool, reqs ...string) []string {
	t.Helper()
	mode := "verify"
	if insecure {
		mode = "insecure"
	}
	args := []string{host, port, sni, mode}
	for _, req := range reqs {
		args = append(args, base64.StdEncoding.EncodeToString([]byte(req)))
	}
	r := py(t, sandbox, "raw.py", args...)
	a.sandboxSaw(r)
	out := strings.Split(r.Stdout, "@@raw-end\n")
	if r.Code != 0 || len(out) != len(reqs)+1 {
		t.Fatalf("raw.py: exit %d, %d answers for %d requests\n%s", r.Code, len(out)-1, len(reqs), r.Output())
	}
	return out[:len(reqs)]
}

// Fixed reasons the gateway gives (internal/gateway), as the sandbox and
// the server's log show them.
const (
	reasonRuleDenied   = "destination denied by network rules"
	reasonSNIMismatch  = "TLS server name does not match the destination"
	reasonHostMismatch = "Host header does not match the TLS server name"
	reasonRevoked      = "stand-in is not active for this sandbox and host"
	reasonConnect      = "CONNECT inside an intercepted flow"
	reasonTarget       = "request target must be a path"
	reasonPlainHTTP    = "credential over plain HTTP refused"
	reasonSpecial      = "resolves to a special-purpose address"
	reasonRulesChanged = "destination denied by the new network rules"
	reasonCutRevoked   = "secret revoked during the request"
)

var (
	misdirected = refusal{421, "host_mismatch", reasonHostMismatch}
	revoked     = refusal{403, "secret_revoked", reasonRevoked}
)

// upstreamRefused is the 403 for a request whose name resolved to an
// address the dialer refuses.
func upstreamRefused(reason string) refusal {
	return refusal{403, "blocked", "upstream refused: " + reason}
}

// response is one response the sandbox got, parsed from raw bytes or from
// curl's output.
type response struct {
	status int
	header http.Header
	body   []byte
}

// refusal is the gateway's answer to a refused request.
type refusal struct {
	status       int
	code, reason string
}

func (r refusal) String() string { return r.code + " (" + r.reason + ")" }

// matches says whether resp is this refusal: status, X-Standin-Error and
// the JSON body's code, and the reason in its message.
func (r refusal) matches(resp response) bool {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(resp.body, &e)
	return resp.status == r.status && resp.header.Get("X-Standin-Error") == r.code &&
		e.Error.Code == r.code && strings.Contains(e.Error.Message, r.reason)
}

// parseResponses parses every response in raw (answers to GET or POST).
func parseResponses(t *testing.T, raw string) []response {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	var out []response
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("parse response %d: %v in %q", len(out)+1, err, raw)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read response %d: %v in %q", len(out)+1, err, raw)
		}
		out = append(out, response{status: resp.StatusCode, header: resp.Header, body: body})
	}
}

func statuses(rs []response) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.status)
	}
	return out
}

// curlResult is what `curl -sS -i` did: its exit code, the last response
// (headers and body) and curl's own error text.
type curlResult struct {
	code int
	resp response
	err  string
}

// curlEnd ends each curl's output in the script curls runs.
var curlEnd = regexp.MustCompile(`\n@@curl-end exit=([0-9]+) stderr=([A-Za-z0-9+/=]*)\n`)

// curls runs curl once per element of args (each after -sS -i --max-time),
// in one command in the sandbox. Arguments pass through sh, so $API_KEY
// and friends expand inside the sandbox.
func curls(t *testing.T, a *attack, sandbox string, args ...string) []curlResult {
	t.Helper()
	var script strings.Builder
	for _, arg := range args {
		fmt.Fprintf(&script, "curl -sS -i --max-time 30 %s 2>/tmp/.curl-stderr\n"+
			`printf '\n@@curl-end exit=%%d stderr=%%s\n' $? "$(base64 -w0 /tmp/.curl-stderr)"`+"\n", arg)
	}
	r := harness.Sh(t, sandbox, script.String())
	a.sandboxSaw(r)
	ends := curlEnd.FindAllStringSubmatchIndex(r.Stdout, -1)
	if r.Code != 0 || len(ends) != len(args) {
		t.Fatalf("curl script: exit %d, %d results for %d calls\n%s", r.Code, len(ends), len(args), r.Output())
	}
	var out []curlResult
	start := 0
	for i, e := range ends {
		stdout := r.Stdout[start:e[0]]
		start = e[1]
		code, _ := strconv.Atoi(r.Stdout[e[2]:e[3]])
		stderr, _ := base64.StdEncoding.DecodeString(r.Stdout[e[4]:e[5]])
		a.inside("curl's stderr", string(stderr))
		cr := curlResult{code: code, err: string(stderr)}
		if code == 0 {
			cr.resp = parseCurl(t, args[i], stdout)
		}
		out = append(out, cr)
	}
	return out
}

// curl runs one curl in the sandbox (see curls).
func curl(t *testing.T, a *attack, sandbox string, args string) curlResult {
	t.Helper()
	return curls(t, a, sandbox, args)[0]
}

var statusLine = regexp.MustCompile(`(?m)^HTTP/[0-9.]+ [0-9]{3} `)

// parseCurl parses the last response in what curl -i printed: the headers
// of every response (-L) and the body of the last, decoded (no chunk
// framing), so not raw HTTP.
func parseCurl(t *testing.T, args, out string) response {
	t.Helper()
	if loc := statusLine.FindAllStringIndex(out, -1); len(loc) > 0 {
		out = out[loc[len(loc)-1][0]:]
	}
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(out)))
	line, err := tp.ReadLine()
	var status int
	if err == nil {
		_, err = fmt.Sscanf(line, "HTTP/%s %d", new(string), &status)
	}
	h, herr := tp.ReadMIMEHeader()
	if err != nil || herr != nil {
		t.Fatalf("curl %s: cannot parse %q: %v %v", args, out, err, herr)
	}
	body, _ := io.ReadAll(tp.R)
	return response{status: status, header: http.Header(h), body: body}
}

// Server log.

// logMark is a position in the server's log.
func logMark() int { return len(harness.Srv.Log()) }

// logLines returns the JSON lines of the server's log after mark whose msg
// is msg and whose sandbox is sandbox.
func logLines(mark int, msg, sandbox string) []map[string]any {
	var out []map[string]any
	log := harness.Srv.Log()
	for line := range strings.SplitSeq(log[min(mark, len(log)):], "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
			continue
		}
		if sandbox != "" && m["sandbox"] != sandbox {
			continue
		}
		out = append(out, m)
	}
	return out
}

// flowRefused reports whether the gateway logged, after mark, that it
// refused a flow of sandbox to host with reason. A flow refusal is logged
// before the connection is closed, so it is in the log once the sandbox
// sees the close.
func flowRefused(mark int, sandbox, host, reason string) bool {
	for _, m := range logLines(mark, "flow refused", sandbox) {
		if m["host"] == host && m["reason"] == reason {
			return true
		}
	}
	return false
}

// flowRefusals lists the flow refusals of sandbox logged after mark, for
// failure messages.
func flowRefusals(mark int, sandbox string) string {
	var b strings.Builder
	for _, m := range logLines(mark, "flow refused", sandbox) {
		fmt.Fprintf(&b, "\n  host=%v reason=%v error=%v", m["host"], m["reason"], m["error"])
	}
	return b.String()
}

// apiRequests counts API requests the server logged after mark with the
// given status.
func apiRequests(mark int, status int) int {
	n := 0
	for _, m := range logLines(mark, "api request", "") {
		if s, _ := m["status"].(float64); int(s) == status {
			n++
		}
	}
	return n
}

// dnsSince returns the names the gateway's resolver was asked after mark.
func dnsSince(mark int) []string {
	q := harness.Srv.DNS.Queries()
	return q[min(mark, len(q)):]
}

// trap is a TCP listener on this machine's loopback that no sandbox may
// ever reach: a rebinding name resolves to 127.0.0.1 and the sandbox dials
// the trap's port. Nothing accepts on it; Reached drains its queue without
// waiting, so it counts every connection completed so far.
type trap struct {
	l    *net.TCPListener
	Port string
}

func newTrap(t *testing.T) *trap {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return &trap{l: l, Port: port}
}

// Reached returns how many connections reached the trap since the last
// call.
func (tr *trap) Reached(t *testing.T) int {
	t.Helper()
	rc, err := tr.l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	// The descriptor is non-blocking (Go's poller): accept returns EAGAIN
	// once the queue is empty, never waits.
	err = rc.Control(func(fd uintptr) {
		for {
			c, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			unix.Close(c)
			n++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// attackerBin builds attacker/ (static) and copies it into the sandbox at
// /tmp/attacker.
func attackerBin(t *testing.T, sandbox string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "attacker")
	// Stripped: a smaller file to copy in.
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "./e2e/attacks/attacker")
	build.Dir = harness.RepoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build attacker: %v\n%s", err, out)
	}
	const inside = "/tmp/attacker"
	harness.MustCLI(t, "", "cp", bin, sandbox+":"+inside)
	if r := harness.Exec(t, sandbox, "chmod", "755", inside); r.Code != 0 {
		t.Fatalf("chmod attacker: %s", r.Output())
	}
	return inside
}

// startExec starts `standin exec sandbox -- argv...` without waiting: the
// lifecycle tests act on the server while the command runs. The result
// arrives on the channel when the command ends.
func startExec(t *testing.T, sandbox string, argv ...string) <-chan harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, harness.Srv.Bin, append([]string{"exec", sandbox, "--"}, argv...)...)
	cmd.Env = append(os.Environ(), "STANDIN_DATA_DIR="+harness.Srv.DataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start standin exec: %v", err)
	}
	done := make(chan harness.Result, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer cancel()
		err := cmd.Wait()
		r := harness.Result{Stdout: out.String(), Stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.Code = ee.ExitCode()
		} else if err != nil {
			r.Code, r.Stderr = -1, r.Stderr+err.Error()
		}
		done <- r
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return done
}
