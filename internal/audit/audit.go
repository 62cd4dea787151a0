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
	// QueueSize is how many records may wait (queued or being written)
	// before Record drops.
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
	// spareBatches is how many written batches are kept for reuse: one
	// being filled while one is written needs no allocation, and an idle
	// Writer holds no more than this.
	spareBatches = 2
)

// Writer batches activity records into the store. Set the fields, start
// Run, and call Record from any goroutine; Record may be called before Run
// starts (records wait in the queue).
//
// The queue is a list of batches of at most BatchSize records, allocated
// as records arrive and reused once written: an idle Writer holds almost
// nothing for the garbage collector to scan (a channel of QueueSize
// records was 14 MB), and only the first record and each full batch wake
// the writing goroutine.
type Writer struct {
	Store Appender
	// FlushInterval bounds how long a record waits. Default 200ms.
	FlushInterval time.Duration
	// BatchSize is the most records one AppendActivity call (one store
	// transaction) gets; the Writer writes as soon as this many wait.
	// Default 256.
	BatchSize int
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// Set by tests before first use; zero means the default.
	queueSize int
	retryBase time.Duration // first backoff between write attempts, default 100ms

	once     sync.Once
	size     int // BatchSize or its default
	limit    int // queueSize or its default
	wake     chan struct{}
	flushReq chan chan error
	done     chan struct{} // closed when Run returns
	running  atomic.Bool
	dropped  atomic.Int64
	lastWarn atomic.Int64 // unix nanos of the last drop warning
	log      *slog.Logger

	mu sync.Mutex
	// queue holds the records not yet taken by Run, oldest first; every
	// batch but the last is full.
	queue   [][]store.Activity
	queued  int                // records in queue
	writing int                // records taken by Run and not yet stored or dropped
	spare   [][]store.Activity // empty batches with capacity size
	stopped bool               // Run is shutting down: Record drops
}

func (w *Writer) init() {
	w.once.Do(func() {
		w.size = w.BatchSize
		if w.size <= 0 {
			w.size = DefaultBatchSize
		}
		w.limit = w.queueSize
		if w.limit <= 0 {
			w.limit = QueueSize
		}
		w.wake = make(chan struct{}, 1)
		w.flushReq = make(chan chan error)
		w.done = make(chan struct{})
		w.log = w.Logger
		if w.log == nil {
			w.log = slog.Default()
		}
		w.log = w.log.With("component", "audit")
	})
}

// Record queues rec. It never blocks: if QueueSize records already wait
// the record is counted as dropped and logged. Records made once Run is
// shutting down are dropped too.
func (w *Writer) Record(rec store.Activity) {
	w.init()
	w.mu.Lock()
	if w.stopped || w.queued+w.writing >= w.limit {
		w.mu.Unlock()
		w.drop()
		return
	}
	last := len(w.queue) - 1
	if last < 0 || len(w.queue[last]) == w.size {
		w.queue = append(w.queue, w.newBatchLocked())
		last++
	}
	w.queue[last] = append(w.queue[last], rec)
	w.queued++
	// Run needs to hear of the first record (to start the interval) and
	// of a full batch (to write it); the records in between need no
	// wakeup.
	signal := w.queued == 1 || len(w.queue[last]) == w.size
	w.mu.Unlock()
	if signal {
		select {
		case w.wake <- struct{}{}:
		default: // Run has a wakeup pending already
		}
	}
}

func (w *Writer) newBatchLocked() []store.Activity {
	if n := len(w.spare); n > 0 {
		b := w.spare[n-1]
		w.spare = w.spare[:n-1]
		return b
	}
	return make([]store.Activity, 0, w.size)
}

// take removes batches from the queue for Run to write: all of them, or
// with fullOnly only the full ones (a partial batch waits for more).
func (w *Writer) take(fullOnly bool) [][]store.Activity {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.queue)
	if fullOnly && n > 0 && len(w.queue[n-1]) < w.size {
		n--
	}
	if n == 0 {
		return nil
	}
	taken := make([][]store.Activity, n)
	copy(taken, w.queue)
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	for _, b := range taken {
		w.queued -= len(b)
		w.writing += len(b)
	}
	return taken
}

// release returns a batch Run is done with, stored or dropped.
func (w *Writer) release(b []store.Activity) {
	clear(b) // let go of the records' strings
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writing -= len(b)
	if len(w.spare) < spareBatches {
		w.spare = append(w.spare, b[:0])
	}
}

func (w *Writer) queuedLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
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
		w.log.Warn("audit records dropped", "dropped_total", n, "queue", w.limit)
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
	// Writes outlive ctx's cancellation: a batch taken off the queue is
	// finished rather than lost halfway.
	wctx := context.WithoutCancel(ctx)

	// The timer runs while records wait: from the first one after a
	// write, or from the end of a write that left some.
	timer := time.NewTimer(interval)
	timer.Stop()
	armed := false
	// left holds batches a write gave back when ctx was cancelled during
	// a retry; they go before anything queued after them.
	var left [][]store.Activity
	write := func(batches [][]store.Activity) error {
		batches = append(left, batches...)
		var err error
		left, err = w.write(wctx, ctx.Done(), batches)
		timer.Stop()
		armed = false
		if w.queuedLen() > 0 {
			timer.Reset(interval)
			armed = true
		}
		return err
	}
	for {
		select {
		case <-w.wake:
			if full := w.take(true); full != nil {
				write(full)
			} else if !armed && w.queuedLen() > 0 {
				timer.Reset(interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			write(w.take(false))
		case ack := <-w.flushReq:
			// Everything recorded before Flush was called is queued
			// now; take that much, not what keeps arriving.
			ack <- write(w.take(false))
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
			// No Record adds to the queue from here on.
			batches := append(left, w.take(false)...)
			fctx, cancel := context.WithTimeout(wctx, finalTimeout)
			defer cancel()
			_, err := w.write(fctx, nil, batches)
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

// write stores batches in order, each in one AppendActivity call retried
// with backoff. A batch that still fails is logged and dropped; the last
// such error is returned. If quit closes while a batch waits to be
// retried, write stops and returns the batches not yet stored, for the
// final flush to take.
func (w *Writer) write(ctx context.Context, quit <-chan struct{}, batches [][]store.Activity) (left [][]store.Activity, err error) {
	for i, b := range batches {
		interrupted, werr := w.writeBatch(ctx, quit, b)
		if interrupted {
			return batches[i:], werr
		}
		if werr != nil {
			w.dropped.Add(int64(len(b)))
			w.log.Error("audit records lost", "records", len(b), "error", werr)
			err = werr
		}
		w.release(b)
	}
	return nil, err
}

// writeBatch tries to store b up to writeAttempts times. interrupted
// means quit closed during a backoff.
func (w *Writer) writeBatch(ctx context.Context, quit <-chan struct{}, b []store.Activity) (interrupted bool, err error) {
	backoff := w.retryBase
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, writeTimeout)
		err = w.Store.AppendActivity(actx, b)
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
