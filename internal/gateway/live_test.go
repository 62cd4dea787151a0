package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
)

// openFlows is what a sandbox holds open to ownHost: a spliced flow (raw
// TCP), an upgraded WebSocket stream and a streaming response, each to an
// upstream that records what reaches it.
type openFlows struct {
	raw      net.Conn
	rawGot   *testutil.SyncBuffer
	ws       net.Conn
	wsBr     *bufio.Reader
	wsGot    *testutil.SyncBuffer
	sse      *http.Response
	sseConn  net.Conn
	sseEnded chan struct{}
}

// openAll opens the three flows from sandbox "sb", whose stand-in is tok,
// and checks that each carries data.
func openAll(t *testing.T, rig *rig, tok string) *openFlows {
	t.Helper()
	f := &openFlows{rawGot: &testutil.SyncBuffer{}, wsGot: &testutil.SyncBuffer{}, sseEnded: make(chan struct{})}
	rawLn := testutil.ServeTCP(t, func(c net.Conn) { io.Copy(io.MultiWriter(c, f.rawGot), c) })
	_, rawPort, _ := net.SplitHostPort(rawLn.Addr().String())
	port := rig.ownUpstream(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/realtime":
			acceptUpgrade(t, w, func(c net.Conn, brw *bufio.ReadWriter) {
				buf := make([]byte, 64)
				for {
					n, err := brw.Read(buf)
					if err != nil {
						return
					}
					f.wsGot.Write(buf[:n])
					// Echoed as one unmasked text frame.
					c.Write(append([]byte{0x81, byte(n)}, buf[:n]...))
				}
			})
		case "/v1/held-stream":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			close(f.sseEnded)
		}
	}))

	f.raw = rig.tunnel(t, "sb", ownHost+":"+rawPort)
	f.ws, f.wsBr = wsClientUpgrade(t, rig, port, tok, nil)
	tc := tls.Client(rig.tunnel(t, "sb", ownHost+":"+port), &tls.Config{
		ServerName: ownHost, RootCAs: rig.caPool, NextProtos: []string{"http/1.1"},
	})
	req := newReq(t, http.MethodGet, "https://"+ownHost+":"+port+"/v1/held-stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	tc.SetDeadline(time.Now().Add(handshakeGuard))
	if err := req.Write(tc); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		t.Fatal(err)
	}
	f.sse, f.sseConn = resp, tc
	first := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: status %d, first event %q, %v", resp.StatusCode, first, err)
	}
	f.echo(t, "before")
	return f
}

// echo sends msg on the spliced flow and the WebSocket and reads each echo.
func (f *openFlows) echo(t *testing.T, msg string) {
	t.Helper()
	f.raw.SetDeadline(time.Now().Add(handshakeGuard))
	io.WriteString(f.raw, "raw-"+msg)
	got := make([]byte, len("raw-"+msg))
	if _, err := io.ReadFull(f.raw, got); err != nil || string(got) != "raw-"+msg {
		t.Fatalf("spliced flow: echo %q, %v; want %q", got, err, "raw-"+msg)
	}
	f.ws.SetDeadline(time.Now().Add(handshakeGuard))
	io.WriteString(f.ws, "ws-"+msg)
	got = make([]byte, 2+len("ws-"+msg))
	if _, err := io.ReadFull(f.wsBr, got); err != nil || string(got[2:]) != "ws-"+msg {
		t.Fatalf("WebSocket: echo %q, %v; want %q", got, err, "ws-"+msg)
	}
}

// assertClosed fails unless r ends (EOF or an error, not a timeout)
// within handshakeGuard.
func assertClosed(t *testing.T, what string, c interface{ SetDeadline(time.Time) error }, r io.Reader) {
	t.Helper()
	c.SetDeadline(time.Now().Add(handshakeGuard))
	_, err := io.Copy(io.Discard, r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s still open %v after the change", what, handshakeGuard)
	}
}

// TestRulesChangeClosesOpenFlows: a rules change reaches what a sandbox
// already has open, not only its next connections. An agent that opened
// a raw flow, a WebSocket and an event stream to a host while it was
// allowed keeps them through a change that still allows the host, and
// loses all three, before the API acknowledges, when the rules deny its
// name, its address, or the sandbox is deleted: nothing it writes after
// that reaches the upstream, and the cut event stream still gets its
// activity record.
func TestRulesChangeClosesOpenFlows(t *testing.T) {
	const real = "sk-live-REALVALUE-0123456789abcdef"
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(*client.Client) error
		reason string // in the cut event stream's record
	}{
		{"deny the name", func(c *client.Client) error {
			_, err := c.SetNetwork(ctx, "sb", client.NetworkRules{DenyOut: []string{ownHost}})
			return err
		}, ReasonRulesChanged},
		{"deny the address", func(c *client.Client) error {
			_, err := c.SetNetwork(ctx, "sb", client.NetworkRules{DenyOut: []string{"127.0.0.0/8"}})
			return err
		}, ReasonRulesChanged},
		{"delete the sandbox", func(c *client.Client) error {
			return c.DeleteSandbox(ctx, "sb")
		}, ReasonCutRevoked}, // its bindings went with it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRig(t)
			tok := rig.ownSandbox("sb", real)
			f := openAll(t, rig, tok)

			// A change that still allows the host closes nothing.
			if _, err := rig.api.SetNetwork(ctx, "sb", client.NetworkRules{
				AllowOut: []string{"127.0.0.0/8"}, DenyOut: []string{"10.0.0.0/8", "evil.test"},
			}); err != nil {
				t.Fatal(err)
			}
			f.echo(t, "still")
			select {
			case <-f.sseEnded:
				t.Fatal("the event stream ended on a change that still allows its host")
			default:
			}

			if err := tt.change(rig.api); err != nil {
				t.Fatal(err)
			}
			// Written once the API has answered: must go nowhere.
			io.WriteString(f.raw, "raw-after")
			io.WriteString(f.ws, "ws-after")
			assertClosed(t, "spliced flow", f.raw, f.raw)
			assertClosed(t, "WebSocket", f.ws, f.wsBr)
			assertClosed(t, "event stream", f.sseConn, f.sse.Body)
			select {
			case <-f.sseEnded:
			case <-time.After(handshakeGuard):
				t.Errorf("the upstream's event stream still open %v after the change", handshakeGuard)
			}
			for what, got := range map[string]string{"raw": f.rawGot.String(), "WebSocket": f.wsGot.String()} {
				if strings.Contains(got, "after") {
					t.Errorf("%s upstream got %q: bytes written after the change reached it", what, got)
				}
			}
			if lines := rig.waitLogLines("flow closed", 1, func(l map[string]any) bool {
				return l["reason"] == ReasonRulesChanged
			}); len(lines) == 0 {
				t.Errorf("no %q log line", "flow closed")
			}

			// The record is written once the handler has given up on
			// the stream, which may be after the sandbox saw it end.
			rig.waitLogLines("proxied request", 1, func(l map[string]any) bool { return l["path"] == "/v1/held-stream" })
			var cut *client.Activity
			for _, a := range rig.activity("own-sb") {
				if strings.HasPrefix(a.Path, "/v1/held-stream") {
					cut = &a
				}
			}
			if cut == nil {
				t.Fatal("no activity record for the cut event stream")
			}
			if cut.Status != http.StatusOK || cut.Reason != tt.reason || cut.Outcome != "error" {
				t.Errorf("cut event stream's record: status %d, outcome %q, reason %q; want 200, error, %q",
					cut.Status, cut.Outcome, cut.Reason, tt.reason)
			}
		})
	}
}

// TestActivityStreamCutBySandbox: a sandbox that hangs up in the middle of
// a streaming response (an agent interrupted mid-answer) still leaves an
// activity record of the request. The proxy aborts such a response with a
// panic for the server to recover, which used to skip the record.
func TestActivityStreamCutBySandbox(t *testing.T) {
	rig := newRig(t)
	tok := rig.ownSandbox("sb", "sk-live-REALVALUE-0123456789abcdef")
	f := openAll(t, rig, tok)
	f.sseConn.Close()
	select {
	case <-f.sseEnded:
	case <-time.After(handshakeGuard):
		t.Fatalf("the upstream's event stream still open %v after the sandbox hung up", handshakeGuard)
	}
	rig.waitLogLines("proxied request", 1, func(l map[string]any) bool { return l["path"] == "/v1/held-stream" })
	var n int
	for _, a := range rig.activity("own-sb") {
		if a.Path == "/v1/held-stream" {
			n++
			// Usually the stream is cut ("response cut short"). But the
			// transport's cancel sends the upstream a TLS close_notify
			// before it closes the socket: an upstream quick to end its
			// stream on that may get its last chunk read, and then the
			// stream ended (200, no reason).
			if a.Status != http.StatusOK || (a.Reason != ReasonCutShort && a.Reason != "") {
				t.Errorf("record: status %d, reason %q; want 200, %q", a.Status, a.Reason, ReasonCutShort)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d activity records of the event stream, want 1", n)
	}
}

// TestRevocationCutsOpenRequests: a WebSocket session or an event stream
// that a secret's value opened does not outlive the secret. A rotation
// cuts nothing; a detach or a secret delete cuts both before the API
// answers (nothing the sandbox writes after that reaches the upstream),
// while a flow that carried no value (the spliced one) goes on.
func TestRevocationCutsOpenRequests(t *testing.T) {
	const real = "sk-live-REALVALUE-0123456789abcdef"
	ctx := context.Background()
	tests := []struct {
		name   string
		revoke func(*client.Client) error
	}{
		{"detach", func(c *client.Client) error { return c.Detach(ctx, "sb", "TOKEN") }},
		{"delete the secret", func(c *client.Client) error { return c.DeleteSecret(ctx, "own-sb") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRig(t)
			tok := rig.ownSandbox("sb", real)
			f := openAll(t, rig, tok)

			if _, err := rig.api.RotateSecret(ctx, "own-sb", "sk-live-ROTATEDVALUE-9999999999999999"); err != nil {
				t.Fatal(err)
			}
			f.echo(t, "rotated")
			select {
			case <-f.sseEnded:
				t.Fatal("the event stream ended on a rotation")
			default:
			}

			if err := tt.revoke(rig.api); err != nil {
				t.Fatal(err)
			}
			io.WriteString(f.ws, "ws-after")
			assertClosed(t, "WebSocket", f.ws, f.wsBr)
			assertClosed(t, "event stream", f.sseConn, f.sse.Body)
			select {
			case <-f.sseEnded:
			case <-time.After(handshakeGuard):
				t.Errorf("the upstream's event stream still open %v after the revocation", handshakeGuard)
			}
			if got := f.wsGot.String(); strings.Contains(got, "after") {
				t.Errorf("WebSocket upstream got %q: bytes written after the revocation reached it", got)
			}
			// The spliced flow carried no value: it goes on.
			f.raw.SetDeadline(time.Now().Add(handshakeGuard))
			io.WriteString(f.raw, "raw-after")
			got := make([]byte, len("raw-after"))
			if _, err := io.ReadFull(f.raw, got); err != nil || string(got) != "raw-after" {
				t.Errorf("spliced flow after the revocation: %q, %v; want its echo", got, err)
			}

			for _, path := range []string{"/v1/realtime", "/v1/held-stream"} {
				rig.waitLogLines("proxied request", 1, func(l map[string]any) bool { return l["path"] == path })
			}
			if tt.name == "delete the secret" {
				return // its activity went with it
			}
			reasons := map[string]string{}
			for _, a := range rig.activity("own-sb") {
				reasons[a.Path] = a.Reason
			}
			for _, path := range []string{"/v1/realtime", "/v1/held-stream"} {
				if reasons[path] != ReasonCutRevoked {
					t.Errorf("%s: record reason %q, want %q", path, reasons[path], ReasonCutRevoked)
				}
			}
		})
	}
}

// failingStore fails every read once fail is set: the store (or its disk)
// gone while flows are open.
type failingStore struct {
	Store
	fail atomic.Bool
}

func (f *failingStore) ListSandboxes(ctx context.Context) ([]store.Sandbox, error) {
	if f.fail.Load() {
		return nil, errors.New("test store: disk gone")
	}
	return f.Store.ListSandboxes(ctx)
}

// TestRejudgeFailsClosed: when the rules cannot be read after a write,
// nothing open is judged allowed: every flow and request carrying a value
// is closed, rather than left to run under rules no one can check.
func TestRejudgeFailsClosed(t *testing.T) {
	rig := newRig(t)
	fs := &failingStore{Store: rig.store}
	rig.gw.ix.store = fs // before any traffic
	tok := rig.ownSandbox("sb", "sk-live-REALVALUE-0123456789abcdef")
	f := openAll(t, rig, tok)
	fs.fail.Store(true)
	rig.gw.Invalidate()
	assertClosed(t, "spliced flow", f.raw, f.raw)
	assertClosed(t, "WebSocket", f.ws, f.wsBr)
	assertClosed(t, "event stream", f.sseConn, f.sse.Body)
	if lines := rig.logLines("judge open connections: closing them all"); len(lines) != 1 {
		t.Errorf("%d %q log lines, want 1", len(lines), "judge open connections: closing them all")
	}
}
