package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/standin/standin/internal/audit"
	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/vault"
)

// Gateway is the egress gateway. Create it with New, serve the explicit
// proxy with ServeProxy, hand runtime connections to HandleConn, and call
// Invalidate after every write to sandboxes, secrets or bindings.
type Gateway struct {
	cfg    Config
	logger *slog.Logger
	ix     *index
	// debugLog is logger at debug level as a log.Logger, for net/http's
	// error logs.
	debugLog *log.Logger

	mitm     *http.Server
	mitmConn chanListener
	conns    sync.Map // *tls.Conn -> *connInfo
	live     sync.Map // *liveConn -> struct{}: open upstream connections
	reqs     sync.Map // *liveRequest -> struct{}: requests in flight with real values

	mu         sync.Mutex
	values     map[string]cachedValue     // secret id -> unsealed value
	transports map[string]*http.Transport // sandbox id -> upstream pool
	scrubbers  map[string]*Scrubber       // sandbox id + host -> scrubber
}

// Config holds a Gateway's parts. Store, Vault, Minter, CA and Dialer are
// required.
type Config struct {
	Store  Store
	Vault  *vault.Vault
	Minter *standin.Minter
	CA     *CA
	Dialer *Dialer
	// Audit receives one record per request that used or tried to use a
	// secret. If nil, no records are kept (logs still are).
	Audit *audit.Writer
	// UpstreamRoots verifies upstream certificates. If nil, the system
	// roots are used.
	UpstreamRoots *x509.CertPool
	// Logger gets one line per proxied request. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

type cachedValue struct {
	version int
	v       vault.Value
}

// New returns a Gateway. Close it to stop its internal server.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil || cfg.Vault == nil || cfg.Minter == nil || cfg.CA == nil || cfg.Dialer == nil {
		return nil, errors.New("new gateway: Store, Vault, Minter, CA and Dialer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gateway{
		cfg:        cfg,
		logger:     cfg.Logger,
		ix:         &index{store: cfg.Store, minter: cfg.Minter},
		values:     map[string]cachedValue{},
		transports: map[string]*http.Transport{},
		scrubbers:  map[string]*Scrubber{},
		mitmConn:   newChanListener(),
		debugLog:   slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	g.mitm = &http.Server{
		Handler:           http.HandlerFunc(g.serveMITM),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          g.debugLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if ci, ok := g.conns.Load(c); ok {
				return context.WithValue(ctx, connInfoKey{}, ci)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				g.conns.Delete(c)
			}
		},
	}
	go g.mitm.Serve(g.mitmConn)
	return g, nil
}

// Close stops the gateway's internal server and closes upstream pools.
func (g *Gateway) Close() error {
	err := g.mitm.Close()
	g.mu.Lock()
	for _, t := range g.transports {
		t.CloseIdleConnections()
	}
	g.transports = map[string]*http.Transport{}
	g.mu.Unlock()
	return err
}

// Invalidate makes the next request read sandboxes, bindings, rules and
// secrets afresh: a detach, delete or rotation takes effect at once. Cached
// values are wiped and upstream pools (dialed under old rules) dropped;
// open upstream connections that the new rules deny are closed, and
// requests in flight whose binding is gone are cut (live.go).
func (g *Gateway) Invalidate() {
	g.ix.invalidate()
	g.mu.Lock()
	for _, cv := range g.values {
		cv.v.Wipe()
	}
	g.values = map[string]cachedValue{}
	g.scrubbers = map[string]*Scrubber{}
	old := g.transports
	g.transports = map[string]*http.Transport{}
	g.mu.Unlock()
	for _, t := range old {
		t.CloseIdleConnections()
	}
	g.rejudge()
}

// value returns the secret's real value: the one place the vault unseals.
func (g *Gateway) value(sec *secretInfo) (vault.Value, error) {
	g.mu.Lock()
	cv, ok := g.values[sec.ID]
	g.mu.Unlock()
	if ok && cv.version == sec.Version {
		return cv.v, nil
	}
	v, err := g.cfg.Vault.Unseal(sec.ID, sec.Version, sec.Sealed)
	if err != nil {
		return vault.Value{}, fmt.Errorf("unseal secret %s: %w", sec.ID, err)
	}
	g.mu.Lock()
	g.values[sec.ID] = cachedValue{version: sec.Version, v: v}
	g.mu.Unlock()
	return v, nil
}

// transport returns the sandbox's upstream connection pool. Each sandbox
// has its own, since a pooled connection was dialed under one sandbox's
// rules. It speaks HTTP/2 where the upstream offers it (gRPC, trailers),
// else HTTP/1.1; upgrade requests (WebSocket) go over HTTP/1.1.
func (g *Gateway) transport(snap *snapshot, sb *sandboxInfo) *http.Transport {
	key := sb.ID
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.transports[key]; t != nil {
		return t
	}
	t := g.newTransport(snap, sb)
	g.transports[key] = t
	return t
}

// newTransport returns an upstream connection pool for sandbox sb that
// dials under its rules in snap.
func (g *Gateway) newTransport(snap *snapshot, sb *sandboxInfo) *http.Transport {
	rules, id := sb.Rules, sb.ID
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c, err := g.cfg.Dialer.Dial(ctx, host, port, rules)
			if err != nil {
				return nil, err
			}
			if c, err = g.track(c, snap, id, host, nil); err != nil {
				return nil, err
			}
			return &readAheadConn{Conn: c}, nil
		},
		TLSClientConfig:       &tls.Config{RootCAs: g.cfg.UpstreamRoots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The sandbox's own Accept-Encoding goes upstream; the gateway
		// never decompresses (streams stay byte for byte).
		DisableCompression: true,
		// Large buffers: fewer, fuller reads and TLS records on bulk
		// transfers.
		ReadBufferSize:  64 << 10,
		WriteBufferSize: 64 << 10,
		// Let HTTP/2 upstreams send DATA frames of up to 256 KiB rather
		// than 16 KiB: a frame costs a Go upstream a goroutine and an
		// extra small TLS record, and costs us a pass of the read loop;
		// bulk downloads took about a quarter less CPU in all (gateway,
		// upstream and client). Each upstream connection that gets such
		// frames keeps a read buffer that large.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 256 << 10},
	}
}

// chanListener is a net.Listener fed with already-handshaken TLS
// connections, so one http.Server (HTTP/1.1 and HTTP/2) serves every
// intercepted flow.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   *sync.Once
}

func newChanListener() chanListener {
	return chanListener{ch: make(chan net.Conn), closed: make(chan struct{}), once: new(sync.Once)}
}

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// push hands c to the server; false if the gateway is closed.
func (l chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// CA is the gateway's interception CA.
func (g *Gateway) CA() *CA { return g.cfg.CA }
