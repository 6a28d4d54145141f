package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// The AoRs of the binding tests.
const (
	aliceAoR = "sip:alice@example.com"
	bobAoR   = "sip:bob@example.com"
)

// newBinding returns a binding of aor for user with a fresh ID, contact
// number n, created at base and expiring an hour later, every field set.
func newBinding(aor, user string, n int) sip.Binding {
	contact := fmt.Sprintf("sip:ua%d@192.0.2.%d:5060;transport=tcp", n, n%250+1)
	return sip.Binding{
		ID:         uuid.NewString(),
		AoR:        aor,
		UserID:     user,
		Contact:    contact,
		ContactKey: strings.ToLower(contact),
		Q:          500,
		Instance:   fmt.Sprintf("<urn:uuid:%s>", uuid.NewString()),
		RegID:      1,
		CallID:     fmt.Sprintf("call-%d@192.0.2.1", n),
		CSeq:       uint32(n + 1),
		Path:       []string{"<sip:edge.example.com;lr>"},
		ExpiresAt:  base.Add(time.Hour),
		CreatedAt:  base,
		UpdatedAt:  base,
		Source:     fmt.Sprintf("198.51.100.%d:%d", n%250+1, 40000+n),
		Transport:  "TCP",
		LocalAddr:  "203.0.113.10:5060",
		UserAgent:  "Test UA/1.0",
		Node:       "node-a",
	}
}

// bindingDiff describes how got differs from want, "" when they are equal.
// Times compare with Equal; a nil and an empty Path are equal.
func bindingDiff(got, want sip.Binding) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"ID", got.ID, want.ID},
		{"AoR", got.AoR, want.AoR},
		{"UserID", got.UserID, want.UserID},
		{"Contact", got.Contact, want.Contact},
		{"ContactKey", got.ContactKey, want.ContactKey},
		{"Instance", got.Instance, want.Instance},
		{"CallID", got.CallID, want.CallID},
		{"Source", got.Source, want.Source},
		{"Transport", got.Transport, want.Transport},
		{"LocalAddr", got.LocalAddr, want.LocalAddr},
		{"UserAgent", got.UserAgent, want.UserAgent},
		{"Node", got.Node, want.Node},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if got.Q != want.Q {
		add("Q", got.Q, want.Q)
	}
	if got.RegID != want.RegID {
		add("RegID", got.RegID, want.RegID)
	}
	if got.CSeq != want.CSeq {
		add("CSeq", got.CSeq, want.CSeq)
	}
	if !slices.Equal(got.Path, want.Path) {
		add("Path", fmt.Sprintf("%q", got.Path), fmt.Sprintf("%q", want.Path))
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"UpdatedAt", got.UpdatedAt, want.UpdatedAt},
	} {
		if !f.got.Equal(f.want) {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

// bindingsDiff describes how the list got differs from want, in order, ""
// when they are equal.
func bindingsDiff(got, want []sip.Binding) string {
	if len(got) != len(want) {
		ids := func(bs []sip.Binding) []string {
			var out []string
			for _, b := range bs {
				out = append(out, b.ContactKey)
			}
			return out
		}
		return fmt.Sprintf("%d bindings %q, want %d %q", len(got), ids(got), len(want), ids(want))
	}
	var d []string
	for i := range got {
		if s := bindingDiff(got[i], want[i]); s != "" {
			d = append(d, fmt.Sprintf("[%d] %s", i, s))
		}
	}
	return strings.Join(d, "\n")
}

// checkBindings fails t unless Bindings(aor, now) returns want, in order.
func checkBindings(t testing.TB, s Store, what, aor string, now time.Time, want ...sip.Binding) {
	t.Helper()
	got, err := s.Bindings(context.Background(), aor, now)
	if err != nil {
		t.Fatalf("%s: Bindings(%s): %v", what, aor, err)
	}
	if d := bindingsDiff(got, want); d != "" {
		t.Errorf("%s: Bindings(%s):\n%s", what, aor, d)
	}
}

// mustUpdate runs UpdateBindings(aor, now, fn) and fails t on an error.
func mustUpdate(t testing.TB, s Store, aor string, now time.Time, fn func([]sip.Binding) ([]sip.Binding, error)) []sip.Binding {
	t.Helper()
	out, err := s.UpdateBindings(context.Background(), aor, now, fn)
	if err != nil {
		t.Fatalf("UpdateBindings(%s): %v", aor, err)
	}
	return out
}

// mustSet makes bs the bindings of aor at now, whatever they were.
func mustSet(t testing.TB, s Store, aor string, now time.Time, bs ...sip.Binding) {
	t.Helper()
	mustUpdate(t, s, aor, now, func([]sip.Binding) ([]sip.Binding, error) { return slices.Clone(bs), nil })
}

// mustCountBindings returns CountBindings(now) and fails t on an error.
func mustCountBindings(t testing.TB, s Store, now time.Time) int {
	t.Helper()
	n, err := s.CountBindings(context.Background(), now)
	if err != nil {
		t.Fatalf("CountBindings: %v", err)
	}
	return n
}

// mustDeleteExpired returns DeleteExpiredBindings(before) and fails t on an
// error.
func mustDeleteExpired(t testing.TB, s Store, before time.Time) int {
	t.Helper()
	n, err := s.DeleteExpiredBindings(context.Background(), before)
	if err != nil {
		t.Fatalf("DeleteExpiredBindings: %v", err)
	}
	return n
}

var bindingTests = []subtest{
	{"a binding is found by id, expired or not, and a missing id is not found", func(t *testing.T, s Store) {
		b := newBinding("sip:alice@example.com", "u1", 1)
		mustSet(t, s, b.AoR, base, b)
		got, err := s.BindingByID(context.Background(), b.ID)
		if err != nil {
			t.Fatalf("BindingByID: %v", err)
		}
		if d := bindingDiff(*got, b); d != "" {
			t.Errorf("BindingByID: %s", d)
		}
		if _, err := s.BindingByID(context.Background(), "no-such-binding"); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("BindingByID(missing) = %v, want ErrNotFound", err)
		}
	}},
	{"an AoR without bindings has none", func(t *testing.T, s Store) {
		checkBindings(t, s, "a fresh store", aliceAoR, base)
		mustUpdate(t, s, aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			if len(cur) != 0 {
				t.Errorf("fn got %d bindings, want none", len(cur))
			}
			return cur, nil
		})
		checkBindings(t, s, "after an update that added none", aliceAoR, base)
		if n := mustCountBindings(t, s, base); n != 0 {
			t.Errorf("CountBindings = %d, want 0", n)
		}
	}},
	{"an inserted binding round-trips every field", func(t *testing.T, s Store) {
		full := newBinding(aliceAoR, "user-1", 1)
		full.Path = []string{"<sip:p2.example.net;lr>", "<sip:p1.example.org;lr;ob>", `<sip:"odd"\path@example.com;lr>`}
		full.Q = 1000
		full.CSeq = 1<<32 - 1
		full.RegID = 7
		full.UserAgent = "Téléphone \"Zoiper\" 5.6 <beta>"
		full.ExpiresAt = base.Add(3600*time.Second + 999*time.Millisecond)
		full.CreatedAt = base.Add(-time.Millisecond)
		full.UpdatedAt = base.Add(time.Millisecond)
		bare := sip.Binding{ // what a plain RFC 3261 client leaves empty
			ID:         uuid.NewString(),
			AoR:        aliceAoR,
			UserID:     "issuer:sub-1",
			Contact:    "sip:alice@192.0.2.7",
			ContactKey: "sip:alice@192.0.2.7",
			Q:          -1,
			CallID:     "c",
			ExpiresAt:  base.Add(time.Minute),
			CreatedAt:  base,
			UpdatedAt:  base,
		}
		empty := newBinding(aliceAoR, "user-1", 2)
		empty.Path = []string{}
		empty.CreatedAt = base.Add(time.Second)
		got := mustUpdate(t, s, aliceAoR, base, func([]sip.Binding) ([]sip.Binding, error) {
			return []sip.Binding{full, bare, empty}, nil
		})
		if len(got) != 3 || got[0].ID != full.ID {
			t.Errorf("UpdateBindings returned %d bindings, want fn's 3", len(got))
		}
		want := []sip.Binding{full, bare, empty} // created at base-1ms, base, base+1s
		checkBindings(t, s, "the inserted bindings", aliceAoR, base, want...)
		mustUpdate(t, s, aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			if d := bindingsDiff(cur, want); d != "" {
				t.Errorf("fn got:\n%s", d)
			}
			return cur, nil
		})
		checkBindings(t, s, "after an update that changed nothing", aliceAoR, base, want...)
	}},
	{"bindings come sorted by creation time, then id", func(t *testing.T, s Store) {
		var bs []sip.Binding
		for i, created := range []time.Duration{3, 1, 2, 1, 1} {
			b := newBinding(aliceAoR, "user-1", i)
			b.CreatedAt = base.Add(created * time.Second)
			bs = append(bs, b)
		}
		mustSet(t, s, aliceAoR, base, bs...)
		want := slices.Clone(bs)
		slices.SortFunc(want, func(a, b sip.Binding) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		checkBindings(t, s, "five bindings inserted out of order", aliceAoR, base, want...)
		mustUpdate(t, s, aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			if d := bindingsDiff(cur, want); d != "" {
				t.Errorf("fn got:\n%s", d)
			}
			return cur, nil
		})
	}},
	{"an update replaces every field of a binding", func(t *testing.T, s Store) {
		old := newBinding(aliceAoR, "user-1", 1)
		other := newBinding(aliceAoR, "user-1", 2)
		other.CreatedAt = base.Add(time.Minute)
		mustSet(t, s, aliceAoR, base, old, other)
		now := base.Add(10 * time.Minute)
		next := newBinding(aliceAoR, "user-2", 3) // every field different
		next.ID = old.ID
		next.Path = []string{"<sip:a.example.com;lr>", "<sip:b.example.com;lr>"}
		next.Q, next.RegID, next.CSeq = 100, 2, 99
		next.ExpiresAt = now.Add(30 * time.Minute)
		next.CreatedAt = base.Add(-time.Minute)
		next.UpdatedAt = now
		next.Transport, next.Node = "WSS", "node-b"
		mustUpdate(t, s, aliceAoR, now, func(cur []sip.Binding) ([]sip.Binding, error) {
			return []sip.Binding{next, cur[1]}, nil
		})
		checkBindings(t, s, "after replacing the first binding", aliceAoR, now, next, other)
	}},
	{"changing the bindings fn was given in place is an update", func(t *testing.T, s Store) {
		b := newBinding(aliceAoR, "user-1", 1)
		mustSet(t, s, aliceAoR, base, b)
		now := base.Add(time.Minute)
		mustUpdate(t, s, aliceAoR, now, func(cur []sip.Binding) ([]sip.Binding, error) {
			cur[0].ExpiresAt = now.Add(2 * time.Hour)
			cur[0].CSeq++
			cur[0].Path[0] = "<sip:other-edge.example.com;lr>"
			cur[0].UpdatedAt = now
			return cur, nil
		})
		b.ExpiresAt, b.CSeq, b.UpdatedAt = now.Add(2*time.Hour), b.CSeq+1, now
		b.Path = []string{"<sip:other-edge.example.com;lr>"}
		checkBindings(t, s, "the refreshed binding", aliceAoR, now, b)
	}},
	{"a binding left out of the result is deleted", func(t *testing.T, s Store) {
		a, b, c := newBinding(aliceAoR, "user-1", 1), newBinding(aliceAoR, "user-1", 2), newBinding(aliceAoR, "user-1", 3)
		b.CreatedAt, c.CreatedAt = base.Add(time.Second), base.Add(2*time.Second)
		mustSet(t, s, aliceAoR, base, a, b, c)
		mustUpdate(t, s, aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			return []sip.Binding{cur[0], cur[2]}, nil
		})
		checkBindings(t, s, "after leaving out the second", aliceAoR, base, a, c)
		mustSet(t, s, aliceAoR, base)
		checkBindings(t, s, "after an empty result", aliceAoR, base)
		if n := mustCountBindings(t, s, base); n != 0 {
			t.Errorf("CountBindings = %d after removing every binding, want 0", n)
		}
	}},
	{"two bindings can swap contacts in one update", func(t *testing.T, s Store) {
		a, b := newBinding(aliceAoR, "user-1", 1), newBinding(aliceAoR, "user-1", 2)
		b.CreatedAt = base.Add(time.Second)
		mustSet(t, s, aliceAoR, base, a, b)
		mustUpdate(t, s, aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			cur[0].Contact, cur[1].Contact = cur[1].Contact, cur[0].Contact
			cur[0].ContactKey, cur[1].ContactKey = cur[1].ContactKey, cur[0].ContactKey
			return cur, nil
		})
		a.Contact, b.Contact = b.Contact, a.Contact
		a.ContactKey, b.ContactKey = b.ContactKey, a.ContactKey
		checkBindings(t, s, "after the swap", aliceAoR, base, a, b)
	}},
	{"a binding may be replaced by a new one for the same contact", func(t *testing.T, s Store) {
		old := newBinding(aliceAoR, "user-1", 1)
		mustSet(t, s, aliceAoR, base, old)
		repl := old
		repl.ID = uuid.NewString()
		repl.CallID = "a new call-id"
		mustSet(t, s, aliceAoR, base, repl)
		checkBindings(t, s, "after the replacement", aliceAoR, base, repl)
	}},
	{"expired bindings are not passed to fn nor returned and the next update of their AoR deletes them", func(t *testing.T, s Store) {
		now := base.Add(time.Hour)
		live := newBinding(aliceAoR, "user-1", 1)
		live.ExpiresAt = now.Add(time.Millisecond)
		atNow := newBinding(aliceAoR, "user-1", 2) // expired at now: ExpiresAt is not after it
		atNow.ExpiresAt = now
		atNow.CreatedAt = base.Add(time.Second)
		past := newBinding(aliceAoR, "user-1", 3)
		past.ExpiresAt = now.Add(-time.Minute)
		past.CreatedAt = base.Add(2 * time.Second)
		bobs := newBinding(bobAoR, "user-2", 4)
		bobs.ExpiresAt = now.Add(-time.Minute)
		mustSet(t, s, aliceAoR, base, live, atNow, past)
		mustSet(t, s, bobAoR, base, bobs)

		checkBindings(t, s, "alice's bindings before they expire", aliceAoR, base, live, atNow, past)
		checkBindings(t, s, "alice's bindings at now", aliceAoR, now, live)
		checkBindings(t, s, "bob's bindings at now", bobAoR, now)
		if n := mustCountBindings(t, s, now); n != 1 {
			t.Errorf("CountBindings at now = %d, want 1", n)
		}
		mustUpdate(t, s, aliceAoR, now, func(cur []sip.Binding) ([]sip.Binding, error) {
			if d := bindingsDiff(cur, []sip.Binding{live}); d != "" {
				t.Errorf("fn got:\n%s", d)
			}
			return cur, nil
		})
		checkBindings(t, s, "alice's bindings at now after her update", aliceAoR, now, live)
		// Alice's update deleted her two expired bindings; bob's is left.
		if n := mustDeleteExpired(t, s, now.Add(time.Millisecond)); n != 1 {
			t.Errorf("DeleteExpiredBindings after alice's update = %d, want 1 (bob's only)", n)
		}
		checkBindings(t, s, "alice's bindings seen from before they expired", aliceAoR, base, live)
	}},
	{"an error from fn is returned as is and changes nothing", func(t *testing.T, s Store) {
		a := newBinding(aliceAoR, "user-1", 1)
		mustSet(t, s, aliceAoR, base, a)
		errFn := errors.New("fn failed")
		out, err := s.UpdateBindings(context.Background(), aliceAoR, base.Add(time.Minute), func(cur []sip.Binding) ([]sip.Binding, error) {
			cur[0].ExpiresAt = base.Add(48 * time.Hour)
			return append(cur, newBinding(aliceAoR, "user-1", 2)), errFn
		})
		if err != errFn {
			t.Errorf("UpdateBindings = %v, want fn's error itself", err)
		}
		if out != nil {
			t.Errorf("UpdateBindings returned %d bindings with the error", len(out))
		}
		checkBindings(t, s, "after the failed update", aliceAoR, base, a)
	}},
	{"a result with a binding of another AoR is refused and changes nothing", func(t *testing.T, s Store) {
		a := newBinding(aliceAoR, "user-1", 1)
		mustSet(t, s, aliceAoR, base, a)
		_, err := s.UpdateBindings(context.Background(), aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			cur[0].CSeq++
			return append(cur, newBinding(aliceAoR, "user-1", 2), newBinding(bobAoR, "user-1", 3)), nil
		})
		wantErr(t, "UpdateBindings with a binding of bob", err, identity.ErrInvalid)
		checkBindings(t, s, "alice's bindings", aliceAoR, base, a)
		checkBindings(t, s, "bob's bindings", bobAoR, base)
	}},
	{"a result with a binding without an id is refused and changes nothing", func(t *testing.T, s Store) {
		a := newBinding(aliceAoR, "user-1", 1)
		mustSet(t, s, aliceAoR, base, a)
		_, err := s.UpdateBindings(context.Background(), aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			b := newBinding(aliceAoR, "user-1", 2)
			b.ID = ""
			return append(cur[:0], b), nil
		})
		wantErr(t, "UpdateBindings with a binding without an id", err, identity.ErrInvalid)
		checkBindings(t, s, "alice's bindings", aliceAoR, base, a)
	}},
	{"UpdateBindings returns what fn returned", func(t *testing.T, s Store) {
		a, b := newBinding(aliceAoR, "user-1", 1), newBinding(aliceAoR, "user-1", 2)
		b.CreatedAt = base.Add(-time.Second) // listed first, sorted second
		out := mustUpdate(t, s, aliceAoR, base, func([]sip.Binding) ([]sip.Binding, error) {
			return []sip.Binding{a, b}, nil
		})
		if d := bindingsDiff(out, []sip.Binding{a, b}); d != "" {
			t.Errorf("UpdateBindings returned:\n%s", d)
		}
	}},
	{"AoRs are independent", func(t *testing.T, s Store) {
		a1, a2 := newBinding(aliceAoR, "user-1", 1), newBinding(aliceAoR, "user-1", 2)
		a2.CreatedAt = base.Add(time.Second)
		b1 := newBinding(bobAoR, "user-2", 1) // the same contact as a1
		mustSet(t, s, aliceAoR, base, a1, a2)
		mustSet(t, s, bobAoR, base, b1)
		mustUpdate(t, s, bobAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			if d := bindingsDiff(cur, []sip.Binding{b1}); d != "" {
				t.Errorf("fn for bob got:\n%s", d)
			}
			return cur, nil
		})
		mustSet(t, s, aliceAoR, base, a2)
		checkBindings(t, s, "alice's bindings", aliceAoR, base, a2)
		checkBindings(t, s, "bob's bindings", bobAoR, base, b1)
		mustSet(t, s, bobAoR, base)
		checkBindings(t, s, "alice's bindings after bob's went", aliceAoR, base, a2)
	}},
	{"20 concurrent updates of one AoR each adding a contact lose none", func(t *testing.T, s Store) {
		const n = 20
		added := make([]sip.Binding, n)
		errs := make([]error, n)
		for i := range n {
			added[i] = newBinding(aliceAoR, "user-1", i)
			added[i].CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
		}
		AtOnce(n, func(i int) {
			_, errs[i] = s.UpdateBindings(context.Background(), aliceAoR, base, func(cur []sip.Binding) ([]sip.Binding, error) {
				return append(cur, added[i]), nil
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}
		checkBindings(t, s, "after 20 concurrent updates", aliceAoR, base, added...)
	}},
	{"DeleteExpiredBindings deletes the bindings that expired before the time given and counts them", func(t *testing.T, s Store) {
		before := base.Add(time.Hour)
		var alice, bob []sip.Binding
		for i, exp := range []time.Duration{-time.Hour, -time.Millisecond, 0, time.Millisecond} {
			a := newBinding(aliceAoR, "user-1", i)
			a.ExpiresAt = before.Add(exp)
			a.CreatedAt = base.Add(time.Duration(i) * time.Second)
			alice = append(alice, a)
			b := newBinding(bobAoR, "user-2", i)
			b.ExpiresAt = before.Add(exp)
			b.CreatedAt = a.CreatedAt
			bob = append(bob, b)
		}
		mustSet(t, s, aliceAoR, base, alice...)
		mustSet(t, s, bobAoR, base, bob...)
		if n := mustDeleteExpired(t, s, before); n != 4 {
			t.Errorf("DeleteExpiredBindings = %d, want 4", n)
		}
		// The one expiring exactly at before was not expired before it.
		checkBindings(t, s, "alice's bindings", aliceAoR, base, alice[2:]...)
		checkBindings(t, s, "bob's bindings", bobAoR, base, bob[2:]...)
		if n := mustDeleteExpired(t, s, before); n != 0 {
			t.Errorf("DeleteExpiredBindings again = %d, want 0", n)
		}
	}},
	{"renewed bindings outlive the sweep at their old expiry and go at their new one", func(t *testing.T, s Store) {
		// A renewal changes only Call-ID, CSeq, expiry and update time; a
		// backend may then keep its sweep bookkeeping, which must still
		// find the binding once it expires, and must keep it until then.
		// Renewed several times, renewed with a shorter expiry (a whole
		// rewrite), renewed and swept twice: each is counted and swept at
		// its last expiry.
		renew := func(at, expires time.Time) func([]sip.Binding) ([]sip.Binding, error) {
			return func(cur []sip.Binding) ([]sip.Binding, error) {
				for i := range cur {
					cur[i].CallID = fmt.Sprintf("renewal-%d@192.0.2.1", at.UnixMilli())
					cur[i].CSeq++
					cur[i].ExpiresAt, cur[i].UpdatedAt = expires, at
				}
				return cur, nil
			}
		}
		often, shorter, kept := newBinding(aliceAoR, "user-1", 1), newBinding(bobAoR, "user-2", 2), newBinding("sip:carol@example.com", "user-3", 3)
		for _, b := range []*sip.Binding{&often, &shorter, &kept} {
			b.ExpiresAt = base.Add(time.Minute)
			mustSet(t, s, b.AoR, base, *b)
		}
		for i := 1; i <= 3; i++ {
			at := base.Add(time.Duration(i) * 20 * time.Second)
			mustUpdate(t, s, aliceAoR, at, renew(at, at.Add(time.Minute)))
		}
		mustUpdate(t, s, bobAoR, base.Add(10*time.Second), renew(base.Add(10*time.Second), base.Add(30*time.Second)))
		mustUpdate(t, s, "sip:carol@example.com", base.Add(50*time.Second), renew(base.Add(50*time.Second), base.Add(3*time.Minute)))
		// often expires at base+2m, shorter at base+30s, kept at base+3m.
		for _, c := range []struct {
			at          time.Duration
			swept, left int
		}{{31 * time.Second, 1, 2}, {90 * time.Second, 0, 2}, {90 * time.Second, 0, 2}, {121 * time.Second, 1, 1}, {181 * time.Second, 1, 0}} {
			at := base.Add(c.at)
			if n := mustCountBindings(t, s, at); n != c.left {
				t.Errorf("CountBindings at base+%v = %d, want %d", c.at, n, c.left)
			}
			if n := mustDeleteExpired(t, s, at); n != c.swept {
				t.Errorf("DeleteExpiredBindings at base+%v = %d, want %d", c.at, n, c.swept)
			}
			if n := mustCountBindings(t, s, at); n != c.left {
				t.Errorf("CountBindings after the sweep at base+%v = %d, want %d", c.at, n, c.left)
			}
			if c.at == 90*time.Second {
				got := mustUpdate(t, s, aliceAoR, at, func(cur []sip.Binding) ([]sip.Binding, error) { return cur, nil })
				if len(got) != 1 || !got[0].ExpiresAt.Equal(base.Add(2*time.Minute)) {
					t.Errorf("alice's binding at base+%v: %+v, want one expiring at base+2m", c.at, got)
				}
			}
		}
	}},
	{"CountBindings counts the bindings of every AoR not expired at the time given", func(t *testing.T, s Store) {
		var alice []sip.Binding
		for i := range 3 {
			a := newBinding(aliceAoR, "user-1", i)
			a.ExpiresAt = base.Add(time.Duration(i+1) * time.Minute)
			alice = append(alice, a)
		}
		bob := newBinding(bobAoR, "user-2", 9)
		bob.ExpiresAt = base.Add(10 * time.Minute)
		mustSet(t, s, aliceAoR, base, alice...)
		mustSet(t, s, bobAoR, base, bob)
		for _, c := range []struct {
			at   time.Duration
			want int
		}{{0, 4}, {time.Minute, 3}, {time.Minute + time.Millisecond, 3}, {3 * time.Minute, 1}, {10 * time.Minute, 0}} {
			if n := mustCountBindings(t, s, base.Add(c.at)); n != c.want {
				t.Errorf("CountBindings at base+%v = %d, want %d", c.at, n, c.want)
			}
		}
	}},
	{"deleting a user deletes its bindings and no one else's", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "alice", "bob")
		alice, bob := users[0], users[1]
		a1, a2 := newBinding(aliceAoR, alice.ID, 1), newBinding(aliceAoR, alice.ID, 2)
		a2.CreatedAt = base.Add(time.Second)
		shared := newBinding(aliceAoR, bob.ID, 3) // bob registered alice's AoR
		shared.CreatedAt = base.Add(2 * time.Second)
		b1 := newBinding(bobAoR, bob.ID, 1)
		foreign := newBinding(bobAoR, "trusted:"+alice.ID, 2) // a trusted issuer's subject
		foreign.CreatedAt = base.Add(time.Second)
		mustSet(t, s, aliceAoR, base, a1, a2, shared)
		mustSet(t, s, bobAoR, base, b1, foreign)
		if err := s.DeleteUser(context.Background(), alice.ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkBindings(t, s, "alice's AoR", aliceAoR, base, shared)
		checkBindings(t, s, "bob's AoR", bobAoR, base, b1, foreign)
		if n := mustCountBindings(t, s, base); n != 3 {
			t.Errorf("CountBindings = %d, want 3", n)
		}
	}},
}
