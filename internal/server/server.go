// Package server assembles a running standin: it opens the data directory
// (lock, master key, store), builds the API and serves it on loopback TCP and
// on a unix socket in the data directory.
package server

import (
	"context"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/standin/standin/internal/api"
	"github.com/standin/standin/internal/audit"
	"github.com/standin/standin/internal/gateway"
)

var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567")

// Addrs are where a running server listens; "" when off.
type Addrs struct {
	API, Socket, Proxy string
}

// Server is a configured standin server.
type Server struct {
	Config Config
	// Logger receives the server's logs. If nil, slog.Default() is used.
	Logger *slog.Logger
	// Ready, if non-nil, is called once the listeners are open.
	Ready func(Addrs)
	// Gateway, if non-nil, is called with the gateway once it exists
	// (the sandbox runtime hands it connections; tests use it too).
	Gateway func(*gateway.Gateway)

	// onRunner, if non-nil, is called with the sandbox runner once it
	// exists (tests and benchmarks watch the pool with it).
	onRunner func(*runner)
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := s.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := harden(); err != nil {
		return err
	}
	// net/http's Transport logs to the standard logger, quoting what an
	// upstream sent; it goes to our log with the quotes redacted. Process
	// wide: the last server started in a process (tests run several) gets
	// the lines.
	log.SetOutput(gateway.StdLogWriter(logger.Handler()))
	log.SetFlags(0)
	d, err := OpenData(ctx, cfg.DataDir, logger)
	if err != nil {
		return err
	}
	defer d.Close()

	token, err := loadOrCreateToken(cfg.DataDir)
	if err != nil {
		return err
	}
	gw, aud, err := newGateway(cfg, d, logger)
	if err != nil {
		return err
	}
	// The audit writer stops last (deferred first): the sandboxes, the
	// proxy and the gateway stop before it, so the records of requests
	// that finish during shutdown are written, not dropped.
	audCtx, stopAudit := context.WithCancel(context.Background())
	audDone := make(chan struct{})
	go func() {
		defer close(audDone)
		if err := aud.Run(audCtx); err != nil {
			logger.Error("activity records not written", "error", err)
		}
	}()
	defer func() { stopAudit(); <-audDone }()
	defer gw.Close()
	if s.Gateway != nil {
		s.Gateway(gw)
	}
	rt, err := newRuntime(cfg, logger)
	if err != nil {
		return err
	}
	if c, ok := rt.(io.Closer); ok {
		defer c.Close() // after stopAll: spare processes of the runtime
	}
	var run *runner
	var sandboxes api.Runner // stays a nil interface without a runtime
	changed := gw.Invalidate
	if rt == nil {
		logger.Warn(`no sandbox runtime ("runtime": "none"): sandboxes are records only; standin runs none of them and exec is refused`)
	} else {
		run = newRunner(rt, gw, d.Store, cfg.DataDir, logger)
		run.maxFlows = cfg.MaxFlows
		if err := run.cleanup(ctx); err != nil {
			return err
		}
		defer run.stopAll(context.Background())
		run.startPool(cfg.Pool)
		if s.onRunner != nil {
			s.onRunner(run)
		}
		sandboxes = run
		changed = func() { gw.Invalidate(); run.invalidate() }
	}
	proxyAddr := ""
	var proxyL net.Listener
	if cfg.Gateway.Listen != "off" {
		proxyL, err = net.Listen("tcp", cfg.Gateway.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (set \"gateway.listen\" in the config to a free port)", cfg.Gateway.Listen, err)
		}
		proxyAddr = proxyL.Addr().String()
	}
	apiSrv := &api.Server{
		Store:   d.Store,
		Vault:   d.Vault,
		Minter:  d.Minter,
		Token:   token,
		Logger:  logger.With("component", "api"),
		Changed: changed,
		Proxy:   proxyAddr,
		CAFile:  filepath.Join(cfg.DataDir, "ca.pem"),
		CACert:  gwCA(gw),

		Sandboxes: sandboxes,
	}
	// Deferred after stopAll, so it runs first: no timeout fires while the
	// sandboxes are being stopped.
	defer apiSrv.Close()
	h := apiSrv.Handler()

	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	sock := filepath.Join(cfg.DataDir, SocketFile)
	ul, err := listenUnix(sock)
	if err != nil {
		return err
	}
	listeners = append(listeners, ul)
	tcpAddr := ""
	if cfg.Listen != "off" {
		tl, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (set \"listen\" in the config to a free port)", cfg.Listen, err)
		}
		listeners = append(listeners, tl)
		tcpAddr = tl.Addr().String()
	}

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, len(listeners)+1)
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	gwCtx, stopGW := context.WithCancel(ctx)
	defer stopGW()
	if proxyL != nil {
		go func() {
			if err := gw.ServeProxy(gwCtx, proxyL); err != nil {
				errc <- fmt.Errorf("gateway proxy: %w", err)
			}
		}()
	}
	logger.Info("standin serving", "api", tcpAddr, "socket", sock, "proxy", proxyAddr, "data_dir", cfg.DataDir,
		"master_key", d.Keyring.Source().String(), "master_key_id", d.Keyring.CurrentID(), "runtime", cfg.Runtime, "pool", cfg.Pool)
	if s.Ready != nil {
		s.Ready(Addrs{API: tcpAddr, Socket: sock, Proxy: proxyAddr})
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	os.Remove(sock)
	logger.Info("standin stopped")
	return nil
}

// listenUnix listens on path, replacing a stale socket left by a crash (the
// data dir lock proves no live server owns it), with mode 0600.
func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return l, nil
}

// newGateway builds the gateway and its audit writer from the config.
func newGateway(cfg Config, d *Data, logger *slog.Logger) (*gateway.Gateway, *audit.Writer, error) {
	ca, err := gateway.LoadOrCreateCA(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("interception CA: %w", err)
	}
	guard, err := gateway.ParseGuard(cfg.Gateway.DialGuard)
	if err != nil {
		return nil, nil, err
	}
	overrides, err := gateway.ParseOverrides(cfg.Gateway.Hosts)
	if err != nil {
		return nil, nil, err
	}
	var roots *x509.CertPool
	if cfg.Gateway.UpstreamCAFile != "" {
		roots, err = x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.Gateway.UpstreamCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway.upstreamCAFile: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("gateway.upstreamCAFile %s: no PEM certificate in it", cfg.Gateway.UpstreamCAFile)
		}
	}
	dialer := &gateway.Dialer{Overrides: overrides, Guard: guard}
	if cfg.Gateway.Resolver != "" {
		dialer.Resolver = dnsResolver(cfg.Gateway.Resolver)
	}
	aud := &audit.Writer{Store: d.Store, Logger: logger.With("component", "audit")}
	gw, err := gateway.New(gateway.Config{
		Store: d.Store, Vault: d.Vault, Minter: d.Minter, CA: ca,
		Dialer:        dialer,
		Audit:         aud,
		UpstreamRoots: roots,
		Logger:        logger.With("component", "gateway"),
	})
	if err != nil {
		return nil, nil, err
	}
	return gw, aud, nil
}

// dnsResolver sends every DNS query to the server at addr (host:port), over
// UDP or TCP as the Go resolver chooses; /etc/hosts still comes first.
func dnsResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func gwCA(gw *gateway.Gateway) []byte { return gw.CA().CertPEM() }
