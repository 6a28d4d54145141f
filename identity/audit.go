package identity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// AuditRecord is one stored audit event and the id the store gave it.
// Ids grow in the order events were written.
type AuditRecord struct {
	ID int64
	Event
}

// AuditFilter selects audit records for ListAudit. Zero values select
// everything; string fields match exactly.
type AuditFilter struct {
	Action  string
	Actor   string
	Subject string
	Source  string
	Outcome string
	Since   time.Time // only events at or after Since
	Until   time.Time // only events before Until
	// After is the opaque cursor returned as AuditPage.Next; empty starts
	// at the newest record. A cursor that cannot be read is an error
	// matching ErrInvalid.
	After string
	Limit int // at most this many records; <= 0 means 100, capped at 1000
}

// AuditPage is one page of ListAudit, newest first.
type AuditPage struct {
	Records []AuditRecord
	Next    string // cursor for the next (older) page; empty on the last page
}

// AuditStore keeps the audit trail. Implementations must pass
// store/storetest.
type AuditStore interface {
	// AppendAudit stores events in one transaction, in order: either all
	// of them get ids, ascending in slice order, or none is stored.
	AppendAudit(ctx context.Context, events []Event) error
	// ListAudit returns one page of the records matching f, newest
	// (highest id) first. Pages neither overlap nor skip records, even
	// while records are appended between calls.
	ListAudit(ctx context.Context, f AuditFilter) (AuditPage, error)
	// PruneAudit deletes the records of events before before and returns
	// how many went. It may work in several transactions, so that a large
	// backlog never holds the writer for long.
	PruneAudit(ctx context.Context, before time.Time) (int, error)
}

// Defaults of AuditorConfig.
const (
	DefaultAuditBuffer        = 10000
	DefaultAuditBatch         = 500
	DefaultAuditFlushInterval = 200 * time.Millisecond
)

// AuditorConfig sets up an Auditor. Zero values take the defaults above.
type AuditorConfig struct {
	Store AuditStore
	// Buffer is how many events may wait to be written; beyond that Emit
	// drops events.
	Buffer int
	// Batch is the most events written in one transaction.
	Batch int
	// FlushInterval is the longest an event waits for its batch to fill
	// before the batch is written anyway.
	FlushInterval time.Duration
	// OnError, when set, is told of each batch that could not be written
	// and how many events it held (they are lost, and counted in Dropped).
	OnError func(err error, lost int)
}

// Auditor is the EventSink that writes events to an AuditStore.
//
// Emit never blocks the request path: it hands the event to a bounded
// queue, and a background writer (Run) appends the queue to the store in
// batches of up to Batch events, at the latest FlushInterval after the
// first event of a batch arrived. When the queue is full (the store is slow
// or stuck) Emit drops the event and counts it in Dropped: refusing or
// stalling logins because the audit trail lags would hand an attacker a
// denial of service.
//
// The trade-off: the events of the last FlushInterval (and those queued
// behind a stuck store) are lost if the process crashes, and dropped events
// are never stored. The security events are also logged by the caller (cmd
// wires a log line per event), so the log still has them.
type Auditor struct {
	store    AuditStore
	queue    chan Event
	batch    int
	interval time.Duration
	onError  func(error, int)

	dropped   atomic.Uint64
	enqueued  atomic.Uint64 // events accepted by Emit
	processed atomic.Uint64 // events written, or lost to a failed write
	wanted    atomic.Uint64 // highest enqueued count a Flush waits for
	nudge     chan struct{} // wakes Run for a Flush

	// intake serializes Emit's send and count, so queue order is count
	// order (what Flush relies on), and guards closed, so that no event
	// enters the queue after Close has begun draining it. It is held for
	// a non-blocking channel send only.
	intake sync.Mutex
	closed bool

	mu       sync.Mutex // guards the fields below
	running  bool       // Run has started
	progress chan struct{}
	closeCtx context.Context // Close's, once called

	stop chan struct{} // closed by Close
	done chan struct{} // closed when Run returns
}

var _ EventSink = (*Auditor)(nil)

// NewAuditor returns an Auditor over cfg.Store. Start its writer with Run.
func NewAuditor(cfg AuditorConfig) *Auditor {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultAuditBuffer
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultAuditBatch
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultAuditFlushInterval
	}
	return &Auditor{
		store:    cfg.Store,
		queue:    make(chan Event, cfg.Buffer),
		batch:    cfg.Batch,
		interval: cfg.FlushInterval,
		onError:  cfg.OnError,
		nudge:    make(chan struct{}, 1),
		progress: make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Emit queues e for writing. It never blocks: when the queue is full, or
// the Auditor is closed, e is dropped and counted in Dropped.
func (a *Auditor) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	clip(&e)
	a.intake.Lock()
	defer a.intake.Unlock()
	if a.closed {
		a.dropped.Add(1)
		return
	}
	select {
	case a.queue <- e:
		a.enqueued.Add(1)
	default:
		a.dropped.Add(1)
	}
}

// Dropped returns how many events were not stored: refused because the
// queue was full or the Auditor closed, or lost to a failed write.
func (a *Auditor) Dropped() uint64 { return a.dropped.Load() }

// Run writes queued events until ctx ends or Close is called; call it once,
// in its own goroutine. Cancelling ctx loses the batch being collected and
// leaves the queue to Close; Close instead has Run write everything queued
// before it returns.
func (a *Auditor) Run(ctx context.Context) {
	a.intake.Lock()
	a.mu.Lock()
	start := !a.running && !a.closed
	a.running = true
	a.mu.Unlock()
	a.intake.Unlock()
	if !start {
		return // a second Run, or Close came first and writes the queue itself
	}
	defer close(a.done)

	batch := make([]Event, 0, a.batch)
	timer := time.NewTimer(a.interval)
	timer.Stop()
	for {
		// Wait for the first event of a batch.
		select {
		case e := <-a.queue:
			batch = append(batch, e)
		case <-a.nudge:
			continue
		case <-a.stop:
			a.final(ctx, batch)
			return
		case <-ctx.Done():
			return
		}
		// Collect more until the batch is full or the interval is up; a
		// pending Flush takes what is queued now and writes at once.
		timer.Reset(a.interval)
	collect:
		for len(batch) < a.batch {
			if a.flushPending() {
				select {
				case e := <-a.queue:
					batch = append(batch, e)
					continue
				default:
					break collect
				}
			}
			select {
			case e := <-a.queue:
				batch = append(batch, e)
			case <-a.nudge:
			case <-timer.C:
				break collect
			case <-a.stop:
				timer.Stop()
				a.final(ctx, batch)
				return
			case <-ctx.Done():
				timer.Stop()
				a.lose(ctx.Err(), len(batch))
				return
			}
		}
		timer.Stop()
		a.write(ctx, batch)
		batch = batch[:0]
	}
}

// final writes batch and the rest of the queue after Close, under Run's
// context, ended early when Close's context ends.
func (a *Auditor) final(ctx context.Context, batch []Event) {
	a.mu.Lock()
	cc := a.closeCtx
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cc, cancel)
	defer stop()
	a.drain(ctx, batch)
}

// flushPending reports whether a Flush waits for events not yet written.
func (a *Auditor) flushPending() bool { return a.wanted.Load() > a.processed.Load() }

// drain writes batch and then everything queued, in batches.
func (a *Auditor) drain(ctx context.Context, batch []Event) {
	for {
	fill:
		for len(batch) < a.batch {
			select {
			case e := <-a.queue:
				batch = append(batch, e)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		a.write(ctx, batch)
		batch = batch[:0]
	}
}

// write appends batch to the store and records the progress.
func (a *Auditor) write(ctx context.Context, batch []Event) {
	if len(batch) == 0 {
		return
	}
	// Only one goroutine writes at a time: Run, or Close after Run has
	// returned.
	if err := a.store.AppendAudit(ctx, batch); err != nil {
		a.lose(err, len(batch))
		return
	}
	a.advance(len(batch))
}

// lose counts n events that will never be written.
func (a *Auditor) lose(err error, n int) {
	if n == 0 {
		return
	}
	a.dropped.Add(uint64(n))
	if a.onError != nil {
		a.onError(err, n)
	}
	a.advance(n)
}

// advance records that n more events were dealt with and wakes Flushes.
func (a *Auditor) advance(n int) {
	a.processed.Add(uint64(n))
	a.mu.Lock()
	close(a.progress)
	a.progress = make(chan struct{})
	a.mu.Unlock()
}

// Flush waits until every event emitted before the call has been written
// (or lost to a failed write), or until ctx ends. It needs Run to be
// running, unless the Auditor is closed.
func (a *Auditor) Flush(ctx context.Context) error {
	target := a.enqueued.Load()
	for {
		if w := a.wanted.Load(); w >= target || a.wanted.CompareAndSwap(w, target) {
			break
		}
	}
	select {
	case a.nudge <- struct{}{}:
	default:
	}
	for {
		a.mu.Lock()
		ch := a.progress
		a.mu.Unlock()
		if a.processed.Load() >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops taking events, writes everything queued (through Run when it
// is running, else itself) and stops Run. It returns ctx's error when ctx
// ends first; events still queued then are lost. Close is idempotent.
func (a *Auditor) Close(ctx context.Context) error {
	a.intake.Lock()
	already := a.closed
	a.closed = true
	a.mu.Lock()
	running := a.running
	if !already {
		a.closeCtx = ctx
	}
	a.mu.Unlock()
	a.intake.Unlock()
	if already {
		return a.Flush(ctx)
	}
	close(a.stop)
	if running {
		select {
		case <-a.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Run never ran, or its context ended before Close: write the rest
	// here.
	a.drain(ctx, nil)
	return ctx.Err()
}

// Longest stored field values, in bytes. Usernames in failed logins and
// SIP requests are attacker-chosen: clipping keeps each record small.
const (
	maxAuditField  = 256
	maxAuditDetail = 1024
)

// clip shortens e's fields to the stored limits, on UTF-8 boundaries.
func clip(e *Event) {
	for _, f := range []*string{&e.Action, &e.Actor, &e.Subject, &e.Source, &e.Outcome} {
		*f = clipString(*f, maxAuditField)
	}
	e.Detail = clipString(e.Detail, maxAuditDetail)
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
