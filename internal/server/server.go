// Package server assembles a running standin: it opens the data directory
// (lock, master key, store), builds the API and serves it on loopback TCP and
// on a unix socket in the data directory.
package server

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/standin/standin/internal/api"
)

var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567")

// Server is a configured standin server.
type Server struct {
	Config Config
	// Logger receives the server's logs. If nil, slog.Default() is used.
	Logger *slog.Logger
	// Ready, if non-nil, is called once the listeners are open, with the
	// TCP address ("" when TCP is off) and the socket path.
	Ready func(tcpAddr, socket string)
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
	d, err := OpenData(ctx, cfg.DataDir, logger)
	if err != nil {
		return err
	}
	defer d.Close()

	token, err := loadOrCreateToken(cfg.DataDir)
	if err != nil {
		return err
	}
	h := (&api.Server{
		Store:  d.Store,
		Vault:  d.Vault,
		Minter: d.Minter,
		Token:  token,
		Logger: logger.With("component", "api"),
	}).Handler()

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
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	logger.Info("standin serving", "api", tcpAddr, "socket", sock, "data_dir", cfg.DataDir,
		"master_key", d.Keyring.Source().String(), "master_key_id", d.Keyring.CurrentID())
	if s.Ready != nil {
		s.Ready(tcpAddr, sock)
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
