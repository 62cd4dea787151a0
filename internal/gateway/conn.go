package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/standin/standin/internal/policy"
)

// ConnMeta describes a connection the sandbox runtime hands over.
type ConnMeta struct {
	// SandboxID is the sandbox the connection comes from.
	SandboxID string
	// Dst is the destination the sandbox connected to.
	Dst netip.AddrPort
	// Name is the host name the sandbox's DNS answered Dst for, "" if the
	// sandbox connected to an address it did not look up through us.
	Name string
}

// connInfo travels with an intercepted connection into the HTTP server.
type connInfo struct {
	sandboxID string
	host      string // the name the flow was opened for (TLS name)
	port      string
	scheme    string // "https" or "http"
	// batch is the intercepted flow's socket side, nil for plain HTTP.
	batch *batchConn
}

type connInfoKey struct{}

// Fixed reasons for refused flows and requests (tests assert them).
const (
	ReasonSNIMismatch   = "TLS server name does not match the destination"
	ReasonHostMismatch  = "Host header does not match the TLS server name"
	ReasonRuleDenied    = "destination denied by network rules"
	ReasonUnknownSB     = "unknown sandbox"
	ReasonRevoked       = "stand-in is not active for this sandbox and host"
	ReasonAmbiguous     = "several credentials in one auth slot"
	ReasonPlainHTTP     = "credential over plain HTTP refused"
	ReasonUnavailable   = "secret store or vault unavailable"
	ReasonConnectTunnel = "CONNECT inside an intercepted flow"
	ReasonUpstream      = "upstream unreachable"
	ReasonRulesChanged  = "destination denied by the new network rules"
)

// HandleConn serves one connection from a sandbox (entry point b). It
// returns when the connection is done.
func (g *Gateway) HandleConn(ctx context.Context, c net.Conn, m ConnMeta) {
	host := m.Name
	if host == "" {
		host = m.Dst.Addr().Unmap().String()
	}
	g.handleFlow(ctx, c, m.SandboxID, host, strconv.Itoa(int(m.Dst.Port())), m.Name != "")
}

// handleFlow serves a flow from sandbox sandboxID to host:port. named says
// whether host is a name the sandbox asked for (CONNECT target or DNS
// answer) rather than a bare address.
func (g *Gateway) handleFlow(ctx context.Context, c net.Conn, sandboxID, host, port string, named bool) {
	log := flowLog{l: g.logger, attrs: []any{"sandbox_id", sandboxID, "host", host, "port", port}}
	snap, err := g.ix.get(ctx)
	if err != nil {
		log.Error("flow refused", "reason", ReasonUnavailable, "error", err)
		c.Close()
		return
	}
	sb := snap.sandboxes[sandboxID]
	if sb == nil {
		log.Warn("flow refused", "reason", ReasonUnknownSB)
		c.Close()
		return
	}
	log = log.with("sandbox", sb.Name)

	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	var sni string
	var isTLS, isHTTP bool
	var prefix []byte
	switch {
	case first[0] == 0x16: // TLS handshake record
		isTLS = true
		sni, prefix, err = readClientHello(br)
		if err != nil {
			log.Info("flow refused", "reason", "bad TLS client hello", "error", err)
			c.Close()
			return
		}
	default:
		isHTTP = looksLikeHTTP(br)
	}
	c.SetReadDeadline(time.Time{})
	if isTLS {
		sni = policy.NormalizeHost(sni)
		switch {
		case sni == "":
		case !named:
			// The sandbox dialed an address it did not resolve through
			// us: take the name from SNI, and dial that name ourselves.
			host = sni
			log = log.with("sni", sni) // the rules judge this name
		case sni != host:
			log.Warn("flow refused", "reason", ReasonSNIMismatch, "sni", sni)
			c.Close()
			return
		}
	}
	dest := policy.Dest{Host: host}
	if a, err := netip.ParseAddr(host); err == nil {
		dest = policy.Dest{Addr: a.Unmap()}
	}
	if d := sb.Rules.Decide(dest); !d.Allow {
		log.Info("flow refused", "reason", ReasonRuleDenied, "rule", d.Rule, "decision", d.Reason)
		c.Close()
		return
	}

	src := &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(prefix), br)}
	switch {
	case isTLS && (sb.Inspect || sb.interceptsHost(host)):
		g.intercept(ctx, src, connInfo{sandboxID: sb.ID, host: host, port: port, scheme: "https"}, log)
	case isHTTP && !isTLS:
		// Plain HTTP is always parsed: a stand-in in it is refused
		// rather than sent in clear.
		ci := &connInfo{sandboxID: sb.ID, host: host, port: port, scheme: "http"}
		g.conns.Store(net.Conn(src), ci)
		if !g.mitmConn.push(src) {
			src.Close()
		}
	default:
		g.splice(ctx, src, snap, sb, host, port, log)
	}
}

// flowLog logs lines about one flow. Unlike slog.Logger.With, adding
// attributes formats nothing: most flows log no line at all.
type flowLog struct {
	l     *slog.Logger
	attrs []any
}

func (f flowLog) with(args ...any) flowLog {
	return flowLog{l: f.l, attrs: append(f.attrs[:len(f.attrs):len(f.attrs)], args...)}
}

func (f flowLog) Error(msg string, args ...any) { f.log(slog.LevelError, msg, args) }
func (f flowLog) Warn(msg string, args ...any)  { f.log(slog.LevelWarn, msg, args) }
func (f flowLog) Info(msg string, args ...any)  { f.log(slog.LevelInfo, msg, args) }

func (f flowLog) log(level slog.Level, msg string, args []any) {
	if f.l.Enabled(context.Background(), level) {
		f.l.Log(context.Background(), level, msg, append(f.attrs[:len(f.attrs):len(f.attrs)], args...)...)
	}
}

// intercept terminates TLS with a leaf for info.host and hands the
// connection to the HTTP server.
func (g *Gateway) intercept(ctx context.Context, c net.Conn, info connInfo, log interface {
	Info(string, ...any)
}) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return g.cfg.CA.Leaf(info.host)
		},
		// Full-size records from the first byte: the sandbox is on this
		// machine, so small early records only cost more writes.
		DynamicRecordSizingDisabled: true,
	}
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		// Plain X25519 when the sandbox offers it (every common client
		// does, with a key share): this leg never leaves the machine (a
		// TUN device or loopback). A post-quantum key share guards
		// recorded traffic, and no one can record this link who could not
		// read the sandbox's memory anyway; the hybrid exchange cost
		// sandbox and gateway together about 70 µs of CPU per handshake
		// (11 %). Go's server picks a post-quantum group whenever both
		// sides have one, so it is left out of the list. The upstream leg
		// keeps Go's defaults, post-quantum included.
		if !slices.Contains(hi.SupportedCurves, tls.X25519) {
			return nil, nil
		}
		c := cfg.Clone()
		c.GetConfigForClient = nil
		c.CurvePreferences = []tls.CurveID{tls.X25519}
		return c, nil
	}
	bc := &batchConn{Conn: c}
	info.batch = bc
	tc := tls.Server(bc, cfg)
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		log.Info("flow refused", "reason", "TLS handshake with sandbox failed", "error", err)
		c.Close()
		return
	}
	g.conns.Store(net.Conn(tc), &info)
	if !g.mitmConn.push(tc) {
		tc.Close()
	}
}

// splice connects to host:port by name and copies bytes both ways,
// without looking inside (an allowed flow with no secret). Both sides are
// closed if a rules change denies the flow.
func (g *Gateway) splice(ctx context.Context, c net.Conn, snap *snapshot, sb *sandboxInfo, host, port string, log interface {
	Info(string, ...any)
}) {
	defer c.Close()
	up, err := g.cfg.Dialer.Dial(ctx, host, port, sb.Rules)
	if err != nil {
		log.Info("flow refused", "reason", ReasonUpstream, "error", err)
		return
	}
	if up, err = g.track(up, snap, sb.ID, host, c); err != nil {
		log.Info("flow refused", "reason", ReasonRulesChanged, "error", err)
		return
	}
	defer up.Close()
	log.Info("flow spliced")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, c)
		closeWrite(up)
	}()
	io.Copy(c, up)
	closeWrite(c)
	wg.Wait()
}

func closeWrite(c net.Conn) {
	type cw interface{ CloseWrite() error }
	if x, ok := c.(cw); ok {
		x.CloseWrite()
		return
	}
	if pc, ok := c.(*prefixConn); ok {
		closeWrite(pc.Conn)
		return
	}
	c.Close()
}

// prefixConn reads from r (bytes already read from Conn, then the rest)
// and writes to Conn.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// readClientHello reads the TLS ClientHello from br without answering it,
// and returns its server name and the bytes it consumed (to replay).
func readClientHello(br *bufio.Reader) (sni string, consumed []byte, err error) {
	var rec bytes.Buffer
	pc := &peekOnlyConn{r: io.TeeReader(br, &rec)}
	errDone := errors.New("client hello read")
	srv := tls.Server(pc, &tls.Config{
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = hi.ServerName
			return nil, errDone
		},
	})
	err = srv.Handshake()
	if !errors.Is(err, errDone) {
		if err == nil {
			err = errors.New("unexpected handshake success")
		}
		return "", nil, err
	}
	return sni, rec.Bytes(), nil
}

// peekOnlyConn lets crypto/tls parse a ClientHello: reads come from r,
// writes (the alert sent when parsing stops) go nowhere.
type peekOnlyConn struct {
	net.Conn
	r io.Reader
}

func (p *peekOnlyConn) Read(b []byte) (int, error)       { return p.r.Read(b) }
func (p *peekOnlyConn) Write(b []byte) (int, error)      { return len(b), nil }
func (p *peekOnlyConn) Close() error                     { return nil }
func (p *peekOnlyConn) SetDeadline(time.Time) error      { return nil }
func (p *peekOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (p *peekOnlyConn) SetWriteDeadline(time.Time) error { return nil }
func (p *peekOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *peekOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// looksLikeHTTP reports whether the stream starts with an HTTP/1 method.
// It waits for another byte only while what it has is a proper prefix of
// a method: a protocol whose first message is short ("PING\r\n") and
// waits for an answer must not stall until the read deadline. Ambiguous
// bytes at the deadline or EOF count as HTTP, whose path refuses a
// stand-in in clear.
func looksLikeHTTP(br *bufio.Reader) bool {
	for n := 1; n <= len("CONNECT "); n++ {
		b, err := br.Peek(n)
		prefix := false
		for _, m := range []string{"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "PATCH ", "OPTIONS ", "CONNECT "} {
			if bytes.HasPrefix(b, []byte(m)) {
				return true
			}
			prefix = prefix || (len(b) > 0 && bytes.HasPrefix([]byte(m), b))
		}
		if !prefix || err != nil {
			return prefix
		}
	}
	return false
}
