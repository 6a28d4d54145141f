package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// holdWriter takes the writer connection in a transaction until the
// returned function is called, so that binding updates queue up behind it.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, free := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.inWriteTx(context.Background(), "test.hold", func(*sql.Tx) error {
			close(held)
			<-free
			return nil
		})
	}()
	<-held
	return func() {
		close(free)
		if err := <-done; err != nil {
			t.Errorf("holding transaction: %v", err)
		}
	}
}

// waitQueued waits until n updates are queued for the committer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(db.commits.queue) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d updates queued, want %d", len(db.commits.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type updateResult struct {
	out []sip.Binding
	err error
}

// goUpdate runs UpdateBindings(aor) with fn in a goroutine.
func goUpdate(ctx context.Context, db *DB, aor string, now time.Time, fn func([]sip.Binding) ([]sip.Binding, error)) <-chan updateResult {
	ch := make(chan updateResult, 1)
	go func() {
		out, err := db.UpdateBindings(ctx, aor, now, fn)
		ch <- updateResult{out, err}
	}()
	return ch
}

// leadUpdate starts an update inserting one binding of aor while the writer
// is held, and returns once the committer has taken it: the committer then
// waits for the writer, and the updates queued next form one group.
func leadUpdate(t *testing.T, db *DB, aor string, now time.Time) <-chan updateResult {
	t.Helper()
	first := goUpdate(context.Background(), db, aor, now, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{binding(aor, 1, now, now.Add(time.Hour))}, nil
	})
	for deadline := time.Now().Add(10 * time.Second); len(db.commits.queue) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the committer did not take the first update")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let it reach BeginTx
	return first
}

// TestGroupCommitKeepsUpdatesIndependent: updates that wait behind a busy
// writer are committed together, and one that fails (its fn refuses, or a
// constraint is violated halfway through its writes) changes nothing while
// the others of its group are stored.
func TestGroupCommitKeepsUpdatesIndependent(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Hour)
	release := holdWriter(t, db)

	// The first update is taken by the committer, which then waits for the
	// writer; the next four queue behind it and form one group.
	first := leadUpdate(t, db, "sip:first@example.com", now)
	refused := errors.New("refused by fn")
	good1 := goUpdate(ctx, db, "sip:a@example.com", now, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{binding("sip:a@example.com", 1, now, exp)}, nil
	})
	waitQueued(t, db, 1)
	bad := goUpdate(ctx, db, "sip:b@example.com", now, func([]sip.Binding) ([]sip.Binding, error) { return nil, refused })
	waitQueued(t, db, 2)
	// Two bindings with one ContactKey: the first row is written before the
	// second fails the unique index, and must be rolled back.
	conflict := goUpdate(ctx, db, "sip:c@example.com", now, func([]sip.Binding) ([]sip.Binding, error) {
		x, y := binding("sip:c@example.com", 1, now, exp), binding("sip:c@example.com", 2, now, exp)
		y.ContactKey = x.ContactKey
		return []sip.Binding{x, y}, nil
	})
	waitQueued(t, db, 3)
	good2 := goUpdate(ctx, db, "sip:a@example.com", now, func(cur []sip.Binding) ([]sip.Binding, error) {
		if len(cur) != 1 {
			return nil, fmt.Errorf("saw %d bindings of the earlier update in the group, want 1", len(cur))
		}
		return append(cur, binding("sip:a@example.com", 2, now, exp)), nil
	})
	waitQueued(t, db, 4)
	release()

	if r := <-first; r.err != nil {
		t.Fatalf("first: %v", r.err)
	}
	if r := <-good1; r.err != nil || len(r.out) != 1 {
		t.Fatalf("good1: %v, %d bindings", r.err, len(r.out))
	}
	if r := <-bad; !errors.Is(r.err, refused) || r.out != nil {
		t.Fatalf("bad: got %v, %v; want fn's error unchanged", r.out, r.err)
	}
	if r := <-conflict; !errors.Is(r.err, identity.ErrConflict) {
		t.Fatalf("conflict: got %v, want ErrConflict", r.err)
	}
	if r := <-good2; r.err != nil || len(r.out) != 2 {
		t.Fatalf("good2: %v, %d bindings", r.err, len(r.out))
	}
	if ids := bindingIDs(t, db, "sip:a@example.com", now); len(ids) != 2 {
		t.Fatalf("sip:a has %d bindings, want 2", len(ids))
	}
	for _, aor := range []string{"sip:b@example.com", "sip:c@example.com"} {
		if ids := bindingIDs(t, db, aor, now); len(ids) != 0 {
			t.Fatalf("%s has %d bindings after a failed update, want 0", aor, len(ids))
		}
	}
	if st := db.CommitStats(); st.Groups != 2 || st.Updates != 5 {
		t.Fatalf("CommitStats = %+v, want 2 groups (the first alone, then the 4 that queued) of 5 updates", st)
	}
}

// TestGroupCommitWithdrawsAbandonedUpdates: an update whose context ends
// while it waits in the queue is never applied, and its caller is told.
func TestGroupCommitWithdrawsAbandonedUpdates(t *testing.T) {
	db, _ := openTemp(t)
	now := time.Now()
	release := holdWriter(t, db)
	blocker := goUpdate(context.Background(), db, "sip:first@example.com", now, func(cur []sip.Binding) ([]sip.Binding, error) { return cur, nil })
	time.Sleep(20 * time.Millisecond) // the committer takes it and waits for the writer
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}, 1)
	abandoned := goUpdate(ctx, db, "sip:late@example.com", now, func([]sip.Binding) ([]sip.Binding, error) {
		ran <- struct{}{}
		return []sip.Binding{binding("sip:late@example.com", 1, now, now.Add(time.Hour))}, nil
	})
	waitQueued(t, db, 1)
	cancel()
	r := <-abandoned
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("abandoned update returned %v, want context.Canceled", r.err)
	}
	release()
	if r := <-blocker; r.err != nil {
		t.Fatal(r.err)
	}
	// One more update through the committer proves the queue moved on.
	set(t, db, "sip:after@example.com", now)
	select {
	case <-ran:
		t.Fatal("the withdrawn update's fn ran")
	default:
	}
	if ids := bindingIDs(t, db, "sip:late@example.com", now); len(ids) != 0 {
		t.Fatalf("withdrawn update stored %d bindings", len(ids))
	}
}

// TestGroupCommitClose: Close answers queued updates with an error instead
// of leaving their callers waiting, and later updates fail at once.
func TestGroupCommitClose(t *testing.T) {
	db, err := Open(context.Background(), t.TempDir()+"/users.db")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	release := holdWriter(t, db)
	first := goUpdate(context.Background(), db, "sip:first@example.com", now, func(cur []sip.Binding) ([]sip.Binding, error) { return cur, nil })
	time.Sleep(20 * time.Millisecond)
	queued := goUpdate(context.Background(), db, "sip:q@example.com", now, func(cur []sip.Binding) ([]sip.Binding, error) { return cur, nil })
	waitQueued(t, db, 1)
	go func() { time.Sleep(20 * time.Millisecond); release() }()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-first // committed or failed, but answered
	if r := <-queued; r.err == nil {
		t.Fatal("an update queued at Close succeeded after the committer stopped")
	}
	if _, err := db.UpdateBindings(context.Background(), "sip:x@example.com", now, func(cur []sip.Binding) ([]sip.Binding, error) { return cur, nil }); err == nil {
		t.Fatal("UpdateBindings after Close succeeded")
	}
}

// queueGroup queues one UpdateBindings per fn behind a busy writer, so that
// they form one group, then frees the writer and returns their results in
// order. The first update, taken alone while the writer is busy, is a
// harmless insert on its own AoR.
func queueGroup(t *testing.T, db *DB, now time.Time, fns map[string]func([]sip.Binding) ([]sip.Binding, error), order []string) map[string]updateResult {
	t.Helper()
	ctx := context.Background()
	release := holdWriter(t, db)
	first := leadUpdate(t, db, fmt.Sprintf("sip:lead%d@example.com", now.UnixNano()), now)
	chans := map[string]<-chan updateResult{}
	for i, aor := range order {
		chans[aor] = goUpdate(ctx, db, aor, now, fns[aor])
		waitQueued(t, db, i+1)
	}
	groups := db.CommitStats().Groups
	release()
	if r := <-first; r.err != nil {
		t.Fatalf("first: %v", r.err)
	}
	out := map[string]updateResult{}
	for _, aor := range order {
		out[aor] = <-chans[aor]
	}
	if g := db.CommitStats().Groups - groups; g > 2 {
		t.Fatalf("%d transactions for the queued updates, want them in one group", g)
	}
	return out
}

// TestGroupCommitUnprotectedStatements: an update that makes one
// statement runs without a savepoint. When that statement fails a
// constraint, SQLite backs it out and the rest of the group commits; when
// it fails in a way that may have ended the transaction (here a trigger's
// RAISE(ROLLBACK)), the whole group fails and nothing of it is stored, not
// even by a later statement in what would have been autocommit mode.
func TestGroupCommitUnprotectedStatements(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Hour)
	x := binding("sip:x@example.com", 1, now, exp)
	if _, err := db.UpdateBindings(ctx, x.AoR, now, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{x}, nil
	}); err != nil {
		t.Fatal(err)
	}
	insert := func(aor string, n int) func([]sip.Binding) ([]sip.Binding, error) {
		return func(cur []sip.Binding) ([]sip.Binding, error) {
			return append(cur, binding(aor, n, now, exp)), nil
		}
	}
	renew := func(callID string) func([]sip.Binding) ([]sip.Binding, error) {
		return func(cur []sip.Binding) ([]sip.Binding, error) {
			if len(cur) != 1 {
				return nil, fmt.Errorf("%d bindings of x, want 1", len(cur))
			}
			cur[0].CallID, cur[0].CSeq = callID, cur[0].CSeq+1
			return cur, nil
		}
	}

	// A single INSERT whose ID is x's binding's: a primary-key violation.
	r := queueGroup(t, db, now, map[string]func([]sip.Binding) ([]sip.Binding, error){
		"sip:a@example.com": insert("sip:a@example.com", 1),
		"sip:p@example.com": func([]sip.Binding) ([]sip.Binding, error) {
			b := binding("sip:p@example.com", 1, now, exp)
			b.ID = x.ID
			return []sip.Binding{b}, nil
		},
		"sip:x@example.com": renew("renewed@example.com"),
	}, []string{"sip:a@example.com", "sip:p@example.com", "sip:x@example.com"})
	if err := r["sip:p@example.com"].err; !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("insert with a taken ID: %v, want ErrConflict", err)
	}
	for _, aor := range []string{"sip:a@example.com", "sip:x@example.com"} {
		if err := r[aor].err; err != nil {
			t.Fatalf("%s beside a failed statement: %v", aor, err)
		}
	}
	if ids := bindingIDs(t, db, "sip:p@example.com", now); len(ids) != 0 {
		t.Fatalf("sip:p has %d bindings after its failed insert", len(ids))
	}

	if _, err := db.w.ExecContext(ctx, `CREATE TRIGGER test_lose BEFORE UPDATE ON bindings
	WHEN NEW.call_id = 'lose' BEGIN SELECT RAISE(ROLLBACK, 'transaction rolled back by a trigger'); END`); err != nil {
		t.Fatal(err)
	}
	r = queueGroup(t, db, now, map[string]func([]sip.Binding) ([]sip.Binding, error){
		"sip:g@example.com": insert("sip:g@example.com", 1),
		"sip:x@example.com": renew("lose"),
		"sip:h@example.com": insert("sip:h@example.com", 1),
	}, []string{"sip:g@example.com", "sip:x@example.com", "sip:h@example.com"})
	for _, aor := range []string{"sip:g@example.com", "sip:x@example.com", "sip:h@example.com"} {
		if r[aor].err == nil {
			t.Fatalf("%s succeeded in a group whose transaction was rolled back", aor)
		}
		if aor != "sip:x@example.com" {
			if ids := bindingIDs(t, db, aor, now); len(ids) != 0 {
				t.Fatalf("%s has %d bindings from a group that failed", aor, len(ids))
			}
		}
	}
	// x is as the first group left it, and the mirror agrees: a later
	// update sees that row.
	out, err := db.UpdateBindings(ctx, x.AoR, now, renew("after@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := db.Bindings(ctx, x.AoR, now)
	if err != nil || len(bs) != 1 || bs[0].CallID != "after@example.com" || bs[0].CSeq != out[0].CSeq || out[0].CSeq != x.CSeq+2 {
		t.Fatalf("x after the failed group: %+v, %v; want CSeq %d", bs, err, x.CSeq+2)
	}
}
