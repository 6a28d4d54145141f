package sip

import (
	"context"
	"time"
)

// Binding is one registered contact of an address-of-record (RFC 3261
// section 10): where to reach the user agent, until when, and the flow it
// registered over.
type Binding struct {
	ID  string // stable UUID of the binding
	AoR string // canonical address-of-record, "sip:user@domain"
	// UserID is the users-core user id for our own users, or
	// "<issuer name>:<sub>" for a trusted issuer's token.
	UserID string
	// Contact is the contact URI as registered (URI parameters kept,
	// header parameters dropped); ContactKey is its canonical form for the
	// URI comparison of RFC 3261 section 19.1.4.
	Contact    string
	ContactKey string
	Q          int    // q-value times 1000; -1 when absent
	Instance   string // +sip.instance value without quotes (RFC 5626), or ""
	RegID      int    // reg-id (RFC 5626); 0 when absent
	CallID     string
	CSeq       uint32
	Path       []string // Path header values in order (RFC 3327)
	ExpiresAt  time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// The flow the REGISTER came over, so a client behind NAT or on a
	// WebSocket can be reached later over the same connection.
	Source    string // remote ip:port
	Transport string // UDP, TCP, TLS, WS or WSS
	LocalAddr string // our listener's address
	UserAgent string
	Node      string // the users-core node holding the flow
}

// BindingStore persists bindings. Implementations must pass
// store/storetest. All methods are safe for concurrent use.
//
// A binding is unexpired at now when ExpiresAt is after now; times are
// kept to the millisecond. One AoR has at most one binding per ContactKey.
// Deleting a users-core user deletes its bindings. Errors: a result of
// UpdateBindings with a binding of another AoR, an empty or repeated ID
// matches identity.ErrInvalid; a repeated ContactKey, or an ID that belongs
// to another AoR, matches identity.ErrConflict.
type BindingStore interface {
	// UpdateBindings runs one registrar update of aor atomically: it reads
	// the bindings of aor that have not expired at now, calls fn with them
	// (sorted by CreatedAt, then ID), and makes the returned slice the
	// complete new set of aor's bindings (bindings whose ID is not in it
	// are deleted, the others inserted or replaced). Updates of one AoR
	// are serialized, here and on other nodes. An error from fn aborts the
	// update, changes nothing and is returned as is; any other failure
	// also changes nothing. It returns what fn returned. fn gets copies it
	// may change; it runs inside the write transaction, so it must be quick
	// and must not call the store.
	UpdateBindings(ctx context.Context, aor string, now time.Time, fn func(current []Binding) ([]Binding, error)) ([]Binding, error)
	// Bindings returns the bindings of aor not expired at now, sorted like
	// UpdateBindings' input.
	Bindings(ctx context.Context, aor string, now time.Time) ([]Binding, error)
	// BindingByID returns the binding with id, expired or not; a missing
	// one matches identity.ErrNotFound.
	BindingByID(ctx context.Context, id string) (*Binding, error)
	// DeleteExpiredBindings deletes bindings that expired before before and
	// returns how many went.
	DeleteExpiredBindings(ctx context.Context, before time.Time) (int, error)
	// CountBindings returns the number of bindings not expired at now.
	CountBindings(ctx context.Context, now time.Time) (int, error)
}
