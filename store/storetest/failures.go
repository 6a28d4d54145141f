package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// failureListTests check identity.FailureLister, an optional interface a
// backend implements together with identity.ChangeStamper; without it they
// skip. UsersWithFailures must return, each once, the value of every
// identity.AttemptUser key with at least one recorded failure, however
// old, and nothing for keys of other kinds, nor for users whose failures
// were cleared or pruned. The Regulator clears a user's failures after a
// success only when the user is in that list: a user missing from it keeps
// failures that should have gone.
var failureListTests = []subtest{
	{"lists each user with failures once, and no address", func(t *testing.T, s Store) {
		fl, ok := s.(identity.FailureLister)
		if !ok {
			t.Skipf("%T does not implement identity.FailureLister (optional)", s)
		}
		ctx := context.Background()
		list := func(what string, want ...string) {
			t.Helper()
			got, err := fl.UsersWithFailures(ctx)
			if err != nil {
				t.Fatalf("%s: UsersWithFailures: %v", what, err)
			}
			slices.Sort(got)
			if want == nil {
				want = []string{}
			}
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: UsersWithFailures = %q, want %q", what, got, want)
			}
		}
		list("an empty store")
		mustFail(t, s, userKey("alice"), base, base)
		mustFail(t, s, userKey("alice"), base.Add(time.Second), base)
		mustFail(t, s, userKey("bob"), base.Add(-24*time.Hour), base.Add(-24*time.Hour)) // old, not pruned yet
		mustFail(t, s, addrKey("192.0.2.1"), base, base)
		mustLock(t, s, userKey("carol"), base.Add(time.Hour)) // a lock is no failure
		list("after failures of alice, bob and an address", "alice", "bob")
		if err := s.ClearFailures(ctx, userKey("alice")); err != nil {
			t.Fatal(err)
		}
		list("after ClearFailures(alice)", "bob")
		if _, err := s.PruneAttempts(ctx, base.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		list("after PruneAttempts of bob's failure")
	}},
}
