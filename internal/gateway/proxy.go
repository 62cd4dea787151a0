package gateway

import (
	"net/netip"

	"github.com/standin/standin/internal/policy"

	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// ServeProxy serves the explicit proxy (entry point a) on l until ctx is
// done: CONNECT for TLS (intercepted or spliced like any flow) and
// absolute-form plain HTTP. Every request must name its sandbox with
// Proxy-Authorization: Basic base64(<sandbox>:<proxy token>); else 407.
func (g *Gateway) ServeProxy(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(g.serveProxy),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// authenticate returns the sandbox id the proxy credential names.
func (g *Gateway) authenticate(r *http.Request) (string, bool) {
	auth := r.Header.Get("Proxy-Authorization")
	scheme, rest, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", false
	}
	name, tok, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", false
	}
	snap, err := g.ix.get(r.Context())
	if err != nil {
		return "", false
	}
	sb := snap.byName[name]
	if sb == nil {
		// Compare anyway, so timing does not tell names apart.
		subtle.ConstantTimeCompare([]byte(tok), []byte(g.cfg.Minter.ProxyToken("")))
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(g.cfg.Minter.ProxyToken(sb.ID))) != 1 {
		return "", false
	}
	return sb.ID, true
}

func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	// Without the store no credential can be checked: say so, rather than
	// a 407 that sends the sandbox looking for a wrong token.
	if _, err := g.ix.get(r.Context()); err != nil {
		g.logger.Error("load bindings", "error", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable)
		return
	}
	sbID, ok := g.authenticate(r)
	if !ok {
		w.Header().Set("Proxy-Authenticate", `Basic realm="standin"`)
		writeError(w, http.StatusProxyAuthRequired, "proxy_auth_required",
			"name the sandbox: Proxy-Authorization Basic <sandbox>:<token>, as printed by `standin sandbox env NAME`")
		return
	}
	if r.Method == http.MethodConnect {
		host, port, err := net.SplitHostPort(r.RequestURI)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "CONNECT target must be host:port")
			return
		}
		host = hostOnly(host)
		// Refuse a destination the rules forbid on the CONNECT itself: the
		// client gets a clear 403 and nothing is resolved or dialed.
		if snap, err := g.ix.get(r.Context()); err == nil {
			if sb := snap.sandboxes[sbID]; sb != nil {
				dest := policy.Dest{Host: host}
				if a, err := netip.ParseAddr(host); err == nil {
					dest = policy.Dest{Addr: a.Unmap()}
				}
				if d := sb.Rules.Decide(dest); !d.Allow {
					g.logger.Info("flow refused", "sandbox", sb.Name, "host", host, "port", port,
						"reason", ReasonRuleDenied, "rule", d.Rule, "decision", d.Reason)
					writeError(w, http.StatusForbidden, CodeBlocked, ReasonRuleDenied)
					return
				}
			}
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			c.Close()
			return
		}
		// A client may send its ClientHello before reading our answer;
		// what the server already buffered comes first.
		if brw.Reader.Buffered() > 0 {
			c = &prefixConn{Conn: c, r: io.MultiReader(brw.Reader, c)}
		}
		g.handleFlow(r.Context(), c, sbID, host, port, true)
		return
	}
	// Absolute-form plain HTTP: http://host/path.
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "a proxy request must be CONNECT host:port or an absolute http:// URL")
		return
	}
	host, port := hostOnly(r.URL.Host), r.URL.Port()
	if port == "" {
		port = "80"
	}
	ci := &connInfo{sandboxID: sbID, host: host, port: port, scheme: "http"}
	r.Header.Del("Proxy-Authorization")
	r = r.WithContext(context.WithValue(r.Context(), connInfoKey{}, ci))
	g.serveMITM(w, r)
}
