package sqlite

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// The group commit of refresh-token writes (commit.go), in the style of
// commit_test.go: writes queue behind a held writer, then commit together.

// refreshUser creates a user for refresh tokens to belong to.
func refreshUser(t testing.TB, db *DB) *identity.User {
	t.Helper()
	u := &identity.User{ID: "user-1", Username: "alice", Active: true}
	if err := db.CreateUser(context.Background(), u, nil); err != nil {
		t.Fatal(err)
	}
	return u
}

// testToken returns the record of a refresh token called name: the first
// of a family when parent is nil, else parent's successor.
func testToken(u *identity.User, name string, parent *identity.RefreshToken, now time.Time) *identity.RefreshToken {
	hash := sha256.Sum256([]byte("token-" + name))
	t := &identity.RefreshToken{ID: "id-" + name, Hash: hash[:], FamilyID: "family-" + name, UserID: u.ID,
		CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(24 * time.Hour)}
	if parent != nil {
		t.FamilyID, t.ParentID, t.AbsoluteExpiresAt = parent.FamilyID, parent.ID, parent.AbsoluteExpiresAt
	}
	return t
}

// mustCreate stores t.
func mustCreate(t testing.TB, db *DB, tok *identity.RefreshToken) {
	t.Helper()
	if err := db.CreateRefreshToken(context.Background(), tok); err != nil {
		t.Fatalf("CreateRefreshToken(%s): %v", tok.ID, err)
	}
}

// goRotate runs RotateRefreshToken(old.ID, next) in a goroutine.
func goRotate(ctx context.Context, db *DB, old, next *identity.RefreshToken, at time.Time) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- db.RotateRefreshToken(ctx, old.ID, at, []byte("sealed-"+next.ID), next) }()
	return ch
}

// waitTaken waits until the committer has taken what was queued and has
// committed no group since before (it waits for the held writer).
func waitTaken(t *testing.T, db *DB, before CommitStats) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(db.commits.queue) > 0 || db.CommitStats() != before; {
		if time.Now().After(deadline) {
			t.Fatal("the committer did not take the first write")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let it reach BeginTx
}

// wantToken checks the stored state of tok: present or not, and rotated
// to successor (nil: not rotated).
func wantToken(t *testing.T, db *DB, tok *identity.RefreshToken, present bool, successor *identity.RefreshToken) {
	t.Helper()
	got, err := db.RefreshTokenByHash(context.Background(), tok.Hash)
	switch {
	case !present:
		if !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("token %s: got %v, %v; want it not stored", tok.ID, got, err)
		}
		return
	case err != nil:
		t.Errorf("token %s: %v", tok.ID, err)
		return
	}
	switch {
	case successor == nil && (!got.RotatedAt.IsZero() || got.SuccessorID != "" || got.SuccessorSealed != nil):
		t.Errorf("token %s is rotated to %q, want it current", tok.ID, got.SuccessorID)
	case successor != nil && (got.RotatedAt.IsZero() || got.SuccessorID != successor.ID || string(got.SuccessorSealed) != "sealed-"+successor.ID):
		t.Errorf("token %s: rotated at %v to %q (sealed %q), want rotated to %s", tok.ID, got.RotatedAt, got.SuccessorID, got.SuccessorSealed, successor.ID)
	}
}

// TestGroupCommitRotationsShareCommits: rotations, a login's new family and
// a binding update that wait behind a busy writer commit in one
// transaction; two rotations of one token in that group still make one
// successor (the compare-and-swap holds inside a group), and the loser
// changes nothing.
func TestGroupCommitRotationsShareCommits(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	at := now.Add(time.Minute)
	u := refreshUser(t, db)
	const n = 8
	olds, nexts := make([]*identity.RefreshToken, n), make([]*identity.RefreshToken, n)
	for i := range n {
		olds[i] = testToken(u, fmt.Sprint("old", i), nil, now)
		nexts[i] = testToken(u, fmt.Sprint("next", i), olds[i], at)
		mustCreate(t, db, olds[i])
	}
	// The twin competes with nexts[0] for olds[0].
	twin := testToken(u, "twin", olds[0], at)
	login := testToken(u, "login", nil, at)

	release := holdWriter(t, db)
	before := db.CommitStats()
	first := goRotate(ctx, db, olds[n-1], nexts[n-1], at)
	waitTaken(t, db, before)
	rotations := make([]<-chan error, n-1)
	for i := range n - 1 {
		rotations[i] = goRotate(ctx, db, olds[i], nexts[i], at)
		waitQueued(t, db, i+1)
	}
	twinDone := goRotate(ctx, db, olds[0], twin, at)
	waitQueued(t, db, n)
	loginDone := make(chan error, 1)
	go func() { loginDone <- db.CreateRefreshToken(ctx, login) }()
	waitQueued(t, db, n+1)
	binding := goUpdate(ctx, db, "sip:alice@example.com", at, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{binding("sip:alice@example.com", 1, at, at.Add(time.Hour))}, nil
	})
	waitQueued(t, db, n+2)
	release()

	if err := <-first; err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	for i, ch := range rotations {
		if err := <-ch; err != nil {
			t.Errorf("rotation %d: %v", i, err)
		}
	}
	if err := <-twinDone; !errors.Is(err, identity.ErrConflict) {
		t.Errorf("second rotation of one token in the group: %v, want ErrConflict", err)
	}
	if err := <-loginDone; err != nil {
		t.Errorf("CreateRefreshToken: %v", err)
	}
	if r := <-binding; r.err != nil || len(r.out) != 1 {
		t.Errorf("binding update: %v, %d bindings", r.err, len(r.out))
	}
	for i := range n {
		wantToken(t, db, olds[i], true, nexts[i])
		wantToken(t, db, nexts[i], true, nil)
	}
	wantToken(t, db, twin, false, nil)
	wantToken(t, db, login, true, nil)
	if st := db.CommitStats(); st.Groups-before.Groups != 2 || st.Updates-before.Updates != n+3 {
		t.Fatalf("CommitStats went from %+v to %+v, want 2 groups (the first alone, then the %d that queued) of %d writes",
			before, st, n+2, n+3)
	}
}

// TestGroupCommitKeepsRotationsIndependent: a rotation that fails in a
// group (an unknown token, a token already rotated, a successor whose hash
// is taken: the last fails after its UPDATE ran) changes nothing and
// returns its own error, while the rotations around it are stored.
func TestGroupCommitKeepsRotationsIndependent(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	at := now.Add(time.Minute)
	u := refreshUser(t, db)
	tok := func(name string) *identity.RefreshToken {
		x := testToken(u, name, nil, now)
		mustCreate(t, db, x)
		return x
	}
	good1, good2, taken, spent, blocker := tok("good1"), tok("good2"), tok("taken"), tok("spent"), tok("blocker")
	spentNext := testToken(u, "spent-next", spent, now)
	if err := db.RotateRefreshToken(ctx, spent.ID, now, []byte("sealed-"+spentNext.ID), spentNext); err != nil {
		t.Fatal(err)
	}
	good1Next, good2Next := testToken(u, "good1-next", good1, at), testToken(u, "good2-next", good2, at)
	ghost := testToken(u, "ghost", nil, now) // never stored
	ghostNext := testToken(u, "ghost-next", ghost, at)
	spentAgain := testToken(u, "spent-again", spent, at)
	// takenNext reuses good1Next's hash: its insert fails once the UPDATE
	// of taken has run, and that UPDATE must be undone.
	takenNext := testToken(u, "taken-next", taken, at)
	takenNext.Hash = good1Next.Hash

	release := holdWriter(t, db)
	before := db.CommitStats()
	first := goRotate(ctx, db, blocker, testToken(u, "blocker-next", blocker, at), at)
	waitTaken(t, db, before)
	var queued int
	rotate := func(old, next *identity.RefreshToken) <-chan error {
		ch := goRotate(ctx, db, old, next, at)
		queued++
		waitQueued(t, db, queued)
		return ch
	}
	r1 := rotate(good1, good1Next)
	rGhost := rotate(ghost, ghostNext)
	rSpent := rotate(spent, spentAgain)
	rTaken := rotate(taken, takenNext)
	r2 := rotate(good2, good2Next)
	release()

	if err := <-first; err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	for name, c := range map[string]struct {
		ch   <-chan error
		want error
	}{
		"good1":               {r1, nil},
		"an unknown token":    {rGhost, identity.ErrNotFound},
		"a rotated token":     {rSpent, identity.ErrConflict},
		"a taken hash":        {rTaken, identity.ErrConflict},
		"good2 after failure": {r2, nil},
	} {
		err := <-c.ch
		if (c.want == nil && err != nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("rotation of %s: %v, want %v", name, err, c.want)
		}
	}
	wantToken(t, db, good1, true, good1Next)
	wantToken(t, db, good1Next, true, nil)
	wantToken(t, db, good2, true, good2Next)
	wantToken(t, db, good2Next, true, nil)
	wantToken(t, db, ghostNext, false, nil)
	wantToken(t, db, spent, true, spentNext)
	wantToken(t, db, taken, true, nil) // its UPDATE was rolled back
	if got, err := db.RefreshTokenByHash(ctx, good1Next.Hash); err != nil || got.ID != good1Next.ID {
		t.Errorf("the hash takenNext reused belongs to %v (%v), want %s", got, err, good1Next.ID)
	}
	if st := db.CommitStats(); st.Groups-before.Groups != 2 || st.Updates-before.Updates != 6 {
		t.Fatalf("CommitStats went from %+v to %+v, want 2 groups of 6 writes", before, st)
	}
}

// TestGroupCommitWithdrawsAbandonedRotation: a rotation whose context ends
// while it waits in the queue is never applied, and its caller is told:
// the token stays current and can be rotated afterwards.
func TestGroupCommitWithdrawsAbandonedRotation(t *testing.T) {
	db, _ := openTemp(t)
	now := time.UnixMilli(1_700_000_000_000).UTC()
	at := now.Add(time.Minute)
	u := refreshUser(t, db)
	blocker, old := testToken(u, "blocker", nil, now), testToken(u, "old", nil, now)
	mustCreate(t, db, blocker)
	mustCreate(t, db, old)

	release := holdWriter(t, db)
	before := db.CommitStats()
	first := goRotate(context.Background(), db, blocker, testToken(u, "blocker-next", blocker, at), at)
	waitTaken(t, db, before)
	ctx, cancel := context.WithCancel(context.Background())
	next := testToken(u, "next", old, at)
	abandoned := goRotate(ctx, db, old, next, at)
	waitQueued(t, db, 1)
	cancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned rotation returned %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wantToken(t, db, old, true, nil)
	wantToken(t, db, next, false, nil)
	// The withdrawn rotation left the token current: rotating it works.
	again := testToken(u, "again", old, at)
	if err := db.RotateRefreshToken(context.Background(), old.ID, at, []byte("sealed-"+again.ID), again); err != nil {
		t.Fatalf("rotating after the withdrawn rotation: %v", err)
	}
	wantToken(t, db, old, true, again)
}

// TestGroupCommitRotationIsCommittedOnReturn: a rotation is committed
// when RotateRefreshToken returns: another connection to the file, which
// sees only committed transactions, reads it.
func TestGroupCommitRotationIsCommittedOnReturn(t *testing.T) {
	db, path := openTemp(t)
	now := time.UnixMilli(1_700_000_000_000).UTC()
	u := refreshUser(t, db)
	old := testToken(u, "old", nil, now)
	mustCreate(t, db, old)
	next := testToken(u, "next", old, now)
	if err := db.RotateRefreshToken(context.Background(), old.ID, now, []byte("sealed-"+next.ID), next); err != nil {
		t.Fatal(err)
	}
	again, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	wantToken(t, again, old, true, next)
	wantToken(t, again, next, true, nil)
}
