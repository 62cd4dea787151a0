package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
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
}

// serveMITM handles one request on an intercepted flow.
func (g *Gateway) serveMITM(w http.ResponseWriter, r *http.Request) {
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci == nil {
		http.Error(w, "no flow", http.StatusInternalServerError)
		return
	}
	st := &reqState{start: g.cfg.Now()}
	status := g.handle(w, r, ci, st)
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

	// Pairs to scrub: every secret of this sandbox that could have been
	// sent to this host, in this or an earlier request.
	var pairs []ScrubPair
	for _, b := range sb.bindings {
		if len(catalog.SlotsFor(b.Secret.Hosts, host)) == 0 {
			continue
		}
		v, err := g.value(b.Secret)
		if err != nil {
			g.logger.Error("unseal for scrubbing", "secret", b.Secret.Name, "error", err)
			return refuse(w, st, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
		}
		pairs = append(pairs, ScrubPair{Value: v.Reveal(), StandIn: []byte(b.StandIn)})
	}
	scrub := NewScrubber(pairs)

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
		},
		Transport:     g.transport(sb),
		FlushInterval: -1, // stream: every write reaches the sandbox at once
		ErrorLog:      slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
		ModifyResponse: func(resp *http.Response) error {
			st.upstream = resp.StatusCode
			if len(pairs) == 0 {
				return nil
			}
			scrub.Header(resp.Header)
			scrub.Header(resp.Trailer)
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil // the body is the WebSocket stream itself
			}
			resp.Body = scrub.Reader(resp.Body)
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			upErr = err
			var de *DialError
			if errors.As(err, &de) {
				st.reason = de.Reason
				status = writeError(w, http.StatusBadGateway, CodeBlocked, "upstream refused: "+de.Reason)
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
	cw := &countingWriter{ResponseWriter: w, n: &st.bytesIn}
	rp.ServeHTTP(cw, out)
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
		switch {
		case b == nil && !g.ix.wasStandIn(sb, h, tok):
			// Not a stand-in of this sandbox (a user name, another
			// alternative slot's reading of the same header, the
			// agent's own credential): left as it is.
			continue
		case b == nil:
			// A stand-in whose binding is gone: fail closed.
			return CodeRevoked, http.StatusForbidden, ReasonRevoked
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

// hostOnly lowercases h and drops a port and a trailing dot.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimPrefix(strings.TrimSuffix(h, "]"), "[")
	return strings.TrimSuffix(strings.ToLower(h), ".")
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
}

func (c *countingWriter) WriteHeader(code int) {
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
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

var _ = fmt.Sprint
