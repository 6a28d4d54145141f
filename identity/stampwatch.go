package identity

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// stampWatch reads one change stamp at most once per interval, for the
// caches of this package. Readers call poll before using their copy; no
// goroutine runs in the background.
type stampWatch struct {
	src      ChangeStamper
	name     string
	interval time.Duration
	now      func() time.Time
	// epoch is when the watch was made. Times are kept as durations since
	// it: time.Time.Sub uses the monotonic clock, so a step of the wall
	// clock neither stops the reads nor makes them run at every poll.
	epoch time.Time

	// due is the time since epoch from which the next poll reads the
	// stamp; math.MinInt64 before the first read. Stored only after
	// onChange returned, so a poll that sees it in the future sees every
	// effect of onChange.
	due atomic.Int64

	mu    sync.Mutex // held while reading the stamp: one read at a time
	known int64      // the stamp at the last read; valid when read is true
	read  bool
}

func newStampWatch(src ChangeStamper, name string, interval time.Duration, now func() time.Time) *stampWatch {
	w := &stampWatch{src: src, name: name, interval: interval, now: now, epoch: now()}
	w.due.Store(math.MinInt64)
	return w
}

// poll reads the stamp when the interval since the last read has passed,
// and calls onChange when it differs from the last value read (and at the
// first read). Callers that come while a read is under way wait for it, so
// none of them uses a copy older than the interval. An error from the read
// or from onChange is returned, and the next poll reads again: the caller
// must then not trust its copy.
func (w *stampWatch) poll(ctx context.Context, onChange func(ctx context.Context) error) error {
	if int64(w.now().Sub(w.epoch)) < w.due.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// The time is taken before the read: a change committed before it is
	// in what the read returns.
	start := w.now().Sub(w.epoch)
	if int64(start) < w.due.Load() {
		return nil // another caller read it while this one waited
	}
	v, err := w.src.ChangeStamp(ctx, w.name)
	if err != nil {
		return err
	}
	if !w.read || v != w.known {
		if err := onChange(ctx); err != nil {
			return err
		}
		w.known, w.read = v, true
	}
	w.due.Store(int64(start + w.interval))
	return nil
}
