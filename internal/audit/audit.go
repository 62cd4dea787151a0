// Package audit records every request made (or refused) with a secret. The
// gateway hands records to a Writer without blocking; the Writer stores them
// in batches. At most FlushInterval of records is lost if the process dies.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/standin/standin/internal/store"
)

// Appender is the part of the store the Writer needs.
type Appender interface {
	AppendActivity(ctx context.Context, recs []store.Activity) error
}

// ErrStopped is returned by Flush once Run has returned.
var ErrStopped = errors.New("audit writer stopped")

// Defaults and limits.
const (
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultBatchSize     = 256
	// QueueSize is how many records may wait before Record drops.
	QueueSize = 1 << 16

	// writeTimeout bounds one AppendActivity call while running.
	writeTimeout = 10 * time.Second
	// finalTimeout bounds the flush at shutdown, so a stuck store cannot
	// hold the process open.
	finalTimeout = 5 * time.Second
	// writeAttempts is how often a batch is tried before it is dropped;
	// the queue keeps filling meanwhile, so this is kept short.
	writeAttempts = 4
	// dropWarnEvery rate-limits the "records dropped" warning: a full
	// queue means every request drops, and one line per request would
	// bury the log.
	dropWarnEvery = 10 * time.Second
)

// Writer batches activity records into the store. Set the fields, start
// Run, and call Record from any goroutine; Record may be called before Run
// starts (records wait in the queue).
type Writer struct {
	Store Appender
	// FlushInterval bounds how long a record waits. Default 200ms.
	FlushInterval time.Duration
	// BatchSize flushes early when this many wait. Default 256.
	BatchSize int
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// Set by tests before first use; zero means the default.
	queueSize int
	retryBase time.Duration // first backoff between write attempts, default 100ms

	once     sync.Once
	queue    chan store.Activity
	flushReq chan chan error
	done     chan struct{} // closed when Run returns
	running  atomic.Bool
	stopped  atomic.Bool // Run is shutting down: Record drops
	dropped  atomic.Int64
	lastWarn atomic.Int64 // unix nanos of the last drop warning
	log      *slog.Logger
}

func (w *Writer) init() {
	w.once.Do(func() {
		n := w.queueSize
		if n <= 0 {
			n = QueueSize
		}
		w.queue = make(chan store.Activity, n)
		w.flushReq = make(chan chan error)
		w.done = make(chan struct{})
		w.log = w.Logger
		if w.log == nil {
			w.log = slog.Default()
		}
		w.log = w.log.With("component", "audit")
	})
}

// Record queues rec. It never blocks: if the queue (64k records) is full the
// record is counted as dropped and logged. Records made once Run is
// shutting down are dropped too.
func (w *Writer) Record(rec store.Activity) {
	w.init()
	if w.stopped.Load() {
		w.drop()
		return
	}
	select {
	case w.queue <- rec:
	default:
		w.drop()
	}
}

// Dropped is how many records were dropped since the Writer was made:
// refused by a full queue, recorded after shutdown, or lost to store
// errors.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

func (w *Writer) drop() {
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	last := w.lastWarn.Load()
	if last != 0 && now-last < int64(dropWarnEvery) {
		return
	}
	if w.lastWarn.CompareAndSwap(last, now) {
		w.log.Warn("audit records dropped", "dropped_total", n, "queue", cap(w.queue))
	}
}

// Run writes batches until ctx is done, then flushes what is queued (with
// its own timeout, since ctx is already cancelled). It returns the error of
// that final flush, if any; store errors while running are retried, then
// logged and the batch dropped, so Run does not stop for them.
func (w *Writer) Run(ctx context.Context) error {
	w.init()
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("audit writer: Run called twice")
	}
	defer close(w.done)

	interval := w.FlushInterval
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	size := w.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	// Writes outlive ctx's cancellation: a batch taken off the queue is
	// finished rather than lost halfway.
	wctx := context.WithoutCancel(ctx)

	timer := time.NewTimer(interval)
	timer.Stop()
	batch := make([]store.Activity, 0, size)
	write := func() error {
		timer.Stop()
		left, err := w.write(wctx, ctx.Done(), batch, size)
		// left is only non-empty when shutting down; the final flush
		// takes it.
		batch = append(make([]store.Activity, 0, size), left...)
		return err
	}
	for {
		select {
		case rec := <-w.queue:
			if len(batch) == 0 {
				timer.Reset(interval)
			}
			batch = append(batch, rec)
			if len(batch) >= size {
				write()
			}
		case <-timer.C:
			write()
		case ack := <-w.flushReq:
			// Everything recorded before Flush was called is in the
			// queue now; take that much, not what keeps arriving.
			for range len(w.queue) {
				batch = append(batch, <-w.queue)
			}
			ack <- write()
		case <-ctx.Done():
			w.stopped.Store(true)
			for range len(w.queue) {
				batch = append(batch, <-w.queue)
			}
			fctx, cancel := context.WithTimeout(wctx, finalTimeout)
			defer cancel()
			_, err := w.write(fctx, nil, batch, size)
			if n := w.dropped.Load(); n > 0 {
				w.log.Warn("audit writer stopped with records dropped", "dropped_total", n)
			}
			if err != nil {
				return fmt.Errorf("final audit flush: %w", err)
			}
			return nil
		}
	}
}

// write stores recs in chunks of size, each retried with backoff. A chunk
// that still fails is logged and dropped; the last such error is returned.
// If quit closes while a chunk waits to be retried, write stops and returns
// the records not yet stored, for the final flush to take.
func (w *Writer) write(ctx context.Context, quit <-chan struct{}, recs []store.Activity, size int) (left []store.Activity, err error) {
	for len(recs) > 0 {
		n := min(size, len(recs))
		chunk := recs[:n:n]
		interrupted, werr := w.writeChunk(ctx, quit, chunk)
		if interrupted {
			return recs, werr
		}
		recs = recs[n:]
		if werr != nil {
			w.dropped.Add(int64(len(chunk)))
			w.log.Error("audit records lost", "records", len(chunk), "error", werr)
			err = werr
		}
	}
	return nil, err
}

// writeChunk tries to store chunk up to writeAttempts times. interrupted
// means quit closed during a backoff.
func (w *Writer) writeChunk(ctx context.Context, quit <-chan struct{}, chunk []store.Activity) (interrupted bool, err error) {
	backoff := w.retryBase
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, writeTimeout)
		err = w.Store.AppendActivity(actx, chunk)
		cancel()
		if err == nil || attempt == writeAttempts {
			return false, err
		}
		w.log.Warn("audit write failed, retrying", "attempt", attempt, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, err
		case <-quit:
			t.Stop()
			return true, err
		}
		backoff *= 2
	}
}

// Flush writes everything queued so far and returns when it is stored: every
// record whose Record call returned before Flush was called. It needs Run to
// be running; it returns ErrStopped once Run has returned, and the store's
// error if a batch could not be written.
func (w *Writer) Flush(ctx context.Context) error {
	w.init()
	ack := make(chan error, 1) // buffered: Run never waits for a caller that gave up
	select {
	case w.flushReq <- ack:
	case <-w.done:
		return ErrStopped
	case <-ctx.Done():
		return fmt.Errorf("flush audit records: %w", ctx.Err())
	}
	select {
	case err := <-ack:
		if err != nil {
			return fmt.Errorf("flush audit records: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush audit records: %w", ctx.Err())
	}
}
