package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// auditSpy is an AuditStore in memory that records each batch. When gate
// is set, AppendAudit announces itself on entered and then waits for gate
// (or its context) before storing: a stuck database.
type auditSpy struct {
	mu      sync.Mutex
	batches [][]Event
	err     error // returned by AppendAudit when set

	entered chan struct{}
	gate    chan struct{}
}

func (s *auditSpy) AppendAudit(ctx context.Context, events []Event) error {
	if s.gate != nil {
		s.entered <- struct{}{}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.batches = append(s.batches, append([]Event(nil), events...))
	return nil
}

func (s *auditSpy) ListAudit(context.Context, AuditFilter) (AuditPage, error) {
	return AuditPage{}, nil
}
func (s *auditSpy) PruneAudit(context.Context, time.Time) (int, error) { return 0, nil }

// events returns every stored event in write order.
func (s *auditSpy) events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func (s *auditSpy) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

// startAuditor runs an Auditor over store until the test ends.
func startAuditor(t testing.TB, cfg AuditorConfig) *Auditor {
	t.Helper()
	a := NewAuditor(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

func testEvent(i int) Event {
	return Event{Time: time.Unix(int64(i), 0), Action: ActionLoginFailed, Actor: fmt.Sprint("actor", i), Outcome: OutcomeFailure}
}

// wantEventsInOrder fails t unless got are events 0..n-1 of testEvent.
func wantEventsInOrder(t testing.TB, got []Event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d events stored, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Actor != fmt.Sprint("actor", i) {
			t.Fatalf("event %d is %q: out of order", i, e.Actor)
		}
	}
}

func flush(t testing.TB, a *Auditor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestAuditorWritesInBatchesOfAtMostBatch(t *testing.T) {
	spy := &auditSpy{}
	// A long interval: only a full batch or the Flush writes.
	a := startAuditor(t, AuditorConfig{Store: spy, Batch: 500, FlushInterval: time.Hour})
	for i := 0; i < 1234; i++ {
		a.Emit(testEvent(i))
	}
	flush(t, a)
	wantEventsInOrder(t, spy.events(), 1234)
	sizes := spy.batchSizes()
	for _, n := range sizes {
		if n > 500 {
			t.Fatalf("batch sizes %v: one is over 500", sizes)
		}
	}
	if len(sizes) < 3 || len(sizes) > 10 {
		t.Errorf("batch sizes %v: want a few large batches, not one write per event", sizes)
	}
	if a.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", a.Dropped())
	}
}

func TestAuditorWritesAPartialBatchAfterTheInterval(t *testing.T) {
	spy := &auditSpy{}
	a := startAuditor(t, AuditorConfig{Store: spy, FlushInterval: 20 * time.Millisecond})
	start := time.Now()
	a.Emit(testEvent(0))
	a.Emit(testEvent(1))
	for len(spy.events()) < 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("a partial batch was not written within 5s without a Flush")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantEventsInOrder(t, spy.events(), 2)
	if sizes := spy.batchSizes(); len(sizes) != 1 {
		t.Errorf("batch sizes %v: want the two events in one batch", sizes)
	}
}

func TestAuditorFlushWaitsOnlyForEarlierEvents(t *testing.T) {
	spy := &auditSpy{}
	a := startAuditor(t, AuditorConfig{Store: spy, FlushInterval: time.Hour})
	for round := 1; round <= 3; round++ {
		for i := 0; i < 7; i++ {
			a.Emit(testEvent((round-1)*7 + i))
		}
		flush(t, a)
		wantEventsInOrder(t, spy.events(), 7*round)
	}
	flush(t, a) // nothing pending: returns at once
}

func TestAuditorEmitNeverBlocksOnAStuckStoreAndCountsDrops(t *testing.T) {
	spy := &auditSpy{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	a := startAuditor(t, AuditorConfig{Store: spy, Buffer: 10, Batch: 1})
	a.Emit(testEvent(0))
	select {
	case <-spy.entered: // the writer holds event 0 and waits for the store
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never called AppendAudit")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 100; i++ {
			a.Emit(testEvent(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Emit blocked behind a stuck store")
	}
	if got := a.Dropped(); got != 90 {
		t.Errorf("Dropped = %d, want 90 (100 emitted, 10 queued)", got)
	}

	// The store recovers: what was queued gets written.
	close(spy.gate)
	go func() {
		for range spy.entered {
		}
	}()
	flush(t, a)
	wantEventsInOrder(t, spy.events(), 11)
	close(spy.entered)
}

func TestAuditorCloseWritesWhatIsQueued(t *testing.T) {
	spy := &auditSpy{}
	a := NewAuditor(AuditorConfig{Store: spy, FlushInterval: time.Hour})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		a.Run(context.Background())
	}()
	for i := 0; i < 1100; i++ {
		a.Emit(testEvent(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	wantEventsInOrder(t, spy.events(), 1100)

	a.Emit(testEvent(2000))
	if a.Dropped() != 1 || len(spy.events()) != 1100 {
		t.Errorf("after Close: Dropped %d, %d stored; want the late event dropped", a.Dropped(), len(spy.events()))
	}
	if err := a.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAuditorCloseWithoutRunWritesTheQueueItself(t *testing.T) {
	spy := &auditSpy{}
	a := NewAuditor(AuditorConfig{Store: spy})
	for i := 0; i < 3; i++ {
		a.Emit(testEvent(i))
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantEventsInOrder(t, spy.events(), 3)
	a.Run(context.Background()) // after Close: returns at once
}

func TestAuditorCloseAfterRunsContextEndedWritesTheRest(t *testing.T) {
	spy := &auditSpy{}
	a := NewAuditor(AuditorConfig{Store: spy, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Run(ctx) // returns at once: its context is over
	for i := 0; i < 4; i++ {
		a.Emit(testEvent(i))
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantEventsInOrder(t, spy.events(), 4)
}

func TestAuditorCloseIsBoundedByItsContext(t *testing.T) {
	spy := &auditSpy{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	defer close(spy.gate)
	a := startAuditor(t, AuditorConfig{Store: spy, Batch: 1})
	a.Emit(testEvent(0))
	<-spy.entered
	a.Emit(testEvent(1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close on a stuck store: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v on a stuck store with a 50ms context", d)
	}
}

func TestAuditorCountsAndReportsFailedWrites(t *testing.T) {
	boom := errors.New("disk full")
	spy := &auditSpy{err: boom}
	var (
		mu   sync.Mutex
		lost int
	)
	a := startAuditor(t, AuditorConfig{Store: spy, OnError: func(err error, n int) {
		if !errors.Is(err, boom) {
			t.Errorf("OnError got %v, want %v", err, boom)
		}
		mu.Lock()
		lost += n
		mu.Unlock()
	}})
	for i := 0; i < 5; i++ {
		a.Emit(testEvent(i))
	}
	flush(t, a) // returns: failed events count as dealt with
	mu.Lock()
	defer mu.Unlock()
	if lost != 5 || a.Dropped() != 5 {
		t.Errorf("OnError saw %d lost, Dropped = %d; want 5 and 5", lost, a.Dropped())
	}
}

func TestAuditorClipsLongFieldsAndStampsMissingTimes(t *testing.T) {
	spy := &auditSpy{}
	a := startAuditor(t, AuditorConfig{Store: spy})
	long := strings.Repeat("é", 1000) // 2 bytes each: clipping must not split one
	a.Emit(Event{Action: ActionLoginFailed, Actor: long, Subject: long, Source: long, Detail: long + long})
	flush(t, a)
	got := spy.events()
	if len(got) != 1 {
		t.Fatalf("%d events stored, want 1", len(got))
	}
	e := got[0]
	if len(e.Actor) != 256 || len(e.Subject) != 256 || len(e.Source) != 256 || len(e.Detail) != 1024 {
		t.Errorf("clipped lengths actor %d, subject %d, source %d, detail %d; want 256, 256, 256, 1024",
			len(e.Actor), len(e.Subject), len(e.Source), len(e.Detail))
	}
	if !strings.HasPrefix(long, e.Actor) || !strings.HasPrefix(long+long, e.Detail) {
		t.Error("clipping changed the kept text")
	}
	if e.Time.IsZero() || time.Since(e.Time) > time.Minute {
		t.Errorf("Time = %v, want the time of Emit", e.Time)
	}
}

func TestAuditorWithServiceEvents(t *testing.T) {
	// The Auditor is an EventSink: the service's emit helper reaches it
	// with the actor and source of the context.
	spy := &auditSpy{}
	a := startAuditor(t, AuditorConfig{Store: spy})
	ctx := WithActor(context.Background(), "admin-id", "198.51.100.4")
	emit(ctx, a, time.Unix(100, 0), ActionUserDeleted, "alice-id", OutcomeSuccess, "")
	flush(t, a)
	got := spy.events()
	want := Event{Time: time.Unix(100, 0), Action: ActionUserDeleted, Actor: "admin-id", Subject: "alice-id", Source: "198.51.100.4", Outcome: OutcomeSuccess}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("stored %+v, want [%+v]", got, want)
	}
}

func TestAuditorFlushSeesEveryEarlierEventUnderConcurrentEmits(t *testing.T) {
	spy := &auditSpy{}
	a := startAuditor(t, AuditorConfig{Store: spy, Batch: 7, FlushInterval: time.Hour})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				mine := fmt.Sprintf("g%d-%d", g, i)
				a.Emit(Event{Action: ActionLogout, Actor: mine})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := a.Flush(ctx)
				cancel()
				if err != nil {
					t.Errorf("Flush: %v", err)
					return
				}
				found := false
				for _, e := range spy.events() {
					if e.Actor == mine {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("Flush returned before %s, emitted earlier, was written", mine)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(spy.events()); n != 400 || a.Dropped() != 0 {
		t.Errorf("%d stored, %d dropped; want 400 and 0", n, a.Dropped())
	}
}
