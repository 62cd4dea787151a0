// Package attacks is the hostile-agent suite: code inside a real gVisor
// sandbox, created through the CLI, tries every way we know to get a real
// credential out or to get past its network rules, and each test asserts
// the specific way the attempt fails (the gateway's status, error code and
// fixed reason, the errno the sandbox's kernel gives, the DNS rcode), that
// no real value was ever seen inside, and that the destination was never
// reached (the fake upstreams' records, the resolver's query log, a
// loopback listener that must stay untouched, the server's log).
//
// Each attack is recorded with harness.RecordAttack; the run ends with one
// line: attacks tried, attacks stopped, leaks. docs/SECURITY.md maps each
// attack to the defence that stops it and to its test here.
//
// The attacks are shell, python3 (testdata/) or, where raw HTTP/2 frames
// or a stream held open are needed, the small static Go program in
// attacker/, built by the test and copied in with `standin cp`.
package attacks

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/standin/standin/e2e/harness"
)

// Fake upstream hosts. Every one is served by the harness's local TLS
// server, so a request the gateway wrongly lets through is recorded, never
// sent off the machine.
const (
	// apiHost is the host the attacked secrets are for (bearer slot).
	apiHost = "api.attacks.e2e.test"
	// otherHost is allowed by the agent's rules but has no secret: its
	// flows are spliced, never swapped.
	otherHost = "other.attacks.e2e.test"
	// bHost has another secret of the same sandbox.
	bHost = "b.attacks.e2e.test"
	// deniedHost is registered (so a wrongly allowed request would arrive
	// and be recorded) but no sandbox's rules allow it.
	deniedHost = "denied.attacks.e2e.test"
)

// Rebinding names (harness.RebindRecords): allowed by the agent's rules,
// resolving (through the gateway's resolver) to addresses it must refuse.
const (
	rebindLoopback = "rebind-loopback.e2e.test"
	rebindPrivate  = "rebind-private.e2e.test"
	rebindMetadata = "rebind-metadata.e2e.test"
	rebindV6       = "rebind-v6.e2e.test"
	rebindMixed    = "rebind-mixed.e2e.test"
)

var rebindNames = []string{rebindLoopback, rebindPrivate, rebindMetadata, rebindV6, rebindMixed}

func init() {
	harness.Register(apiHost, http.HandlerFunc(serveAPI))
	harness.Register(otherHost, echoAuth("other"))
	harness.Register(bHost, echoAuth("b"))
	harness.Register(deniedHost, echoAuth("denied"))
}

func TestMain(m *testing.M) { harness.Main(m) }

// TestHostileAgent runs the attacks that need no revocation in one agent
// sandbox (newAgent), group by group; each attack is a subtest named
// "group/attack", e.g. -run 'HostileAgent/leave/DNS'.
func TestHostileAgent(t *testing.T) {
	ag := newAgent(t)
	readTheKey(t, ag)
	leaveAnotherWay(t, ag)
	swapElsewhere(t, ag)
	valueBack(t, ag)
	confuseTheParser(t, ag)
	rebinding(t, ag)
}

// echoAuth answers with the Authorization header it got: on hosts without
// the secret this shows the sandbox what arrived (the stand-in).
func echoAuth(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s got Authorization=%q\n", name, r.Header.Get("Authorization"))
	})
}

// serveAPI is the secret's host. Under /echo/ it is an upstream that sends
// the credential it received back in every way it can (/echo/ws over
// WebSocket); /redirect sends the client to another host; /sse/ID is an
// event stream the lifecycle tests hold open.
func serveAPI(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body) // so that the harness records it
	auth := r.Header.Get("Authorization")
	value := strings.TrimPrefix(auth, "Bearer ")
	switch p := r.URL.Path; {
	case p == "/echo/body":
		fmt.Fprintf(w, "you sent: %s\n", auth)
	case p == "/echo/header":
		w.Header().Set("X-Echo", auth)
		io.WriteString(w, "see X-Echo\n")
	case p == "/echo/location":
		w.Header().Set("Location", "https://"+otherHost+"/cb?key="+url.QueryEscape(value)+"&raw="+value)
		w.WriteHeader(http.StatusFound)
	case p == "/echo/base64":
		for k := range 3 {
			pad := strings.Repeat("x", k)
			fmt.Fprintln(w, base64.StdEncoding.EncodeToString([]byte(pad+auth)))
			fmt.Fprintln(w, base64.URLEncoding.EncodeToString([]byte(pad+value)))
			fmt.Fprintln(w, base64.RawStdEncoding.EncodeToString([]byte(pad+value)))
		}
	case p == "/echo/split":
		// Two halves with a flush between: the scrubber sees the value
		// across two writes (two chunks on the wire).
		half := len(value) / 2
		io.WriteString(w, "key="+value[:half])
		w.(http.Flusher).Flush()
		io.WriteString(w, value[half:]+";\n")
	case p == "/echo/bytes":
		for _, b := range []byte("key=" + value + ";\n") {
			w.Write([]byte{b})
			w.(http.Flusher).Flush()
		}
	case p == "/echo/forms":
		for _, f := range serverForms {
			fmt.Fprintln(w, f.encode(value))
		}
	case p == "/echo/ws":
		serveWebSocket(w, r, value)
	case p == "/redirect":
		http.Redirect(w, r, "https://"+otherHost+"/landing", http.StatusFound)
	case strings.HasPrefix(p, "/sse/"):
		serveStream(w, r, strings.TrimPrefix(p, "/sse/"))
	case strings.HasPrefix(p, "/wsecho/"):
		serveWSEcho(w, r, strings.TrimPrefix(p, "/wsecho/"))
	default:
		io.WriteString(w, "api ok\n")
	}
}

// sseStream is one event stream a lifecycle test holds open: opened is
// closed once its one event is flushed; then the stream stays open until
// the client or the gateway ends it, or the test ends.
type sseStream struct {
	opened, done chan struct{}
	openOnce     sync.Once
}

var streams sync.Map // id -> *sseStream

// newStream registers a stream served at /sse/ID until the test ends.
func newStream(t *testing.T, id string) *sseStream {
	s := &sseStream{opened: make(chan struct{}), done: make(chan struct{})}
	streams.Store(id, s)
	t.Cleanup(func() {
		close(s.done)
		streams.Delete(id)
	})
	return s
}

func serveStream(w http.ResponseWriter, r *http.Request, id string) {
	v, ok := streams.Load(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s := v.(*sseStream)
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "data: one\n\n")
	w.(http.Flusher).Flush()
	s.openOnce.Do(func() { close(s.opened) })
	select {
	case <-s.done:
	case <-r.Context().Done():
	}
}

// serverForms are ways server code writes a value into text, as
// /echo/forms writes them, one per line, with how a client reads each back.
var serverForms = []struct {
	name   string
	encode func(string) string
	decode func(string) (string, error)
}{
	{
		// Python's urllib.parse.quote(v, safe=''), JavaScript's
		// encodeURIComponent, with the lower-case hex html/template writes.
		name: "percent-encoded, lower-case hex",
		encode: func(v string) string {
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				c := v[i]
				if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
					b.WriteByte(c)
				} else {
					fmt.Fprintf(&b, "%%%02x", c)
				}
			}
			return b.String()
		},
		decode: url.PathUnescape,
	},
	{
		// A JSON string as Go writes it (<, >, & as \u00XX), with "/"
		// escaped as PHP's json_encode does.
		name: `in a JSON string, "/" as "\/"`,
		encode: func(v string) string {
			b, _ := json.Marshal(map[string]string{"key": v})
			return strings.ReplaceAll(string(b), "/", `\/`)
		},
		decode: func(s string) (string, error) {
			var m map[string]string
			err := json.Unmarshal([]byte(s), &m)
			return m["key"], err
		},
	},
	{
		name:   "HTML-escaped",
		encode: html.EscapeString,
		decode: func(s string) (string, error) { return html.UnescapeString(s), nil },
	},
}

// wsGUID is the key suffix of the WebSocket handshake (RFC 6455 section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// serveWebSocket accepts a WebSocket upgrade and sends one text message,
// "key=<value>;", in two fragments split inside the value, then a close
// frame: the frame header between the two parts is all a scrubber that
// reads the stream as raw bytes sees of the split, and the client's library
// joins the parts.
func serveWebSocket(w http.ResponseWriter, r *http.Request, value string) {
	conn, _, ok := acceptWebSocket(w, r)
	if !ok {
		return
	}
	defer conn.Close()
	half := len(value) / 2
	// One write: the two fragments arrive together, so only the frame
	// header, not a pause, stands between the halves.
	conn.Write(append(wsFrame(false, 1, "key="+value[:half]), wsFrame(true, 0, value[half:]+";")...))
	conn.Write(wsFrame(true, 8, "\x03\xe8")) // close, 1000
	// Wait for the client's close (or give up), then close.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, conn)
}

// acceptWebSocket answers a WebSocket upgrade with 101 and takes the
// connection over; ok is false (and the client answered) if r is not one.
func acceptWebSocket(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.Reader, bool) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
		return nil, nil, false
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "WebSocket needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return nil, nil, false
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, false
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	return conn, brw.Reader, true
}

// wsHeard holds, per session ID, the text messages /wsecho/ID received:
// what reached the upstream through a WebSocket session.
var wsHeard sync.Map // id -> *wsLog

type wsLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *wsLog) add(m string) {
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.mu.Unlock()
}

func (l *wsLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// heardOn returns the log of WebSocket session id.
func heardOn(id string) *wsLog {
	v, _ := wsHeard.LoadOrStore(id, &wsLog{})
	return v.(*wsLog)
}

// serveWSEcho is an interactive WebSocket session: each text message the
// client sends (one masked frame under 126 bytes) is logged under id and
// answered with "echo <message>".
func serveWSEcho(w http.ResponseWriter, r *http.Request, id string) {
	conn, br, ok := acceptWebSocket(w, r)
	if !ok {
		return
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // only stops a broken run from hanging
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[1]&0x7f >= 126 {
			return
		}
		var mask [4]byte
		payload := make([]byte, hdr[1]&0x7f)
		if _, err := io.ReadFull(br, mask[:]); err != nil {
			return
		}
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
		if hdr[0]&0x0f != 1 {
			return // a close, or anything but text
		}
		heardOn(id).add(string(payload))
		conn.Write(wsFrame(true, 1, "echo "+string(payload)))
	}
}

// wsFrame is a server's (unmasked) frame with a payload under 126 bytes.
func wsFrame(fin bool, opcode byte, payload string) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	return append([]byte{b0, byte(len(payload))}, payload...)
}
