package server

import (
	"context"
	"log"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/internal/testutil"
)

// TestRunRedirectsStdLog: once a server runs, the standard logger (where
// net/http's Transport quotes what an upstream sent) writes to the
// server's log with quoted strings redacted, not to stderr as they came.
func TestRunRedirectsStdLog(t *testing.T) {
	prev, flags := log.Writer(), log.Flags()
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	var logs testutil.SyncBuffer
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Runtime = RuntimeNone
	cfg.Listen = "off"
	cfg.Gateway.Listen = "off"
	cfg.Gateway.DialGuard = []string{"127.0.0.0/8"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	s := &Server{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Ready: func(a Addrs) { ready <- a }}
	go func() { done <- s.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start within 30s")
	}
	const echoed = "sk-echoed-by-an-upstream-0123456789"
	log.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", "key="+echoed, nil)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("server Run: %v", err)
	}
	got := logs.String()
	if strings.Contains(got, echoed) || !strings.Contains(got, "Unsolicited response") || !strings.Contains(got, "(redacted)") {
		t.Errorf("server log = %q, want the standard logger's line with its quoted part redacted", got)
	}
}
