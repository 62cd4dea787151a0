package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/policy"
	"github.com/standin/standin/internal/store"
)

// Error codes in refusal bodies: {"error":{"code","message"}}.
const (
	CodeRevoked      = "secret_revoked"
	CodeBlocked      = "blocked"
	CodeUnavailable  = "secret_unavailable"
	CodeMisdirected  = "host_mismatch"
	CodeBadRequest   = "bad_request"
	CodeUpstreamFail = "upstream_unreachable"
)

// ReasonEncoded is why a response with a content coding (gzip, br) from a
// host the gateway scrubs is refused: the scrubber cannot see inside it,
// and the gateway asked for identity.
const ReasonEncoded = "upstream response is compressed and cannot be scrubbed"

var errEncoded = errors.New(ReasonEncoded)

// ReasonCutShort is why a response that had begun did not end: the
// upstream or the sandbox went away, or a rules change closed the flow.
const ReasonCutShort = "response cut short"

// ReasonCutRevoked is why a request in flight (a stream, a WebSocket
// session) was cut: the binding whose value it carried was revoked.
const ReasonCutRevoked = "secret revoked during the request"

// ReasonRequestTarget is why a request whose target is not a path (nor an
// absolute URI of the flow's host) is refused: an opaque target such as
// "x:https://other.example/" has no URL.Host to check, and would reach the
// upstream as an absolute-form target, which wins over Host there.
const ReasonRequestTarget = "request target must be a path"

// reqState is what one request learned on its way through, for the
// activity record and the log line.
type reqState struct {
	start    time.Time
	sb       *sandboxInfo
	host     string
	used     []*bindingInfo // secrets swapped into this request
	tried    *secretInfo    // secret whose slot held a refused token
	outcome  string
	reason   string
	upstream int
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	// upgraded is the upstream connection of a request the upstream
	// answered with 101 (a WebSocket holds its connection alone). cutBy
	// is why a revocation or a rules change cut the request.
	upgraded atomic.Pointer[io.Closer]
	cutBy    atomic.Pointer[string]
}

// serveMITM handles one request on an intercepted flow.
func (g *Gateway) serveMITM(w http.ResponseWriter, r *http.Request) {
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci == nil {
		http.Error(w, "no flow", http.StatusInternalServerError)
		return
	}
	st := &reqState{start: g.cfg.Now()}
	finished := false
	defer func() {
		// ReverseProxy aborts a response cut short after its head went
		// out (the upstream or the sandbox went away, or a revocation cut
		// it) with a panic, http.ErrAbortHandler, for the server to
		// recover. The request still gets its record and log line, with
		// the status the sandbox got: the upstream's. The panic is not
		// recovered: it goes on to the server, which ends the connection.
		if finished {
			return
		}
		st.outcome = "error"
		if st.reason == "" {
			st.reason = ReasonCutShort
		}
		g.finish(r, ci, st, st.upstream)
	}()
	status := g.handle(w, r, ci, st)
	finished = true
	g.finish(r, ci, st, status)
}

// handle runs the checks, the swap and the round trip; it returns the
// status the sandbox got.
func (g *Gateway) handle(w http.ResponseWriter, r *http.Request, ci *connInfo, st *reqState) int {
	snap, err := g.ix.get(r.Context())
	if err != nil {
		g.logger.Error("load bindings", "error", err)
		return refuse(w, st, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
	}
	sb := snap.sandboxes[ci.sandboxID]
	if sb == nil {
		return refuse(w, st, http.StatusForbidden, CodeBlocked, ReasonUnknownSB)
	}
	st.sb = sb

	// The request must be for the name the flow was opened (and the TLS
	// certificate minted) for: no domain fronting, no absolute URI naming
	// another host, no tunnel inside the tunnel.
	host := hostOnly(r.Host)
	st.host = host
	if r.Method == http.MethodConnect {
		return refuse(w, st, http.StatusMethodNotAllowed, CodeBadRequest, ReasonConnectTunnel)
	}
	if host != ci.host || (r.URL.Host != "" && hostOnly(r.URL.Host) != ci.host) {
		return refuse(w, st, http.StatusMisdirectedRequest, CodeMisdirected, ReasonHostMismatch)
	}
	if r.URL.Opaque != "" {
		// "GET x:https://other.example/ HTTP/1.1" parses with an empty
		// URL.Host and would go out as that absolute-form target, which
		// the upstream must prefer to Host (RFC 9112 section 3.2.2).
		return refuse(w, st, http.StatusBadRequest, CodeBadRequest, ReasonRequestTarget)
	}
	dest := policy.Dest{Host: host}
	if a, err := netip.ParseAddr(host); err == nil {
		dest = policy.Dest{Addr: a.Unmap()}
	}
	if d := sb.Rules.Decide(dest); !d.Allow {
		st.reason = ReasonRuleDenied + ": " + d.Rule
		return refuse(w, st, http.StatusForbidden, CodeBlocked, ReasonRuleDenied)
	}

	out := r.Clone(r.Context())
	if r.ContentLength == 0 {
		out.Body = nil // a GET must not go out with a (chunked) body
	}
	if code, status, reason := g.swap(out, ci, sb, snap, st); status != 0 {
		return refuse(w, st, status, code, reason)
	}

	scrub, err := g.scrubber(snap, sb, host)
	if err != nil {
		g.logger.Error("unseal for scrubbing", "error", err)
		return refuse(w, st, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
	}

	if len(st.used) > 0 {
		// Carrying real values: a revocation while it is in flight cuts
		// it (live.go).
		ctx, lr, refused := g.trackRequest(out.Context(), snap, sb.ID, ci.host, st)
		if refused == ReasonUnavailable {
			return refuse(w, st, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
		}
		if lr == nil {
			return refuse(w, st, http.StatusForbidden, CodeRevoked, ReasonRevoked)
		}
		defer g.untrackRequest(lr)
		out = out.WithContext(ctx)
	}
	transport, release := g.upstreamTransport(snap, sb)
	defer release()
	status := 0
	var upErr error
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = ci.scheme
			pr.Out.URL.Host = net.JoinHostPort(ci.host, ci.port)
			if (ci.scheme == "https" && ci.port == "443") || (ci.scheme == "http" && ci.port == "80") {
				pr.Out.URL.Host = ci.host
			}
			pr.Out.Host = r.Host
			// Forwarded-for style headers would tell the upstream
			// about the sandbox; send none.
			pr.Out.Header.Del("X-Forwarded-For")
			if !scrub.empty() {
				// A compressed echo would pass the scrubber unseen and
				// be decompressed by the sandbox: ask for identity.
				pr.Out.Header.Set("Accept-Encoding", "identity")
				// Nor compressed WebSocket frames (permessage-deflate).
				pr.Out.Header.Del("Sec-WebSocket-Extensions")
			}
		},
		Transport: transport,
		// Zero: ReverseProxy flushes every write of a response without
		// Content-Length (chunked, so streamed: SSE, NDJSON, whatever the
		// Content-Type) or of text/event-stream, and lets a response of
		// known length fill TLS records. A scrubber that changes lengths
		// drops Content-Length, so such responses flush every write too.
		FlushInterval: 0,
		BufferPool:    copyBuffers,
		ErrorLog:      g.debugLog,
		ModifyResponse: func(resp *http.Response) error {
			st.upstream = resp.StatusCode
			if resp.StatusCode == http.StatusSwitchingProtocols {
				c := io.Closer(resp.Body)
				st.upgraded.Store(&c)
			}
			if scrub.empty() {
				return nil
			}
			if encoded(resp.Header) && resp.Body != http.NoBody {
				return errEncoded // fail closed: it cannot be scrubbed
			}
			scrub.Header(resp.Header)
			scrub.Header(resp.Trailer)
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The body is the upgraded stream (WebSocket) itself:
				// scrub what the upstream sends, keeping lengths so
				// frames stay valid, and never holding a partial match
				// back for more than a moment.
				if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
					src := io.NopCloser(newIdleReader(rwc, 20*time.Millisecond))
					var r io.ReadCloser
					if upgradedToWebSocket(resp.Header) {
						// Frame by frame: a value split across
						// fragments is joined by the client.
						r = newWSReader(scrub, src)
					} else {
						r = scrub.Fitted().Reader(src)
					}
					resp.Body = &upgradedConn{ReadWriteCloser: rwc, r: r}
				}
				return nil
			}
			// Trailers arrive after the body: scrub them once it ends,
			// before the proxy copies them.
			resp.Body = &trailerScrubber{ReadCloser: scrub.Reader(resp.Body), s: scrub, resp: resp}
			if !scrub.LengthPreserving() {
				resp.ContentLength = -1
				resp.Header.Del("Content-Length")
			}
			return nil
		},
		// The gateway's own error body goes to w, not the counting
		// writer: bytes_in counts what the upstream sent, as for refusals.
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			upErr = err
			if by := st.cutBy.Load(); by != nil {
				// Cut before the upstream answered.
				code := CodeBlocked
				if *by == ReasonCutRevoked {
					code = CodeRevoked
				}
				status = writeError(w, http.StatusForbidden, code, *by)
				return
			}
			var de *DialError
			if errors.As(err, &de) {
				st.reason = de.Reason
				// Refused by the dial guard or the network rules (the
				// resolved address): a refusal like any other, 403.
				code := http.StatusForbidden
				switch de.Reason {
				case ReasonNoAddr:
					code = http.StatusBadGateway
				case ReasonUnavailable:
					// The store failed while judging a dial that raced
					// a write (live.go): as for any request, 503.
					status = writeError(w, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
					return
				}
				status = writeError(w, code, CodeBlocked, "upstream refused: "+de.Reason)
				return
			}
			if errors.Is(err, errEncoded) {
				st.reason = ReasonEncoded
				status = writeError(w, http.StatusBadGateway, CodeUpstreamFail, ReasonEncoded)
				return
			}
			if errors.Is(err, context.Canceled) {
				status = 499
				return
			}
			status = writeError(w, http.StatusBadGateway, CodeUpstreamFail, ReasonUpstream)
		},
	}
	if out.Body != nil {
		out.Body = &countingBody{ReadCloser: out.Body, n: &st.bytesOut}
	}
	cw := &countingWriter{ResponseWriter: w, n: &st.bytesIn, scrub: scrub}
	if r.ProtoMajor == 1 {
		cw.batch = ci.batch
		// By default the HTTP/1 server reads and discards what is left
		// of the request body when the response head goes out. The
		// upstream transport reads that body on its own goroutine, and
		// the upstream may answer before it has all of it (gRPC, early
		// heads): the body must go on to the upstream, and a body the
		// server closed under the transport aborted the upstream stream
		// and cut the sandbox's response short. A body still unread when
		// the response ends is closed after ServeHTTP (below).
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			g.logger.Debug("enable full duplex", "error", err)
		}
	}
	rp.ServeHTTP(cw, out)
	// The transport may still be reading the body (an upstream that
	// answered without reading it): closing it here, before the server
	// reads the next request from this connection, ends that read under
	// the body's lock. Left to the server, the two reads raced, and it
	// dropped the connection with a recovered panic, losing a pipelined
	// request (golang/go#68560).
	r.Body.Close()
	switch {
	case status != 0:
		st.outcome = "error"
		if st.reason == "" && upErr != nil {
			st.reason = ReasonUpstream
		}
		return status
	case cw.status != 0:
		st.outcome = "ok"
		return cw.status
	default:
		st.outcome = "ok"
		return http.StatusOK
	}
}

// upgradedConn is an upgraded upstream connection whose reads are
// scrubbed; writes (from the sandbox) go through unchanged.
type upgradedConn struct {
	io.ReadWriteCloser
	r io.ReadCloser
}

func (u *upgradedConn) Read(p []byte) (int, error) { return u.r.Read(p) }

// copyBuffers are ReverseProxy's copy buffers, reused across requests.
// 64 KiB: each read from the upstream's body returns a flow-control
// credit (an HTTP/2 WINDOW_UPDATE write) and each write to the sandbox
// costs a system call, so fewer, larger pieces cost less CPU per byte.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}}

const copyBufSize = 64 << 10

type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte  { return *bp.p.Get().(*[]byte) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// scrubber returns the scrubber for responses from host to sandbox sb:
// every value of the sandbox's secrets that could have been sent to this
// host, in this request or an earlier one. Built once per sandbox and set
// of such secrets until the next Invalidate: keyed by host, a sandbox
// naming endless hosts (plain HTTP through the proxy needs no DNS answer)
// would fill the cache until then.
func (g *Gateway) scrubber(snap *snapshot, sb *sandboxInfo, host string) (*Scrubber, error) {
	var bs []*bindingInfo
	key := sb.ID
	for _, b := range sb.bindings {
		if len(catalog.SlotsFor(b.Secret.Hosts, host)) > 0 {
			bs = append(bs, b)
			key += "\x00" + b.ID
		}
	}
	if len(bs) == 0 {
		// A nil Scrubber changes nothing: hosts with no secret (most, with
		// inspect all) need no tables.
		return nil, nil
	}
	// Only a request whose snapshot is still current may use or fill the
	// cache: one that raced with an Invalidate (a rotation) holds the old
	// value, and must neither get the new value's scrubber nor leave the
	// old value's behind.
	var s *Scrubber
	ok := false
	current := g.ix.whileCurrent(snap, func() {
		g.mu.Lock()
		s, ok = g.scrubbers[key]
		g.mu.Unlock()
	})
	if ok {
		return s, nil
	}
	var pairs []ScrubPair
	for _, b := range bs {
		v, err := g.value(b.Secret)
		if err != nil {
			return nil, err
		}
		standIn := []byte(b.StandIn)
		if b.Imported {
			standIn = fitMarker(v.Len())
		}
		pairs = append(pairs, ScrubPair{Value: v.Reveal(), StandIn: standIn})
	}
	s = NewScrubber(pairs)
	if current {
		g.ix.whileCurrent(snap, func() {
			g.mu.Lock()
			g.scrubbers[key] = s
			g.mu.Unlock()
		})
	}
	return s, nil
}

// upstreamTransport returns the upstream pool for a request judged by
// snap, and what to call when the request is done. A pool dials under the
// rules of the snapshot it was made from, so one made from a snapshot that
// an Invalidate already replaced (a request racing with a rules change)
// is this request's alone, closed when it is done: cached, it would serve
// the sandbox's later requests under the old rules.
func (g *Gateway) upstreamTransport(snap *snapshot, sb *sandboxInfo) (*http.Transport, func()) {
	var t *http.Transport
	if g.ix.whileCurrent(snap, func() { t = g.transport(snap, sb) }) {
		return t, func() {}
	}
	t = g.newTransport(snap, sb)
	return t, t.CloseIdleConnections
}

// whileCurrent runs f with the index locked if snap is still its snapshot
// (no Invalidate since snap was read), and reports whether it did.
// Invalidate replaces the snapshot before it drops the gateway's caches,
// so whatever f caches is dropped by any later Invalidate.
func (ix *index) whileCurrent(snap *snapshot, f func()) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.snap != snap {
		return false
	}
	f()
	return true
}

// fitMarker is what replaces a value whose stand-in is only known by its
// hash (imported): a fixed marker, as long as the value so that
// Content-Length stays true.
func fitMarker(n int) []byte {
	const marker = "STANDIN-REDACTED-"
	b := make([]byte, n)
	for i := range b {
		b[i] = marker[i%len(marker)]
	}
	return b
}

// swap finds stand-ins in the auth slots the sandbox's secrets define for
// this host and replaces each with its real value. A token in such a slot
// that is not an active stand-in of this sandbox for a secret of this host
// fails the request: it never goes out as it is.
func (g *Gateway) swap(r *http.Request, ci *connInfo, sb *sandboxInfo, snap *snapshot, st *reqState) (code string, status int, reason string) {
	host := ci.host
	slots := catalog.SlotsFor(sb.revokedHosts, host)
	for _, b := range sb.bindings {
		slots = append(slots, catalog.SlotsFor(b.Secret.Hosts, host)...)
	}
	type swapOne struct {
		slot client.AuthSlot
		b    *bindingInfo
	}
	var todo []swapOne
	seen := map[string]bool{}
	for _, slot := range slots {
		key := slotKey(slot)
		if seen[key] {
			continue
		}
		seen[key] = true
		tok, ok, multiple := TokenIn(r, slot)
		if multiple {
			return CodeBadRequest, http.StatusBadRequest, ReasonAmbiguous
		}
		if !ok || tok == "" {
			continue
		}
		h := g.ix.tokenHash(tok)
		b := snap.byHash[h]
		if b == nil {
			was, sec := snap.wasStandIn(sb, h, tok)
			if !was {
				// Not a stand-in of this sandbox (a user name, another
				// alternative slot's reading of the same header, the
				// agent's own credential): left as it is.
				continue
			}
			// A stand-in whose binding is gone: fail closed.
			st.tried = sec
			return CodeRevoked, http.StatusForbidden, ReasonRevoked
		}
		switch {
		case b.Sandbox != sb || !slotIn(slot, catalog.SlotsFor(b.Secret.Hosts, host)):
			// Another sandbox's stand-in, or this sandbox's stand-in
			// for a secret of another host.
			if b.Sandbox == sb {
				st.tried = b.Secret
			}
			return CodeRevoked, http.StatusForbidden, ReasonRevoked
		}
		if ci.scheme != "https" {
			st.tried = b.Secret
			return CodeBlocked, http.StatusForbidden, ReasonPlainHTTP
		}
		todo = append(todo, swapOne{slot: slot, b: b})
	}
	for _, s := range todo {
		v, err := g.value(s.b.Secret)
		if err != nil {
			st.tried = s.b.Secret
			g.logger.Error("unseal", "secret", s.b.Secret.Name, "error", err)
			return CodeUnavailable, http.StatusServiceUnavailable, ReasonUnavailable
		}
		if err := SetToken(r, s.slot, v.Reveal()); err != nil {
			st.tried = s.b.Secret
			return CodeBadRequest, http.StatusBadRequest, "cannot place credential: " + err.Error()
		}
		st.used = append(st.used, s.b)
	}
	return "", 0, ""
}

func slotKey(s client.AuthSlot) string {
	return s.Type + "\x00" + strings.ToLower(s.Header) + "\x00" + s.Template + "\x00" + s.SecretIn + "\x00" + s.Param
}

func slotIn(s client.AuthSlot, list []client.AuthSlot) bool {
	for _, o := range list {
		if slotKey(o) == slotKey(s) {
			return true
		}
	}
	return false
}

// refuse answers with a JSON error and records why.
func refuse(w http.ResponseWriter, st *reqState, status int, code, reason string) int {
	st.outcome = "refused"
	if st.reason == "" {
		st.reason = reason
	}
	return writeError(w, status, code, reason)
}

func writeError(w http.ResponseWriter, status int, code, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Standin-Error", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": "standin: " + msg}})
	return status
}

// finish writes the activity record(s) and the canonical log line.
func (g *Gateway) finish(r *http.Request, ci *connInfo, st *reqState, status int) {
	if by := st.cutBy.Load(); by != nil {
		st.outcome, st.reason = "error", *by // a revocation or a rules change cut it
	}
	lat := g.cfg.Now().Sub(st.start)
	path := redactQuery(r.URL)
	sbName, sbID := "", ci.sandboxID
	if st.sb != nil {
		sbName = st.sb.Name
	}
	var secretNames []string
	rec := func(sec *secretInfo) {
		secretNames = append(secretNames, sec.Name)
		if g.cfg.Audit == nil {
			return
		}
		g.cfg.Audit.Record(store.Activity{
			Time: st.start.UTC(), SecretID: sec.ID, SecretName: sec.Name,
			SandboxID: sbID, SandboxName: sbName, Method: r.Method, Host: st.host, Path: path,
			Status: status, UpstreamStatus: st.upstream, Latency: lat,
			BytesIn: st.bytesIn.Load(), BytesOut: st.bytesOut.Load(), Outcome: st.outcome, Reason: st.reason,
		})
	}
	for _, b := range st.used {
		rec(b.Secret)
	}
	if len(st.used) == 0 && st.tried != nil {
		rec(st.tried)
	}
	level := slog.LevelInfo
	if st.outcome == "refused" {
		level = slog.LevelWarn
	}
	if !g.logger.Enabled(r.Context(), level) {
		return // and spare building the line's attributes
	}
	g.logger.Log(r.Context(), level, "proxied request",
		"sandbox", sbName, "sandbox_id", sbID, "method", r.Method, "host", st.host, "path", path,
		"proto", r.Proto, "status", status, "upstream_status", st.upstream, "outcome", st.outcome,
		"reason", st.reason, "secrets", secretNames, "latency_ms", float64(lat.Microseconds())/1000,
		"bytes_in", st.bytesIn.Load(), "bytes_out", st.bytesOut.Load())
}

// redactQuery returns the path with query values removed (keys kept).
func redactQuery(u *url.URL) string {
	p := u.EscapedPath()
	if u.RawQuery == "" {
		return p
	}
	var keys []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k+"=")
	}
	return p + "?" + strings.Join(keys, "&")
}

// encoded reports whether h gives the body a content coding: any coding
// but identity, in any of its Content-Encoding fields (clients apply them
// all, not only the first).
func encoded(h http.Header) bool {
	for _, field := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(field, ",") {
			if c = strings.TrimSpace(c); c != "" && !asciiEqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// hostOnly drops a port and brackets from h, then normalizes it
// (policy.NormalizeHost: ASCII letters lowercased only, so the Kelvin sign
// in an HTTP/2 :authority "\u212a.test" does not pass for k.test, which
// the upstream leg would send as Host "xn--62g.test", another name).
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return policy.NormalizeHost(strings.TrimPrefix(strings.TrimSuffix(h, "]"), "["))
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	n      *atomic.Int64
	status int
	// scrub cleans informational (1xx) headers, which the proxy copies
	// from the upstream without ModifyResponse.
	scrub *Scrubber
	// batch, if not nil, gathers the TLS records of one Write into one
	// write to the socket (HTTP/1 over an intercepted flow only: there
	// the handler is the connection's only writer).
	batch *batchConn
}

func (c *countingWriter) WriteHeader(code int) {
	if code < 200 {
		c.scrub.Header(c.ResponseWriter.Header())
	}
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	if code == http.StatusSwitchingProtocols {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.batch.hold()
	n, err := c.ResponseWriter.Write(p)
	if ferr := c.batch.release(); err == nil && ferr != nil {
		err = ferr
	}
	c.n.Add(int64(n))
	return n, err
}

// trailerScrubber scrubs resp's trailers when the body reaches its end:
// only then are they known (the transport fills resp.Trailer, and may
// replace a nil map, just before the body returns io.EOF).
type trailerScrubber struct {
	io.ReadCloser
	s    *Scrubber
	resp *http.Response
}

func (t *trailerScrubber) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.s.Header(t.resp.Trailer)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
