// Package audit records every request made (or refused) with a secret. The
// gateway hands records to a Writer without blocking; the Writer stores them
// in batches. At most FlushInterval of records is lost if the process dies.
package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/standin/standin/internal/store"
)

// Appender is the part of the store the Writer needs.
type Appender interface {
	AppendActivity(ctx context.Context, recs []store.Activity) error
}

// Writer batches activity records into the store.
type Writer struct {
	Store Appender
	// FlushInterval bounds how long a record waits. Default 200ms.
	FlushInterval time.Duration
	// BatchSize flushes early when this many wait. Default 256.
	BatchSize int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Record queues rec. It never blocks: if the queue (64k records) is full the
// record is counted as dropped and logged.
func (w *Writer) Record(rec store.Activity) { panic("TODO") }

// Run writes batches until ctx is done, then flushes what is queued.
func (w *Writer) Run(ctx context.Context) error { panic("TODO") }

// Flush writes everything queued so far and returns when it is stored.
func (w *Writer) Flush(ctx context.Context) error { panic("TODO") }
