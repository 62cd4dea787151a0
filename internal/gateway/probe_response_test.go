package gateway

// Probes of the response path: ways an upstream's echo of the real value,
// or the gateway's own errors and logs, could still carry the value to the
// sandbox or to a log, beyond what TestAttackReflection covers. Each test
// plays the attacker (and the upstream the attacker hopes for) and asserts
// that the bytes the sandbox gets, decoded the way its client would, hold
// no form of the real value and no run of 8 or more of its bytes.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/internal/testutil"
)

// probeRun is the shortest run of the real value's bytes that counts as a
// leak: shorter runs are what any scrubbing leaves at a form's edges (and
// the stand-in shares the value's "sk-" prefix).
const probeRun = 8

// longestRun returns the length of the longest substring of real that
// occurs in data.
func longestRun(data []byte, real string) int {
	for n := len(real); n > 0; n-- {
		for i := 0; i+n <= len(real); i++ {
			if bytes.Contains(data, []byte(real[i:i+n])) {
				return n
			}
		}
	}
	return 0
}

// assertNoLeak fails if data holds a scrubbed form of real, or a run of
// probeRun or more of its bytes.
func assertNoLeak(tb testing.TB, real, where string, data []byte) {
	tb.Helper()
	for name, f := range realForms(real) {
		if bytes.Contains(data, []byte(f)) {
			tb.Errorf("real value (%s) reached %s", name, where)
		}
	}
	if n := longestRun(data, real); n >= probeRun {
		tb.Errorf("%d bytes of the real value reached %s", n, where)
	}
}

// pyQuote is Python's urllib.parse.quote(v): every byte but the unreserved
// ones and '/' percent-encoded, upper-case hex.
func pyQuote(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// htmlTemplate renders v with html/template in text (what) "text" or in a
// link's query ("href").
func htmlTemplate(tb testing.TB, what, v string) string {
	src := map[string]string{
		"text": `<p>invalid key {{.}}</p>`,
		"href": `<a href="https://a.test/retry?key={{.}}">retry</a>`,
	}[what]
	var b strings.Builder
	if err := template.Must(template.New("").Parse(src)).Execute(&b, v); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// phpJSON is PHP's json_encode(v) with its default flags: '/' escaped.
func phpJSON(v string) string {
	b, _ := json.Marshal(v)
	return strings.ReplaceAll(string(b), "/", `\/`)
}

// TestProbeReflectEncodings: the upstream echoes the value in encodings
// that ordinary server code produces for a key with '/', '+' and '=' in it
// (an error page, a JSON error from a PHP service, a retry link): each
// reaches the sandbox as the same encoding of the stand-in.
func TestProbeReflectEncodings(t *testing.T) {
	r, _, si := agentRig(t)

	tests := []struct {
		name string
		enc  func(v string) string
	}{
		{"query-escaped, lower-case hex", func(v string) string { return lowerHex(url.QueryEscape(v)) }},
		{"path-escaped, lower-case hex", func(v string) string { return lowerHex(url.PathEscape(v)) }},
		{"Python quote (slash kept)", pyQuote},
		{"Python quote, lower-case hex", func(v string) string { return lowerHex(pyQuote(v)) }},
		{"html/template link", func(v string) string { return htmlTemplate(t, "href", v) }},
		{"html/template text", func(v string) string { return htmlTemplate(t, "text", v) }},
		{"PHP json_encode", phpJSON},
		{"Go JSON", func(v string) string { b, _ := json.Marshal(v); return string(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.enc(realA) == tt.enc(si) {
				t.Fatalf("encoding hides the difference between value and stand-in; bad test")
			}
			r.up.handle(func(w http.ResponseWriter, req *http.Request) {
				v := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
				w.Header().Set("X-Echo", tt.enc(v))
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, "echo: "+tt.enc(v)+"\n")
			})
			t.Cleanup(func() { r.up.handle(nil) })
			raw := exchange(t, sandboxTLS(t, r, "agent", "a.test"), "GET /echo HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+
				"\r\nConnection: close\r\n\r\n")
			if got := r.up.requests(); got[len(got)-1].Header.Get("Authorization") != "Bearer "+realA {
				t.Fatalf("upstream did not get the real value to echo")
			}
			if bytes.Contains(raw, []byte(tt.enc(realA))) {
				t.Errorf("the value, encoded as %s, reached the sandbox", tt.name)
			}
			assertNoLeak(t, realA, "the sandbox", raw)
			if n := bytes.Count(raw, []byte(tt.enc(si))); n != 2 {
				t.Errorf("stand-in encoded as %s found %d times in %q, want 2 (header and body)", tt.name, n, raw)
			}
			// The replacement may change the body's length: its framing
			// must still hold (one whole response, Content-Length true).
			if rs := parseResponses(t, raw); len(rs) != 1 || !bytes.Contains(rs[0].body, []byte(tt.enc(si))) {
				t.Errorf("responses %+v, want one whose body holds the stand-in", rs)
			}
		})
	}
}

// lowerHex lower-cases the hex digits of every percent escape in s.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = bytes.ToLower(b[i+1 : i+2])[0], bytes.ToLower(b[i+2 : i+3])[0]
		}
	}
	return string(b)
}

// readAllLoose reads c until it is closed or fails, and returns what came.
func readAllLoose(c net.Conn) []byte {
	c.SetReadDeadline(time.Now().Add(rawDeadline))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out
		}
	}
}

// TestProbeTruncatedEcho: the upstream echoes the whole value, but its
// stream breaks in the middle of it: the upstream crashes, or the sandbox
// makes the gateway abandon the response by half-closing its side while
// the upstream pauses. The scrubber held the start back waiting for the
// rest; it must not hand it over when the rest cannot be checked.
func TestProbeTruncatedEcho(t *testing.T) {
	const cut = 30 // bytes of the value sent before the stream breaks
	tests := []struct {
		name string
		h    func(w http.ResponseWriter, req *http.Request, v string)
		// halfClose: the sandbox closes its sending side once the
		// response has begun
		halfClose bool
	}{
		{name: "upstream aborts", h: func(w http.ResponseWriter, req *http.Request, v string) {
			io.WriteString(w, "you sent: "+v[:cut])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}},
		{name: "sandbox half-closes while the upstream pauses", halfClose: true,
			h: func(w http.ResponseWriter, req *http.Request, v string) {
				io.WriteString(w, "you sent: "+v[:cut])
				w.(http.Flusher).Flush()
				select {
				case <-req.Context().Done():
				case <-time.After(rawDeadline):
				}
				io.WriteString(w, v[cut:])
			}},
	}
	r, _, si := agentRig(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.up.handle(func(w http.ResponseWriter, req *http.Request) {
				tt.h(w, req, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
			})
			t.Cleanup(func() { r.up.handle(nil) })
			tc := sandboxTLS(t, r, "agent", "a.test")
			tc.SetDeadline(time.Now().Add(rawDeadline))
			if _, err := io.WriteString(tc, "GET /echo HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+"\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if tt.halfClose {
				// Wait for the response head, so the upstream has sent
				// the cut value and is waiting, then half-close.
				br := bufio.NewReader(tc)
				if _, err := br.Peek(12); err != nil {
					t.Fatalf("response head: %v", err)
				}
				if err := tc.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				assertNoLeak(t, realA, "the sandbox", readAllLoose(&prefixConn{Conn: tc, r: br}))
				return
			}
			raw := readAllLoose(tc)
			if !bytes.Contains(raw, []byte("HTTP/1.1 ")) {
				t.Fatalf("no response: %q", raw)
			}
			assertNoLeak(t, realA, "the sandbox", raw)
		})
	}
}

// wsFrame is a server's (unmasked) WebSocket frame.
func wsFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{b0, byte(n)}
	case n < 1<<16:
		h = []byte{b0, 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = b0, 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return append(h, payload...)
}

// wsMessages reads server frames from br until it fails and returns the
// messages they make, fragments joined, as a client library hands them over.
func wsMessages(br *bufio.Reader) []string {
	var msgs []string
	var cur []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return msgs
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(br, e[:]); err != nil {
				return msgs
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(br, e[:]); err != nil {
				return msgs
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		var key [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(br, key[:]); err != nil {
				return msgs
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return msgs
		}
		if h[1]&0x80 != 0 {
			for i := range p {
				p[i] ^= key[i%4]
			}
		}
		if op := h[0] & 0x0f; op >= 8 {
			msgs = append(msgs, string(p)) // control frames stand alone
			continue
		}
		cur = append(cur, p...)
		if h[0]&0x80 != 0 {
			msgs = append(msgs, string(cur))
			cur = nil
		}
	}
}

// wsUpgrade opens a WebSocket to an upstream of rig through the gateway as
// sandbox sb, whose upstream side is up (after it answered 101), and
// returns the sandbox's side after the 101.
func wsUpgrade(t *testing.T, rig *rig, tok string, up func(c net.Conn)) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	port := rig.ownUpstream(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkBearer(w, r, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			return
		}
		acceptUpgrade(t, w, func(c net.Conn, _ *bufio.ReadWriter) { up(c) })
	}))
	return wsClientUpgrade(t, rig, port, tok, nil)
}

// TestProbeWebSocketPause: the upstream's WebSocket frame holds the value,
// but the upstream (or the network) pauses in the middle of it for longer
// than the gateway waits before it releases a held-back tail. The pause is
// what triggers the release; nothing asserts on time.
func TestProbeWebSocketPause(t *testing.T) {
	for _, split := range []int{5, 20} {
		t.Run(fmt.Sprintf("after %d bytes", split), func(t *testing.T) {
			rig := newRig(t)
			tok := rig.ownSandbox("sb", realA)
			payload := []byte("key=" + realA + ";")
			frame := wsFrame(true, 1, payload)
			at := len(frame) - len(payload) + len("key=") + split
			tc, br := wsUpgrade(t, rig, tok, func(c net.Conn) {
				c.Write(frame[:at])
				time.Sleep(300 * time.Millisecond) // well past the 20 ms idle release
				c.Write(frame[at:])
			})
			defer tc.Close()
			msgs := wsMessages(br)
			all := []byte(strings.Join(msgs, "\n"))
			assertNoLeak(t, realA, "the sandbox's WebSocket messages", all)
			if len(msgs) != 1 || len(msgs[0]) != len(payload) {
				t.Errorf("messages %q, want one of %d bytes", msgs, len(payload))
			}
		})
	}
}

// TestProbeWebSocketFragments: the upstream sends a message holding the
// value in fragments, split inside the value; the sandbox's WebSocket
// library joins them. Each fragment alone holds only part of the value,
// and the frame header between them would break a match over raw bytes:
// wsscrub.go scrubs a message's payloads as one stream.
func TestProbeWebSocketFragments(t *testing.T) {
	rig := newRig(t)
	tok := rig.ownSandbox("sb", realA)
	tc, br := wsUpgrade(t, rig, tok, func(c net.Conn) {
		c.Write(append(wsFrame(false, 1, []byte("key="+realA[:20])), wsFrame(true, 0, []byte(realA[20:]+";"))...))
	})
	defer tc.Close()
	msgs := wsMessages(br)
	assertNoLeak(t, realA, "the sandbox's WebSocket messages", []byte(strings.Join(msgs, "\n")))
	if len(msgs) != 1 {
		t.Errorf("got %d messages, want 1", len(msgs))
	}
}

// decodeLikeCurl undoes the content codings of a response the way curl
// --compressed, urllib3 and undici do: every Content-Encoding field, each
// comma-separated coding, gzip undone, identity skipped.
func decodeLikeCurl(h http.Header, body []byte) ([]byte, error) {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
				codings = append(codings, c)
			}
		}
	}
	for i := len(codings) - 1; i >= 0; i-- {
		switch codings[i] {
		case "identity":
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown coding %q", codings[i])
		}
	}
	return body, nil
}

// TestProbeContentEncoding: an upstream that compresses although the
// gateway asked for identity, labelled in ways a check of one header value
// could miss. The sandbox either gets a refusal or nothing its client
// decodes to the value.
// Two Content-Encoding fields count: curl, urllib3 and undici apply every
// field, so every coding of every field must be identity (encoded).
func TestProbeContentEncoding(t *testing.T) {
	r, _, si := agentRig(t)
	tests := []struct {
		name string
		ce   []string // Content-Encoding fields, in order
	}{
		{"upper-case GZIP", []string{"GZIP"}},
		{"x-gzip", []string{"x-gzip"}},
		{"gzip, identity in one field", []string{"gzip, identity"}},
		{"identity, gzip in one field", []string{"identity, gzip"}},
		{"identity field then gzip field", []string{"identity", "gzip"}},
		{"empty field then gzip field", []string{"", "gzip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.up.handle(func(w http.ResponseWriter, req *http.Request) {
				if ae := req.Header.Get("Accept-Encoding"); ae != "identity" {
					t.Errorf("upstream Accept-Encoding = %q, want identity", ae)
				}
				w.Header()["Content-Encoding"] = tt.ce
				gz := gzip.NewWriter(w)
				io.WriteString(gz, "you sent "+req.Header.Get("Authorization"))
				gz.Close()
			})
			t.Cleanup(func() { r.up.handle(nil) })
			raw := exchange(t, sandboxTLS(t, r, "agent", "a.test"), "GET /echo HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+
				"\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
			resps := parseResponses(t, raw)
			if len(resps) != 1 {
				t.Fatalf("got %d responses, want 1", len(resps))
			}
			body, err := decodeLikeCurl(resps[0].header, resps[0].body)
			if err != nil {
				body = resps[0].body
			}
			assertNoLeak(t, realA, "the sandbox (decoded)", body)
			if resps[0].status != http.StatusBadGateway {
				t.Errorf("status %d (Content-Encoding %q), want %d: a compressed answer cannot be scrubbed",
					resps[0].status, resps[0].header.Values("Content-Encoding"), http.StatusBadGateway)
			}
		})
	}
}

// rawUpstream starts an HTTP/1.1-only upstream for rig that reads each
// request, answers with the bytes resp returns (v is the bearer token it
// got) and closes the connection.
func rawUpstream(t *testing.T, rig *rig, resp func(method, v string) string) string {
	t.Helper()
	return rig.ownUpstream(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("upstream hijack: %v", err)
			return
		}
		defer c.Close()
		io.WriteString(c, resp(r.Method, v))
	}))
}

// TestProbeFraming: an HTTP/1.1 upstream whose answer holds the value where
// the message's framing says there is no body (HEAD, 204, 304, bytes past
// Content-Length), in the reason phrase, or behind a transfer coding the
// gateway cannot read. The sandbox never gets those bytes.
// (TestProbeStdLogger: where they do go.)
func TestProbeFraming(t *testing.T) {
	captureStdLog(t)
	tests := []struct {
		name, method string
		resp         func(v string) string
	}{
		{"HEAD with a body", http.MethodHead, func(v string) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nkey=%s", len(v)+4, v)
		}},
		{"204 with a body", http.MethodGet, func(v string) string {
			return "HTTP/1.1 204 No Content\r\n\r\nkey=" + v
		}},
		{"304 with a body", http.MethodGet, func(v string) string {
			return "HTTP/1.1 304 Not Modified\r\n\r\nkey=" + v
		}},
		{"bytes past Content-Length", http.MethodGet, func(v string) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkey=" + v
		}},
		{"reason phrase", http.MethodGet, func(v string) string {
			return "HTTP/1.1 401 invalid key " + v + "\r\nContent-Length: 2\r\n\r\nno"
		}},
		{"gzip transfer coding", http.MethodGet, func(v string) string {
			var b bytes.Buffer
			gz := gzip.NewWriter(&b)
			io.WriteString(gz, "key="+v)
			gz.Close()
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", b.Len(), b.Bytes())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newRig(t)
			tok := rig.ownSandbox("sb", realA)
			port := rawUpstream(t, rig, func(method, v string) string { return tt.resp(v) })
			tc := tls.Client(rig.tunnel(t, "sb", ownHost+":"+port), &tls.Config{
				ServerName: ownHost, RootCAs: rig.caPool, NextProtos: []string{"http/1.1"},
			})
			raw := exchange(t, tc, tt.method+" /echo HTTP/1.1\r\nHost: "+ownHost+":"+port+"\r\nAuthorization: Bearer "+tok+
				"\r\nConnection: close\r\n\r\n")
			if !bytes.HasPrefix(raw, []byte("HTTP/1.1 ")) {
				t.Fatalf("no response: %q", raw)
			}
			assertNoLeak(t, realA, "the sandbox", raw)
		})
	}
}

// TestProbeErrorsAndLogs: the gateway's own words about a response (its
// error bodies, its slog lines at debug level, the activity records the API
// and `standin secret activity` show, and the process's standard logger
// that net/http writes to) never hold the value, whatever the upstream sends.
func TestProbeErrorsAndLogs(t *testing.T) {
	stdlog := captureStdLog(t)
	rig := newRig(t)
	tok := rig.ownSandbox("sb", realA)
	tests := []struct {
		name string
		resp func(v string) string
		// cut: the gateway aborts the sandbox's connection, which may
		// happen before the response head has left: the client then gets
		// an error, which must not hold the value either.
		cut bool
	}{
		// A trailer line the transport cannot parse: its error quotes it.
		{"malformed trailer", func(v string) string {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nkey " + v + "\r\n\r\n"
		}, false},
		// A malformed header: the transport's error quotes the line.
		{"malformed header", func(v string) string {
			return "HTTP/1.1 200 OK\r\nkey " + v + "\r\nContent-Length: 2\r\n\r\nok"
		}, false},
		{"malformed status line", func(v string) string {
			return "HTTP/1.1 2xx " + v + "\r\nContent-Length: 2\r\n\r\nok"
		}, false},
		{"cut mid-value", func(v string) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nkey=" + v[:30]
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := rawUpstream(t, rig, func(_, v string) string { return tt.resp(v) })
			c := rig.httpClient("sb", false)
			req := newReq(t, http.MethodGet, "https://"+ownHost+":"+port+"/v1/x?key="+url.QueryEscape(tok)+"&n=1", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := c.Do(req)
			if err != nil && tt.cut {
				assertNoLeak(t, realA, "the sandbox's error", []byte(err.Error()))
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var hb bytes.Buffer
			resp.Header.Write(&hb)
			resp.Trailer.Write(&hb)
			assertNoLeak(t, realA, "the sandbox", append(hb.Bytes(), b...))
		})
	}
	acts := rig.activity("own-sb")
	if len(acts) == 0 {
		t.Errorf("no activity records")
	}
	for _, a := range acts {
		if a.Path != "/v1/x?key=&n=" {
			t.Errorf("activity path %q, want %q: query values are not recorded", a.Path, "/v1/x?key=&n=")
		}
	}
	ab, _ := json.Marshal(acts)
	assertNoLeak(t, realA, "activity records", ab)
	assertNoLeak(t, realA, "the gateway's slog lines", []byte(rig.logs.String()))
	assertNoLeak(t, realA, "the standard logger", []byte(stdlog.String()))
}

// TestProbeStdLogger: bytes an upstream sends past the end of its answer
// (a body on a HEAD, 204 or 304 answer, more than its Content-Length) are
// not the sandbox's, but net/http's transport finds them on the idle
// connection and writes them, quoted, to the process's standard logger.
// The daemon sends that logger through StdLogWriter (server.Run), as
// captureStdLog does here: the line arrives with its quote redacted.
func TestProbeStdLogger(t *testing.T) {
	stdlog := captureStdLog(t)
	rig := newRig(t)
	tok := rig.ownSandbox("sb", realA)
	tests := []struct {
		name, method, resp string
	}{
		{"HEAD with a body", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkey=%s"},
		{"204 with a body", http.MethodGet, "HTTP/1.1 204 No Content\r\n\r\nkey=%s"},
		{"bytes past Content-Length", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokkey=%s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := rawUpstream(t, rig, func(_, v string) string { return fmt.Sprintf(tt.resp, v) })
			c := rig.httpClient("sb", false)
			req := newReq(t, tt.method, "https://"+ownHost+":"+port+"/v1/x", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			_, h, b := do(t, c, req)
			var hb bytes.Buffer
			h.Write(&hb)
			assertNoLeak(t, realA, "the sandbox", append(hb.Bytes(), b...))
		})
	}
	// The transport logs from the connection's read loop once an answer
	// is done; the later cases' round trips give it that time.
	assertNoLeak(t, realA, "the standard logger", []byte(stdlog.String()))
	// Control: the line was written, so the check above saw it.
	if got := []byte(stdlog.String()); !bytes.Contains(got, []byte("Unsolicited response")) || !bytes.Contains(got, []byte("(redacted)")) {
		t.Errorf("standard logger = %q, want net/http's unsolicited-response line with its quote redacted", got)
	}
}

// captureStdLog sends the standard logger's output (net/http's transport
// writes there) through StdLogWriter, as the daemon does, to a buffer until
// the test ends.
func captureStdLog(t *testing.T) *testutil.SyncBuffer {
	w := &testutil.SyncBuffer{}
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(StdLogWriter(slog.NewTextHandler(w, nil)))
	log.SetFlags(0)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	return w
}

// TestProbeScrubReaderPauses drives the fitted scrubber of a WebSocket
// stream through every way an upstream can pause inside the value (one
// pause at each byte, and two pauses at each pair of bytes around it): the
// output never holds 8 bytes of the value, keeps the input's length (frames
// stay valid), and equals a scrub without pauses when no pause falls
// inside a value. A stream that breaks inside the value gives none of it.
func TestProbeScrubReaderPauses(t *testing.T) {
	// A stand-in with no byte in common with the value: any run of the
	// value's bytes in the output came from the value.
	s := NewScrubber([]ScrubPair{{Value: []byte(realA), StandIn: bytes.Repeat([]byte("#"), len(realA)+5)}}).Fitted()
	in := []byte("msg=" + realA + ";then " + url.QueryEscape(realA) + ";end")
	// The forms' places in "in": a pause strictly inside one releases
	// the start held back.
	start, end := len("msg="), len("msg=")+len(realA)
	qStart := end + len(";then ")
	qEnd := qStart + len(url.QueryEscape(realA))
	within := func(i int) bool { return i > start && i < end || i > qStart && i < qEnd }
	read := func(steps []scriptStep) []byte {
		t.Helper()
		r := s.Reader(&stepReader{steps: steps})
		var out []byte
		p := make([]byte, 7) // small reads: pending output spans Reads
		for range 10 * len(in) {
			n, err := r.Read(p)
			out = append(out, p[:n]...)
			if err != nil {
				return out
			}
		}
		t.Fatalf("Read made no progress")
		return nil
	}
	check := func(name string, out []byte, inside bool) {
		t.Helper()
		if n := longestRun(out, realA); n >= probeRun {
			t.Errorf("%s: %d bytes of the value in %q", name, n, out)
		}
		if len(out) != len(in) {
			t.Errorf("%s: %d bytes out, want %d", name, len(out), len(in))
		}
		if want := s.Bytes(in); !inside && !bytes.Equal(out, want) {
			t.Errorf("%s: %q, want %q", name, out, want)
		}
	}
	idle := func(parts ...[]byte) []scriptStep {
		var steps []scriptStep
		for i, p := range parts {
			if i > 0 {
				steps = append(steps, scriptStep{err: errIdle})
			}
			steps = append(steps, scriptStep{data: string(p)})
		}
		return steps
	}
	for i := range len(in) + 1 {
		check(fmt.Sprintf("pause at %d", i), read(idle(in[:i], in[i:])), within(i))
		for j := max(i+1, start-2); j < min(len(in), end+2); j++ {
			check(fmt.Sprintf("pauses at %d and %d", i, j), read(idle(in[:i], in[i:j], in[j:])), within(i) || within(j))
		}
	}
	errBroken := errors.New("connection reset")
	for i := start + 1; i < end; i++ {
		out := read([]scriptStep{{data: string(in[:i])}, {err: errBroken}})
		if n := longestRun(out, realA); n >= probeRun {
			t.Errorf("broken after %d bytes: %d bytes of the value in %q", i, n, out)
		}
	}
}

// stepReader returns its steps' data in order, as much as each Read can
// take, and a step's error (errIdle: once) when it gets to it; io.EOF at
// the end.
type stepReader struct{ steps []scriptStep }

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := &s.steps[0]
	if st.err != nil {
		if st.err == errIdle {
			s.steps = s.steps[1:]
		}
		return 0, st.err
	}
	n := copy(p, st.data)
	if st.data = st.data[n:]; st.data == "" {
		s.steps = s.steps[1:]
	}
	return n, nil
}

func (s *stepReader) Close() error { return nil }
