package gateway

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/standin/standin/client"
)

// Streaming tests prove that nothing is buffered with a handshake, never
// with timing: the upstream sends one piece, then waits until the test has
// received that piece through the gateway before it sends the next. A
// gateway that held a piece back would never see the acknowledgement; the
// upstream gives up after handshakeGuard and the test fails.
//
// The upstreams here are the test's own (ownUpstream), not rig.up, whose
// handler reads the whole request body before answering.

// handshakeGuard bounds every wait in a handshake, so a gateway that buffers
// fails the test instead of hanging it. It is not a performance bound.
const handshakeGuard = 10 * time.Second

// ownHost is the name of every ownUpstream. It is in the rig's upstream
// certificate and not routed by an override, so the fake resolver sends it
// to 127.0.0.1 and the port comes from the request: each test's upstream is
// https://upstream.test:<its port>.
const ownHost = "upstream.test"

// loopbackRules let a sandbox reach a name that resolves to loopback (a
// special-purpose address needs an allowOut CIDR; the dial guard is
// 127.0.0.0/8 anyway).
var loopbackRules = client.NetworkRules{AllowOut: []string{"127.0.0.0/8"}}

// ownUpstream starts a TLS server with the rig's upstream certificate that
// serves h as it is (HTTP/2 too if h2) and returns its port. ownHost
// resolves to it.
func (r *rig) ownUpstream(h2 bool, h http.Handler) string {
	r.t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.up.cert}}
	srv.StartTLS()
	r.t.Cleanup(srv.Close)
	r.resolveLoopback(ownHost)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// resolveLoopback makes the fake resolver answer 127.0.0.1 for name.
func (r *rig) resolveLoopback(name string) {
	r.resolver.mu.Lock()
	_, ok := r.resolver.addrs[name]
	r.resolver.mu.Unlock()
	if !ok {
		r.resolver.set(name, "127.0.0.1")
	}
}

// ownSandbox creates a bearer secret for ownHost holding real and a
// sandbox using it, and returns the sandbox's stand-in.
func (r *rig) ownSandbox(sandbox, real string) string {
	r.t.Helper()
	name := "own-" + sandbox
	r.secret(client.SecretCreate{Name: name, Value: real, Hosts: []client.HostAuth{
		{Host: ownHost, Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	env := r.sandbox(client.SandboxCreate{Name: sandbox, Secrets: map[string]string{"TOKEN": name}, Network: loopbackRules})
	if env["TOKEN"] == "" {
		r.t.Fatal("sandbox has no stand-in")
	}
	return env["TOKEN"]
}

// hideReal replaces real in s, for failure messages.
func hideReal(s, real string) string { return strings.ReplaceAll(s, real, "<real value>") }

// acked waits for the client's acknowledgement of a piece; false (and the
// test failed) if it never comes, which means the gateway held it back.
func acked(tb testing.TB, ack <-chan struct{}, what string) bool {
	select {
	case <-ack:
		return true
	case <-time.After(handshakeGuard):
		tb.Errorf("%s never reached the other side: the gateway buffered it", what)
		return false
	}
}

// checkBearer answers 401 and returns false unless the request carries the
// real value as its bearer token.
func checkBearer(w http.ResponseWriter, r *http.Request, real string) bool {
	if r.Header.Get("Authorization") != "Bearer "+real {
		http.Error(w, "credential not swapped", http.StatusUnauthorized)
		return false
	}
	return true
}

// streamPieces has the upstream send pieces one at a time, each only after
// the client got the previous one, and checks that the client receives
// each piece, as soon as it is sent, with the real value scrubbed.
func streamPieces(t *testing.T, rig *rig, sandbox, tok, real, ctype string, upH2, clientH2 bool, pieces []string) *http.Response {
	t.Helper()
	ack := make(chan struct{}, len(pieces))
	upProto := make(chan string, 1)
	port := rig.ownUpstream(upH2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upProto <- r.Proto
		if !checkBearer(w, r, real) {
			return
		}
		w.Header().Set("Content-Type", ctype)
		rc := http.NewResponseController(w)
		for i, p := range pieces {
			io.WriteString(w, p)
			if err := rc.Flush(); err != nil {
				t.Errorf("upstream flush: %v", err)
				return
			}
			if !acked(t, ack, fmt.Sprintf("piece %d", i+1)) {
				return
			}
		}
	}))
	c := rig.httpClient(sandbox, clientH2)
	req := newReq(t, http.MethodGet, "https://"+ownHost+":"+port+"/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if wantMajor := map[bool]int{false: 1, true: 2}[clientH2]; resp.ProtoMajor != wantMajor {
		t.Errorf("sandbox leg proto %s, want HTTP/%d", resp.Proto, wantMajor)
	}
	if got, want := <-upProto, map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[upH2]; got != want {
		t.Errorf("upstream leg proto %s, want %s", got, want)
	}
	if got := resp.Header.Get("Content-Type"); got != ctype {
		t.Errorf("Content-Type = %q, want %q", got, ctype)
	}
	for i, p := range pieces {
		want := strings.ReplaceAll(p, real, tok)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(resp.Body, got); err != nil {
			t.Fatalf("read piece %d: %v", i+1, err)
		}
		if string(got) != want {
			t.Fatalf("piece %d = %q, want %q", i+1, hideReal(string(got), real), want)
		}
		ack <- struct{}{}
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 0 {
		t.Errorf("after the last piece: %q, %v; want EOF", rest, err)
	}
	return resp
}

// TestStreamEvents: server-sent events and other streamed content types
// reach the sandbox event by event, as the upstream flushes them, with the
// credential swapped on the way out and the real value scrubbed from an
// event that echoes it; over HTTP/1.1 and HTTP/2 to the gateway.
func TestStreamEvents(t *testing.T) {
	const real = "sk-stream-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	sse := []string{
		"event: message\ndata: {\"n\":1}\n\n",
		"data: {\"n\":2,\"echo\":\"Bearer " + real + "\"}\n\n",
		"data: [DONE]\n\n",
	}
	ndjson := []string{
		"{\"n\":1}\n",
		"{\"n\":2,\"echo\":\"" + real + "\"}\n",
		"{\"n\":3}\n",
	}
	for _, tc := range []struct {
		ctype  string
		pieces []string
	}{
		{"text/event-stream", sse},
		{"text/event-stream; charset=utf-8", sse},
		{"application/x-ndjson", ndjson},
	} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/h2=%v", tc.ctype, h2), func(t *testing.T) {
				streamPieces(t, rig, "sb", tok, real, tc.ctype, true, h2, tc.pieces)
			})
		}
	}
	assertNoValue(t, real, "the log", []byte(rig.logs.String()))
}

// TestStreamChunkedResponse: a chunked HTTP/1.1 response with no
// Content-Length streams chunk by chunk to the sandbox.
func TestStreamChunkedResponse(t *testing.T) {
	const real = "sk-chunk-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	pieces := []string{"first part;", "second part holding " + real + ";", "last part"}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			resp := streamPieces(t, rig, "sb", tok, real, "application/octet-stream", false, h2, pieces)
			if !h2 && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
				t.Errorf("sandbox got Transfer-Encoding %q, want chunked", resp.TransferEncoding)
			}
		})
	}
}

// TestStreamRequestBody: a request body goes upstream as the sandbox writes
// it: the upstream reads part 1 before the sandbox has written part 2.
func TestStreamRequestBody(t *testing.T) {
	const real = "sk-upload-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	part1, part2 := []byte("part one of the body;"), []byte("part two of the body")
	got1 := make(chan struct{}, 1)
	var upBody atomic.Value
	port := rig.ownUpstream(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkBearer(w, r, real) {
			return
		}
		first := make([]byte, len(part1))
		if _, err := io.ReadFull(r.Body, first); err != nil {
			t.Errorf("upstream: read part 1: %v", err)
			return
		}
		got1 <- struct{}{}
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: read part 2: %v", err)
			return
		}
		upBody.Store(string(first) + string(rest))
		fmt.Fprintf(w, "%s got %d bytes", r.Proto, len(first)+len(rest))
	}))
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := rig.httpClient("sb", h2)
			pr, pw := io.Pipe()
			go func() {
				pw.Write(part1)
				// Part 2 only once the upstream holds part 1: a
				// gateway that waited for the whole body never
				// gets it.
				if !acked(t, got1, "part 1 of the request body") {
					pw.CloseWithError(fmt.Errorf("part 1 not delivered"))
					return
				}
				pw.Write(part2)
				pw.Close()
			}()
			req := newReq(t, http.MethodPost, "https://"+ownHost+":"+port+"/v1/upload", pr)
			req.Header.Set("Authorization", "Bearer "+tok)
			status, _, body := do(t, c, req)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			want := fmt.Sprintf("HTTP/2.0 got %d bytes", len(part1)+len(part2))
			if string(body) != want {
				t.Errorf("response %q, want %q", body, want)
			}
			if got, want := upBody.Load(), string(part1)+string(part2); got != want {
				t.Errorf("upstream body %q, want %q", got, want)
			}
		})
	}
}

// TestStreamTrailers: gRPC style, HTTP/2 on both legs, the upstream's
// trailers (announced in a Trailer header, sent after the body) reach the
// sandbox, scrubbed like headers are.
func TestStreamTrailers(t *testing.T) {
	const real = "sk-trailer-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	port := rig.ownUpstream(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		if !checkBearer(w, r, real) {
			return
		}
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("\x00\x00\x00\x00\x05hello"))
		http.NewResponseController(w).Flush()
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "token "+real+" accepted")
	}))
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := rig.httpClient("sb", h2)
			req := newReq(t, http.MethodPost, "https://"+ownHost+":"+port+"/pkg.Service/Method", strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("TE", "trailers")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if h2 && resp.ProtoMajor != 2 {
				t.Errorf("sandbox leg proto %s, want HTTP/2.0", resp.Proto)
			}
			if string(body) != "\x00\x00\x00\x00\x05hello" {
				t.Errorf("body %q", body)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
				t.Errorf("trailer Grpc-Status = %q, want %q (trailers %v)", got, "0", resp.Trailer)
			}
			if got, want := resp.Trailer.Get("Grpc-Message"), "token "+tok+" accepted"; got != want {
				t.Errorf("trailer Grpc-Message = %q, want %q", hideReal(got, real), want)
			}
		})
	}
	assertNoValue(t, real, "the log", []byte(rig.logs.String()))
}

// TestStreamBodyAfterResponse: the upstream answers before it reads the
// request body (gRPC bidirectional streaming, or a server that sends its
// head early), and the sandbox sends the body only once the answer has
// begun. Over HTTP/1 the Go server consumes and discards an unread request
// body when the response head is written; the gateway must not let it, or
// the body never reaches the upstream: here the gateway would wait for a
// body the client only sends after the head. On a loaded machine the same
// discard raced the upstream transport reading the body and cut responses
// short (TestStreamTrailers, "unexpected EOF").
func TestStreamBodyAfterResponse(t *testing.T) {
	const real = "sk-duplex-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	port := rig.ownUpstream(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkBearer(w, r, real) {
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ready;")
		http.NewResponseController(w).Flush()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: read body: %v", err)
			return
		}
		fmt.Fprintf(w, "got %s", body)
		w.Header().Set("Grpc-Status", "0")
	}))
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := rig.httpClient("sb", h2)
			pr, pw := io.Pipe()
			gotHead := make(chan struct{})
			go func() {
				select {
				case <-gotHead:
				case <-time.After(handshakeGuard):
					t.Errorf("no response head before the request body: the gateway waited for the body")
					pw.CloseWithError(fmt.Errorf("no response head"))
					return
				}
				io.WriteString(pw, "ping")
				pw.Close()
			}()
			req := newReq(t, http.MethodPost, "https://"+ownHost+":"+port+"/pkg.Service/Chat", pr)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("TE", "trailers")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			close(gotHead)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got, want := string(body), "ready;got ping"; got != want {
				t.Errorf("body %q, want %q", got, want)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
				t.Errorf("trailer Grpc-Status = %q, want %q (trailers %v)", got, "0", resp.Trailer)
			}
		})
	}
}

// tunnel opens a CONNECT tunnel to target through the rig's explicit proxy
// as sandbox, the way a client library does before its TLS handshake.
func (r *rig) tunnel(tb testing.TB, sandbox, target string) net.Conn {
	tb.Helper()
	u := r.proxyURL(sandbox)
	pass, _ := u.User.Password()
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	auth := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("CONNECT %s: status %d", target, resp.StatusCode)
	}
	if br.Buffered() != 0 {
		tb.Fatalf("CONNECT %s: %d bytes after the answer", target, br.Buffered())
	}
	return c
}

// TestStreamWebSocket: a WebSocket upgrade through the gateway. The
// stand-in in the upgrade request is swapped at the handshake, then bytes
// flow both ways; what the upstream writes into the upgraded stream is
// scrubbed like any response body.
func TestStreamWebSocket(t *testing.T) {
	const real = "sk-ws-REALVALUE-0123456789abcdef"
	tests := []struct {
		name string
		h2   bool        // the upstream also speaks HTTP/2
		hdr  http.Header // added to the client's upgrade request
		// upstream speaks after it answered 101 on the hijacked c.
		upstream func(c net.Conn, brw *bufio.ReadWriter)
		// check gets the headers the upstream received and the client's
		// side of the upgraded stream.
		check func(t *testing.T, up http.Header, tc *tls.Conn, br *bufio.Reader)
	}{{
		// The real value reaches the upstream in the upgrade request, then
		// each piece flows only after the other side answered the previous
		// one.
		name: "swapped",
		h2:   true,
		upstream: func(c net.Conn, brw *bufio.ReadWriter) {
			// Server speaks first, then echoes each message it gets.
			io.WriteString(c, "hello;")
			buf := make([]byte, 64)
			for {
				n, err := brw.Read(buf)
				if err != nil {
					return
				}
				fmt.Fprintf(c, "echo %s;", buf[:n])
			}
		},
		check: func(t *testing.T, up http.Header, tc *tls.Conn, br *bufio.Reader) {
			if got := up.Get("Authorization"); got != "Bearer "+real {
				t.Errorf("upstream Authorization = %q, want the real value", hideReal(got, real))
			}
			if got := up.Get("Upgrade"); !strings.EqualFold(got, "websocket") {
				t.Errorf("upstream Upgrade = %q, want websocket", got)
			}
			read := func(want string) {
				t.Helper()
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil {
					t.Fatalf("read %q: %v", want, err)
				}
				if string(got) != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			read("hello;")
			for _, msg := range []string{"one", "two", "three"} {
				if _, err := io.WriteString(tc, msg); err != nil {
					t.Fatal(err)
				}
				read("echo " + msg + ";")
			}
		},
	}, {
		// An upstream that echoes the real credential inside the upgraded
		// stream is scrubbed (the sandbox never sees it, in one piece or
		// split across writes), and a message that ends with the start of
		// the value is still delivered while the upstream waits for the
		// client (the held-back tail is released when the stream goes
		// quiet). Compression is not offered upstream: compressed frames
		// could not be scrubbed.
		name: "scrubbed",
		hdr:  http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}},
		upstream: func(c net.Conn, brw *bufio.ReadWriter) {
			io.WriteString(c, "whole="+real+";")
			io.WriteString(c, "split="+real[:9])
			time.Sleep(5 * time.Millisecond)
			io.WriteString(c, real[9:]+";")
			// Ends with a prefix of the value, then waits for the client.
			io.WriteString(c, "tail="+real[:6])
			buf := make([]byte, 16)
			n, _ := brw.Read(buf)
			fmt.Fprintf(c, "|got %s;", buf[:n])
		},
		check: func(t *testing.T, up http.Header, tc *tls.Conn, br *bufio.Reader) {
			if ext := up.Get("Sec-WebSocket-Extensions"); ext != "" {
				t.Errorf("compression offer %q went upstream; compressed frames cannot be scrubbed", ext)
			}
			// Everything up to and including the tail arrives without the
			// client sending anything: the tail is not stalled behind the
			// scrubber.
			want := len("whole=") + len(real) + 1 + len("split=") + len(real) + 1 + len("tail=") + 6
			got := make([]byte, want)
			if _, err := io.ReadFull(br, got); err != nil {
				t.Fatalf("read before answering: %v (got %q)", err, hideReal(string(got), real))
			}
			io.WriteString(tc, "ok")
			rest, _ := io.ReadAll(br)
			all := string(got) + string(rest)
			if strings.Contains(all, real) {
				t.Errorf("the real value reached the sandbox through the WebSocket stream")
			}
			if !strings.Contains(all, "|got ok;") || !strings.HasPrefix(all, "whole=") {
				t.Errorf("stream = %q, want the upstream's messages in order", hideReal(all, real))
			}
			if len(all) != want+len("|got ok;") {
				t.Errorf("stream is %d bytes, want %d: lengths must not change inside frames", len(all), want+len("|got ok;"))
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRig(t)
			tok := rig.ownSandbox("sb", real)
			upHeader := make(chan http.Header, 1)
			port := rig.ownUpstream(tt.h2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				upHeader <- r.Header.Clone()
				acceptUpgrade(t, w, tt.upstream)
			}))

			tc, br := wsClientUpgrade(t, rig, port, tok, tt.hdr)
			tt.check(t, <-upHeader, tc, br)
		})
	}
}

// acceptUpgrade is an upstream's side of a WebSocket upgrade: it takes
// the connection over, answers 101, and hands it to fn, closing it when fn
// returns.
func acceptUpgrade(t *testing.T, w http.ResponseWriter, fn func(c net.Conn, brw *bufio.ReadWriter)) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("upstream hijack: %v", err)
		return
	}
	defer c.Close()
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	fn(c, brw)
}

// wsClientUpgrade opens a TLS flow from sandbox "sb" to ownHost:port and
// upgrades it to WebSocket with tok as bearer token (and hdr's fields),
// failing the test unless the answer is 101. The reader holds what came
// after the 101's header.
func wsClientUpgrade(t *testing.T, rig *rig, port, tok string, hdr http.Header) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	tc := tls.Client(rig.tunnel(t, "sb", ownHost+":"+port), &tls.Config{
		ServerName: ownHost, RootCAs: rig.caPool, NextProtos: []string{"http/1.1"},
	})
	req := newReq(t, http.MethodGet, "https://"+ownHost+":"+port+"/v1/realtime", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for k, v := range hdr {
		req.Header[k] = v
	}
	if err := req.Write(tc); err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(handshakeGuard))
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return tc, br
}

// largeSize is the size of TestStreamLarge's transfers: 1 GB, or 256 MB
// under the race detector, which makes every byte copied through TLS and
// the scrubber several times slower.
func largeSize() int64 {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return 256 << 20
			}
		}
	}
	return 1 << 30
}

// heapWatch samples HeapInuse until stopped and returns the peak.
type heapWatch struct {
	stop chan struct{}
	done chan uint64
}

func watchHeap() *heapWatch {
	h := &heapWatch{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			// After a collection HeapInuse is what is live: garbage
			// waiting for the next cycle (more of it under -race,
			// where sync.Pool drops items) is not buffering.
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapWatch) peak() uint64 {
	close(h.stop)
	return <-h.done
}

func heapBaseline() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// maxHeapGrowth is how far the heap may grow during a large transfer: a
// few MB of TLS, HTTP/2 flow-control and scrub buffers, far below the size
// of the transfer.
const maxHeapGrowth = 64 << 20

// TestStreamLarge: a large download and a large upload through an
// intercepted flow (swap and scrubbing on) run in constant memory.
func TestStreamLarge(t *testing.T) {
	size := largeSize()
	const real = "sk-large-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	port := rig.ownUpstream(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkBearer(w, r, real) {
			return
		}
		if r.Method == http.MethodPost {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d", n)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 1<<20)
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	c := rig.httpClient("sb", false)
	url := "https://" + ownHost + ":" + port + "/blob"

	t.Run("download", func(t *testing.T) {
		base := heapBaseline()
		hw := watchHeap()
		req := newReq(t, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		c := *c
		c.Timeout = 0 // the transfer may take a while under -race
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		peak := hw.peak()
		if err != nil || n != size || resp.StatusCode != http.StatusOK {
			t.Fatalf("download: status %d, %d bytes, %v; want 200, %d bytes", resp.StatusCode, n, err, size)
		}
		if peak > base+maxHeapGrowth {
			t.Errorf("heap in use peaked at %d MB, %d MB above the %d MB baseline: the gateway buffers",
				peak>>20, (peak-base)>>20, base>>20)
		}
		t.Logf("%d MB down; heap peak %d MB above baseline", size>>20, (int64(peak)-int64(base))>>20)
	})
	t.Run("upload", func(t *testing.T) {
		base := heapBaseline()
		hw := watchHeap()
		req := newReq(t, http.MethodPost, url, io.LimitReader(zeros{}, size))
		req.Header.Set("Authorization", "Bearer "+tok)
		c := *c
		c.Timeout = 0
		status, _, body := do(t, &c, req)
		peak := hw.peak()
		if status != http.StatusOK || string(body) != fmt.Sprint(size) {
			t.Fatalf("upload: status %d, upstream got %s bytes; want 200, %d", status, body, size)
		}
		if peak > base+maxHeapGrowth {
			t.Errorf("heap in use peaked at %d MB, %d MB above the %d MB baseline: the gateway buffers",
				peak>>20, (peak-base)>>20, base>>20)
		}
		t.Logf("%d MB up; heap peak %d MB above baseline", size>>20, (int64(peak)-int64(base))>>20)
	})
}

// TestStreamBytesExact: a download of random bytes, written by the
// upstream in pieces of every size with the real value placed across the
// pieces' edges, reaches the sandbox byte for byte, with only the value
// replaced, over HTTP/1.1 (whose writes the gateway gathers into fewer
// socket writes) and HTTP/2.
func TestStreamBytesExact(t *testing.T) {
	r := newRig(t, "a.test")
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]

	var pieces [][]byte
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 2, 100, 4095, 4096, 4097, 16383, 16384, 16385, 65535, 65536, 65537, 300000, 1 << 20} {
		p := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(p)
		if n > 2*len(realA) {
			at := rng.IntN(n - len(realA))
			copy(p[at:], realA)
		}
		pieces = append(pieces, p)
	}
	// The value split over the edge of two pieces, at each offset.
	for k := 1; k < len(realA); k++ {
		pieces = append(pieces, []byte(realA[:k]), []byte(realA[k:]+"|"))
	}
	want := bytes.ReplaceAll(bytes.Join(pieces, nil), []byte(realA), []byte(si))
	r.up.handle(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for i, p := range pieces {
			w.Write(p)
			if i%3 == 0 {
				w.(http.Flusher).Flush()
			}
		}
	})
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			req := newReq(t, http.MethodGet, "https://a.test/blob", nil)
			req.Header.Set("Authorization", "Bearer "+si)
			status, _, got := do(t, r.httpClient("agent", h2), req)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("body differs from byte %d (got %d bytes, want %d)", i, len(got), len(want))
			}
		})
	}
}
