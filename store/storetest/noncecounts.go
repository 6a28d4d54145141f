package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rvoip/users-core/sip"
)

// nonceCountTests check sip.NonceCountStore, the Digest nonce counts shared
// by the nodes on one database. It is optional: a backend without it skips
// them (users-core then keeps nonce counts per process, which is right for
// one node only).
//
// What a backend must do to pass:
//   - UseNonceCount(nonce, nc) returns true, and records nc, only when nc is
//     higher than every nc recorded for nonce; false for the same or a lower
//     nc, and for nc 0. Nonces are independent of each other and compared
//     byte for byte.
//   - The check and the record are one atomic step, also across
//     connections and nodes: of concurrent calls with one nonce and nc,
//     exactly one returns true (a single upsert whose update only raises
//     nc does it in SQL).
//   - A record is kept until its expiry, the latest expiry given for its
//     nonce; DeleteExpiredNonceCounts(before) deletes those that expired
//     before before (at before stays) and returns how many went.
var nonceCountTests = []subtest{
	{"a count is used once, and only a higher one after it", func(t *testing.T, s Store) {
		nc := nonceCounter(t, s)
		n := testNonce("a")
		exp := base.Add(5 * time.Minute)
		for _, step := range []struct {
			nc   uint32
			want bool
		}{
			{1, true},           // first use
			{1, false},          // the same Authorization again
			{3, true},           // a refresh may skip counts
			{2, false},          // lower than the highest seen
			{3, false},          // the highest again
			{4, true},           // the next one
			{0xffffffff, true},  // the largest count
			{0xffffffff, false}, // and nothing after it
		} {
			got, err := nc.UseNonceCount(context.Background(), n, step.nc, exp)
			if err != nil {
				t.Fatalf("UseNonceCount(nc=%d): %v", step.nc, err)
			}
			if got != step.want {
				t.Fatalf("UseNonceCount(nc=%d) = %v, want %v", step.nc, got, step.want)
			}
		}
	}},
	{"nc 0 is never accepted", func(t *testing.T, s Store) {
		nc := nonceCounter(t, s)
		if ok, err := nc.UseNonceCount(context.Background(), testNonce("zero"), 0, base.Add(time.Minute)); ok || err != nil {
			t.Fatalf("UseNonceCount(nc=0) = %v, %v; want false, nil", ok, err)
		}
		if ok, err := nc.UseNonceCount(context.Background(), testNonce("zero"), 1, base.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("UseNonceCount(nc=1) after nc=0 = %v, %v; want true (nc 0 recorded nothing)", ok, err)
		}
	}},
	{"nonces are counted apart, byte for byte", func(t *testing.T, s Store) {
		nc := nonceCounter(t, s)
		ctx := context.Background()
		exp := base.Add(time.Minute)
		a, b := testNonce("x"), testNonce("X") // differ in case only
		for _, n := range []string{a, b} {
			if ok, err := nc.UseNonceCount(ctx, n, 5, exp); !ok || err != nil {
				t.Fatalf("first use of %s = %v, %v; want true", n, ok, err)
			}
		}
		if ok, err := nc.UseNonceCount(ctx, a, 5, exp); ok || err != nil {
			t.Fatalf("reuse of %s = %v, %v; want false", a, ok, err)
		}
	}},
	{"of concurrent uses of one count exactly one succeeds", func(t *testing.T, s Store) {
		nc := nonceCounter(t, s)
		const workers, rounds = 8, 5
		exp := base.Add(time.Minute)
		for r := 1; r <= rounds; r++ {
			n := testNonce(fmt.Sprint("race", r))
			var wins atomic.Int32
			AtOnce(workers, func(w int) {
				ok, err := nc.UseNonceCount(context.Background(), n, uint32(r), exp)
				if err != nil {
					t.Errorf("UseNonceCount: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
			if got := wins.Load(); got != 1 {
				t.Fatalf("round %d: %d of %d concurrent uses of one nonce and nc succeeded, want exactly 1", r, got, workers)
			}
		}
	}},
	{"expired records are deleted, the others kept", func(t *testing.T, s Store) {
		nc := nonceCounter(t, s)
		ctx := context.Background()
		use := func(n string, count uint32, exp time.Time, want bool) {
			t.Helper()
			if ok, err := nc.UseNonceCount(ctx, n, count, exp); ok != want || err != nil {
				t.Fatalf("UseNonceCount(%s, %d) = %v, %v; want %v", n, count, ok, err, want)
			}
		}
		early, edge, late, extended := testNonce("early"), testNonce("edge"), testNonce("late"), testNonce("extended")
		use(early, 1, base.Add(time.Minute), true)
		use(edge, 1, base.Add(2*time.Minute), true)
		use(late, 1, base.Add(3*time.Minute), true)
		use(extended, 1, base.Add(time.Minute), true)
		use(extended, 2, base.Add(3*time.Minute), true) // the later expiry wins
		use(extended, 3, base, true)                    // an earlier one does not shorten it
		n, err := nc.DeleteExpiredNonceCounts(ctx, base.Add(2*time.Minute))
		if err != nil {
			t.Fatalf("DeleteExpiredNonceCounts: %v", err)
		}
		if n != 1 {
			t.Errorf("DeleteExpiredNonceCounts = %d, want 1 (only the nonce that expired before)", n)
		}
		// Kept records still refuse their counts; the deleted one is gone
		// (its nonce is expired, so the registrar never asks again).
		use(edge, 1, base.Add(2*time.Minute), false)
		use(late, 1, base.Add(3*time.Minute), false)
		use(extended, 3, base.Add(3*time.Minute), false)
		use(early, 1, base.Add(time.Minute), true)
		if n, err := nc.DeleteExpiredNonceCounts(ctx, base.Add(time.Hour)); n != 4 || err != nil {
			t.Errorf("DeleteExpiredNonceCounts an hour later = %d, %v; want 4", n, err)
		}
	}},
}

// nonceCounter returns s as a sip.NonceCountStore, or skips the test.
func nonceCounter(t *testing.T, s Store) sip.NonceCountStore {
	t.Helper()
	nc, ok := s.(sip.NonceCountStore)
	if !ok {
		t.Skipf("%T does not implement sip.NonceCountStore (optional)", s)
	}
	return nc
}

// testNonce returns a 40-character nonce-like string (the length of
// sip.NonceKeeper's nonces) made from tag.
func testNonce(tag string) string {
	const pad = "0000000000000000000000000000000000000000"
	return (tag + pad)[:sip.NonceLen]
}
