package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// changeStampTests check identity.ChangeStamper, an optional interface: a
// backend without it skips them (identity then caches with a time limit
// only, and the Regulator queries the store at every check).
//
// What a backend must do to pass:
//   - Keep three stamps, "users", "locks" and "failures", shared by every
//     process and node on the database (in SQL: a table of counters, one
//     row per name; a stamp may also be the sum of several counters).
//   - Change "users" in the same transaction as every insert and delete of a
//     user, every update of a user's fields (one that sets only the login
//     time, TouchLogin, may leave it alone), every change to a user's roles
//     and every insert, replace or delete of SIP credentials, the deletes
//     cascading from DeleteUser included. Change "locks" in the same
//     transaction as every Lock (new or extended) and every lock deleted by
//     PruneAttempts. Change "failures" in the same transaction as every
//     failure of an identity.AttemptUser key recorded (RecordFailure) or
//     deleted (ClearFailures, PruneAttempts); failures of addresses may
//     leave it alone. Triggers on the tables do this for writes from any
//     process, the CLI's included; bumping from Go code would miss other
//     writers.
//   - After a change, ChangeStamp must return a value that differs from
//     every value it returned before (a counter that only grows). Spurious
//     changes are allowed and cost readers a reload; a change that leaves
//     the stamp as it was is a stale cache in production.
//   - Return an error matching identity.ErrInvalid for any other name.
var changeStampTests = []subtest{
	{"an unknown name is invalid", func(t *testing.T, s Store) {
		cs := stamper(t, s)
		if _, err := cs.ChangeStamp(context.Background(), "nope"); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("ChangeStamp(nope): %v, want an error matching ErrInvalid", err)
		}
	}},
	{"users changes with every user, role and SIP credential write", func(t *testing.T, s Store) {
		ctx := context.Background()
		w := newStampWatcher(t, s, identity.StampUsers)
		alice := newUser("alice")
		w.changes("CreateUser", func() error {
			return s.CreateUser(ctx, alice, &identity.Credentials{SIP: sipCreds("alice")})
		})
		w.changes("CreateUsers", func() error {
			return s.CreateUsers(ctx, []*identity.User{newUser("bob"), newUser("carol")}, nil)
		})
		w.changes("UpdateUser disabling", func() error {
			_, err := s.UpdateUser(ctx, alice.ID, func(u *identity.User) error { u.Active = false; return nil })
			return err
		})
		w.changes("UpdateUser changing the roles", func() error {
			_, err := s.UpdateUser(ctx, alice.ID, func(u *identity.User) error {
				u.Roles = []identity.Role{identity.RoleAdmin, identity.RoleUser}
				return nil
			})
			return err
		})
		w.changes("UpdateUser changing the email", func() error {
			_, err := s.UpdateUser(ctx, alice.ID, func(u *identity.User) error { u.Email = "alice@example.com"; return nil })
			return err
		})
		w.changes("SetCredentials", func() error {
			return s.SetCredentials(ctx, alice.ID, &identity.Credentials{SIP: sipCreds("alice2")}, false, base.Add(time.Minute))
		})
		w.changes("SetCredentials to token-only", func() error {
			return s.SetCredentials(ctx, alice.ID, &identity.Credentials{}, true, base.Add(2*time.Minute))
		})
		w.changes("DeleteUser", func() error { return s.DeleteUser(ctx, alice.ID) })
	}},
	{"locks changes with every lock placed, extended or pruned", func(t *testing.T, s Store) {
		ctx := context.Background()
		w := newStampWatcher(t, s, identity.StampLocks)
		w.changes("Lock of a user", func() error { return s.Lock(ctx, userKey("alice"), base.Add(time.Hour)) })
		w.changes("Lock of an address", func() error { return s.Lock(ctx, addrKey("192.0.2.1"), base.Add(time.Hour)) })
		w.changes("Lock extending a lock", func() error { return s.Lock(ctx, userKey("alice"), base.Add(2*time.Hour)) })
		w.changes("PruneAttempts deleting a lock", func() error {
			n, err := s.PruneAttempts(ctx, base.Add(90*time.Minute))
			if err == nil && n != 1 {
				t.Errorf("PruneAttempts = %d, want 1 (the address lock)", n)
			}
			return err
		})
	}},
	{"failures changes with every failure of a user recorded, cleared or pruned", func(t *testing.T, s Store) {
		ctx := context.Background()
		w := newStampWatcher(t, s, identity.StampFailures)
		w.changes("RecordFailure of a user", func() error {
			_, err := s.RecordFailure(ctx, userKey("alice"), base, base)
			return err
		})
		w.changes("RecordFailure of the same user again", func() error {
			_, err := s.RecordFailure(ctx, userKey("alice"), base.Add(time.Second), base)
			return err
		})
		w.changes("RecordFailure of another user", func() error {
			_, err := s.RecordFailure(ctx, userKey("bob"), base.Add(time.Hour), base)
			return err
		})
		w.changes("ClearFailures of a user with failures", func() error { return s.ClearFailures(ctx, userKey("alice")) })
		mustFail(t, s, addrKey("192.0.2.1"), base, base) // may change it or not
		w.read("after a failure of an address")
		w.changes("PruneAttempts deleting a user's failure", func() error {
			n, err := s.PruneAttempts(ctx, base.Add(90*time.Minute))
			if err == nil && n != 2 {
				t.Errorf("PruneAttempts = %d, want 2 (bob's and the address's failures)", n)
			}
			return err
		})
	}},
}

// stamper returns s as a ChangeStamper, or skips the test.
func stamper(t *testing.T, s Store) identity.ChangeStamper {
	t.Helper()
	cs, ok := s.(identity.ChangeStamper)
	if !ok {
		t.Skipf("%T does not implement identity.ChangeStamper (optional)", s)
	}
	return cs
}

// stampWatcher checks that a stamp takes a new value after each change.
type stampWatcher struct {
	t    *testing.T
	cs   identity.ChangeStamper
	name string
	seen map[int64]string // value -> the change that produced it
}

func newStampWatcher(t *testing.T, s Store, name string) *stampWatcher {
	t.Helper()
	w := &stampWatcher{t: t, cs: stamper(t, s), name: name, seen: map[int64]string{}}
	w.seen[w.read("at the start")] = "the start"
	return w
}

func (w *stampWatcher) read(what string) int64 {
	w.t.Helper()
	v, err := w.cs.ChangeStamp(context.Background(), w.name)
	if err != nil {
		w.t.Fatalf("ChangeStamp(%s) %s: %v", w.name, what, err)
	}
	return v
}

// changes runs change and fails the test unless the stamp then differs
// from every value read before.
func (w *stampWatcher) changes(what string, change func() error) {
	w.t.Helper()
	if err := change(); err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	v := w.read("after " + what)
	if prev, dup := w.seen[v]; dup {
		w.t.Errorf("stamp %q after %s is %d, the value it had after %s", w.name, what, v, prev)
	}
	w.seen[v] = what
}
