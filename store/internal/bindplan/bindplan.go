// Package bindplan is the part of a sip.BindingStore's UpdateBindings that
// does not depend on the database: it passes the unexpired bindings of an
// AoR to the registrar's function, checks the result, and works out which
// bindings to delete, rewrite and insert. It also holds the stored form of
// a binding's Path, which every backend shares.
//
// It runs no SQL and takes no locks: reading the bindings, the transaction
// that makes the update atomic, and the writes themselves stay in each
// backend (store/sqlite, store/postgres).
package bindplan

import (
	"slices"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// Writes are the changes that make fn's result the stored binding set of
// an AoR. A backend makes them in field order: every deletion first, then
// the updates, then the inserts.
type Writes struct {
	// Drop holds the IDs of the bindings to delete: the expired ones, those
	// whose ContactKey changed (Insert adds them again) and those left out
	// of fn's result.
	Drop []string
	// Update holds the bindings to rewrite in place, in the order fn
	// returned them: same ID and ContactKey, some other field changed.
	Update []Update
	// Insert holds the bindings to insert: those with an ID not stored, and
	// those whose ContactKey changed. A changed key is a delete and an
	// insert rather than an update: updating it in place could collide, in
	// the middle of the transaction, with the old key of another binding
	// that changes too.
	Insert []*sip.Binding
}

// Update is one binding to rewrite in place.
type Update struct {
	Old *sip.Binding // as stored
	New *sip.Binding // as fn returned it
}

// Empty reports whether w changes nothing.
func (w *Writes) Empty() bool {
	return len(w.Drop) == 0 && len(w.Update) == 0 && len(w.Insert) == 0
}

// Plan runs fn for an UpdateBindings of aor and plans its writes. stored
// holds every stored binding of aor, expired ones included, in the order
// fn should see them (CreatedAt, then ID). fn gets copies of those not
// expired at now, at the stored millisecond precision, so that what it
// changes in place is still seen as a change.
//
// Plan returns the writes and fn's result as fn returned it; the bindings
// in Writes point into that result and into stored. An error from fn is
// returned unchanged. A result with a binding of another AoR, one without
// an ID, or two with one ID is refused with identity.ErrInvalid under op.
// Conflicts that only the database sees (two bindings with one ContactKey,
// an ID of another AoR's binding) are the backend's to report.
func Plan(op, aor string, now time.Time, stored []sip.Binding, fn func(current []sip.Binding) ([]sip.Binding, error)) (Writes, []sip.Binding, error) {
	var w Writes
	nowMS := now.UnixMilli()
	live := make(map[string]*sip.Binding, len(stored))
	var current []sip.Binding
	for i := range stored {
		b := &stored[i]
		if b.ExpiresAt.UnixMilli() <= nowMS {
			w.Drop = append(w.Drop, b.ID)
			continue
		}
		live[b.ID] = b
		c := *b
		c.Path = slices.Clone(b.Path)
		current = append(current, c)
	}

	next, err := fn(current)
	if err != nil {
		return Writes{}, nil, err
	}
	if err := check(op, aor, next); err != nil {
		return Writes{}, nil, err
	}

	for i := range next {
		b := &next[i]
		old, ok := live[b.ID]
		switch {
		case !ok:
			w.Insert = append(w.Insert, b)
		case same(old, b):
		case old.ContactKey != b.ContactKey:
			w.Drop = append(w.Drop, b.ID)
			w.Insert = append(w.Insert, b)
		default:
			w.Update = append(w.Update, Update{Old: old, New: b})
		}
		delete(live, b.ID)
	}
	for i := range stored { // left out of the result
		if _, gone := live[stored[i].ID]; gone {
			w.Drop = append(w.Drop, stored[i].ID)
		}
	}
	return w, next, nil
}

// check refuses a result of an UpdateBindings fn that cannot be the binding
// set of aor: a binding of another AoR, without an ID, or two with one ID.
func check(op, aor string, next []sip.Binding) error {
	ids := make(map[string]struct{}, len(next))
	for i := range next {
		b := &next[i]
		if b.AoR != aor {
			return identity.Invalid(op, "aor", "binding %q has address-of-record %q, want %q", b.ID, b.AoR, aor)
		}
		if b.ID == "" {
			return identity.Invalid(op, "id", "binding of %q for contact %q has no id", aor, b.Contact)
		}
		if _, dup := ids[b.ID]; dup {
			return identity.Invalid(op, "id", "two bindings with id %q", b.ID)
		}
		ids[b.ID] = struct{}{}
	}
	return nil
}

// Renewal reports whether storing b over the stored binding a changes only
// what a re-REGISTER of an unchanged contact changes: its Call-ID, CSeq and
// update time, and its expiry, which must not move earlier. A backend can
// then write those four columns alone instead of the whole row, and keep
// a lower bound of the expiry (its sweep index) as it is.
func Renewal(a, b *sip.Binding) bool {
	return !b.ExpiresAt.Before(a.ExpiresAt) && a.ID == b.ID && a.AoR == b.AoR && a.UserID == b.UserID &&
		a.Contact == b.Contact && a.ContactKey == b.ContactKey && a.Q == b.Q &&
		a.Instance == b.Instance && a.RegID == b.RegID && slices.Equal(a.Path, b.Path) &&
		a.CreatedAt.UnixMilli() == b.CreatedAt.UnixMilli() &&
		a.Source == b.Source && a.Transport == b.Transport && a.LocalAddr == b.LocalAddr &&
		a.UserAgent == b.UserAgent && a.Node == b.Node
}

// same reports whether storing b would leave the stored binding a
// unchanged: every field equal, times at the stored millisecond precision,
// a nil and an empty Path alike.
func same(a, b *sip.Binding) bool {
	return a.ID == b.ID && a.AoR == b.AoR && a.UserID == b.UserID &&
		a.Contact == b.Contact && a.ContactKey == b.ContactKey && a.Q == b.Q &&
		a.Instance == b.Instance && a.RegID == b.RegID && a.CallID == b.CallID && a.CSeq == b.CSeq &&
		slices.Equal(a.Path, b.Path) &&
		a.ExpiresAt.UnixMilli() == b.ExpiresAt.UnixMilli() && a.CreatedAt.UnixMilli() == b.CreatedAt.UnixMilli() &&
		a.UpdatedAt.UnixMilli() == b.UpdatedAt.UnixMilli() &&
		a.Source == b.Source && a.Transport == b.Transport && a.LocalAddr == b.LocalAddr &&
		a.UserAgent == b.UserAgent && a.Node == b.Node
}
