package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// activeLockTests check identity.LockLister, an optional interface a
// backend implements together with identity.ChangeStamper; without it they
// skip. ActiveLocks must return every lock that ends strictly after now,
// one entry per key with its stored (latest) end at millisecond precision,
// and no ended lock.
var activeLockTests = []subtest{
	{"lists the locks that end after now, each with its latest end", func(t *testing.T, s Store) {
		ll, ok := s.(identity.LockLister)
		if !ok {
			t.Skipf("%T does not implement identity.LockLister (optional)", s)
		}
		ctx := context.Background()
		now := base
		if got, err := ll.ActiveLocks(ctx, now); err != nil || len(got) != 0 {
			t.Fatalf("ActiveLocks of an empty store = %v, %v; want none", got, err)
		}
		mustLock(t, s, userKey("alice"), now.Add(time.Hour))
		mustLock(t, s, userKey("alice"), now.Add(2*time.Hour+7*time.Millisecond)) // extended
		mustLock(t, s, addrKey("192.0.2.1"), now.Add(time.Minute))
		mustLock(t, s, addrKey("192.0.2.2"), now.Add(-time.Minute)) // ended
		mustLock(t, s, userKey("edge"), now)                        // ends at now: not active
		got, err := ll.ActiveLocks(ctx, now)
		if err != nil {
			t.Fatalf("ActiveLocks: %v", err)
		}
		want := []identity.AttemptLock{
			{Key: addrKey("192.0.2.1"), Until: now.Add(time.Minute)},
			{Key: userKey("alice"), Until: now.Add(2*time.Hour + 7*time.Millisecond)},
		}
		sortLocks(got)
		if !slices.EqualFunc(got, want, func(a, b identity.AttemptLock) bool { return a.Key == b.Key && a.Until.Equal(b.Until) }) {
			t.Errorf("ActiveLocks = %v, want %v", got, want)
		}
		later, err := ll.ActiveLocks(ctx, now.Add(time.Hour))
		if err != nil {
			t.Fatalf("ActiveLocks an hour later: %v", err)
		}
		if len(later) != 1 || later[0].Key != userKey("alice") {
			t.Errorf("ActiveLocks an hour later = %v, want only alice's", later)
		}
	}},
}

func sortLocks(ls []identity.AttemptLock) {
	slices.SortFunc(ls, func(a, b identity.AttemptLock) int {
		if c := strings.Compare(string(a.Key.Kind), string(b.Key.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Value, b.Key.Value)
	})
}
