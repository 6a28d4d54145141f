package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
)

// stamp reads the change stamp name of db or fails t.
func stamp(t testing.TB, db *DB, name string) int64 {
	t.Helper()
	v, err := db.ChangeStamp(context.Background(), name)
	if err != nil {
		t.Fatalf("ChangeStamp(%s): %v", name, err)
	}
	return v
}

func TestChangeStampsSeeWritesOfAnotherHandleOnTheSameFile(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	other, err := Open(ctx, path) // as the CLI next to a running server
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	users, locks := stamp(t, db, identity.StampUsers), stamp(t, db, identity.StampLocks)

	now := time.Now().UTC().Truncate(time.Millisecond)
	u := &identity.User{ID: uuid.NewString(), Username: "alice", Active: true, CreatedAt: now, UpdatedAt: now}
	if err := other.CreateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	if v := stamp(t, db, identity.StampUsers); v == users {
		t.Errorf("users stamp still %d after another handle created a user", v)
	}
	if err := other.Lock(ctx, identity.AttemptKey{Kind: identity.AttemptAddr, Value: "192.0.2.1"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if v := stamp(t, db, identity.StampLocks); v == locks {
		t.Errorf("locks stamp still %d after another handle placed a lock", v)
	}
	got, err := db.ActiveLocks(ctx, now)
	if err != nil || len(got) != 1 || got[0].Key.Value != "192.0.2.1" || !got[0].Until.Equal(now.Add(time.Hour)) {
		t.Errorf("ActiveLocks after another handle's lock = %v, %v", got, err)
	}
}

func TestUsersStampIgnoresALoginTimeAlone(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	u := &identity.User{ID: uuid.NewString(), Username: "alice", Active: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	before := stamp(t, db, identity.StampUsers)
	if err := db.TouchLogin(ctx, u.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if v := stamp(t, db, identity.StampUsers); v != before {
		t.Errorf("users stamp %d -> %d after TouchLogin: every login would empty every node's credential cache", before, v)
	}
	if err := db.SetPasswordHash(ctx, u.ID, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaA"); err != nil {
		t.Fatal(err)
	}
	if v := stamp(t, db, identity.StampUsers); v == before {
		t.Error("users stamp unchanged after SetPasswordHash")
	}
}
