package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"time"
)

// StdLogWriter returns a writer for the standard logger (log.SetOutput)
// that passes each line to h at Warn level, with every quoted string in it
// replaced by "(redacted)". net/http's Transport writes to the standard
// logger and cannot be given another, and it quotes what an upstream sent
// ("Unsolicited response received on idle HTTP channel starting with
// %q"): an upstream that echoes a request can make that a real value.
// Set it with log.SetFlags(0): h adds the time.
func StdLogWriter(h slog.Handler) io.Writer { return stdLogWriter{h} }

type stdLogWriter struct{ h slog.Handler }

// quoted matches a Go-quoted string (%q), escapes included.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func (w stdLogWriter) Write(p []byte) (int, error) {
	ctx := context.Background()
	if !w.h.Enabled(ctx, slog.LevelWarn) {
		return len(p), nil
	}
	msg := quoted.ReplaceAllLiteral(bytes.TrimRight(p, "\n"), []byte(`"(redacted)"`))
	r := slog.NewRecord(time.Now(), slog.LevelWarn, string(msg), 0)
	r.AddAttrs(slog.String("logger", "std"))
	return len(p), w.h.Handle(ctx, r)
}
