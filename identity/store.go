package identity

import (
	"context"
	"strings"
	"time"
)

// DigestAlgorithm names a SIP Digest hash algorithm as it appears in the
// algorithm parameter (RFC 7616, RFC 8760).
type DigestAlgorithm string

// Digest algorithms, in the spelling of the algorithm parameter.
const (
	MD5       DigestAlgorithm = "MD5"
	SHA256    DigestAlgorithm = "SHA-256"
	SHA512256 DigestAlgorithm = "SHA-512-256"
)

// DigestAlgorithms lists every supported algorithm, strongest first.
var DigestAlgorithms = []DigestAlgorithm{SHA512256, SHA256, MD5}

// SIPCredential is one HA1 = H(username:realm:password) for one realm and
// algorithm. HA1 is password-equivalent: Sealed holds it encrypted under the
// data key (see Sealer), and it never leaves this process in any API, log
// or error.
type SIPCredential struct {
	Realm     string
	Algorithm DigestAlgorithm
	// Qualified marks the HA1 over "username@realm" as the Digest
	// username (what phones configured with user@domain send; Kamailio's
	// ha1b), rather than the plain username.
	Qualified bool
	Sealed    []byte // AES-256-GCM nonce||ciphertext, bound to user id, realm, algorithm and Qualified
}

// Credentials are a user's secrets as stored.
type Credentials struct {
	// PasswordHash is an Argon2id PHC string. Empty means the user cannot log
	// in with a password (for example an HA1-only import).
	PasswordHash string
	// SIP holds one HA1 per (realm, algorithm). Empty for token-only users.
	SIP []SIPCredential
}

// UsernameKey returns the form of a username that a UserStore compares:
// usernames are unique by this key, and UserByName looks it up. Stores must
// normalise with it (it lower-cases every script, not only ASCII), so that
// the DigestHA1 cache and the Regulator, keyed by it, agree with the store.
func UsernameKey(name string) string { return strings.ToLower(name) }

// UserFilter selects users for ListUsers. Zero values select everything.
type UserFilter struct {
	Active *bool  // only users with this active flag
	Role   Role   // only users holding this role
	Search string // case-insensitive substring of username, email or display name
	// After is the opaque cursor returned as UserPage.Next; empty starts at
	// the first user in username order. A cursor that cannot be read is an
	// error matching ErrInvalid.
	After string
	Limit int // at most this many users; <= 0 means 100, capped at 1000
}

// UserPage is one page of ListUsers, in case-insensitive username order.
type UserPage struct {
	Users []*User
	Next  string // cursor for the next page; empty on the last page
}

// UserStore persists users and their credentials. Implementations must pass
// store/storetest. All methods are safe for concurrent use.
//
// Errors: a missing record is an error matching ErrNotFound; a taken unique
// value (username or email, compared case-insensitively) matches
// ErrConflict. Any other error is an infrastructure failure. Every write is
// atomic: on error nothing has changed.
type UserStore interface {
	// CreateUser inserts u (its ID already set) together with creds.
	CreateUser(ctx context.Context, u *User, creds *Credentials) error
	// CreateUsers inserts every users[i] with creds[i] in one transaction:
	// all of them or, on any error (a conflict included), none. creds may be
	// nil (no credentials); otherwise a length mismatch matches ErrInvalid.
	CreateUsers(ctx context.Context, users []*User, creds []*Credentials) error
	// UserByID returns the user with id.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByName returns the user whose username equals name
	// case-insensitively: whose UsernameKey is UsernameKey(name).
	UserByName(ctx context.Context, name string) (*User, error)
	// ListUsers returns one page of users matching f.
	ListUsers(ctx context.Context, f UserFilter) (UserPage, error)
	// CountUsers returns the number of users.
	CountUsers(ctx context.Context) (int, error)
	// UpdateUser reads the user with id, calls fn on a copy and writes the
	// copy back, all in one transaction. An error from fn aborts the update
	// and is returned as is. ID and CreatedAt cannot be changed by fn. fn
	// runs inside the write transaction: it must not call the store.
	UpdateUser(ctx context.Context, id string, fn func(u *User) error) (*User, error)
	// DeleteUser removes the user and everything that belongs to it.
	DeleteUser(ctx context.Context, id string) error
	// Credentials returns the stored credentials of the user with id.
	Credentials(ctx context.Context, id string) (*Credentials, error)
	// SetCredentials replaces the password hash and every SIP credential of
	// the user with id, and sets the user's TokenOnly flag to tokenOnly. Two
	// credentials for one realm, algorithm and Qualified match ErrInvalid.
	SetCredentials(ctx context.Context, id string, creds *Credentials, tokenOnly bool, updatedAt time.Time) error
	// SetPasswordHash replaces only the password hash (a rehash with new
	// parameters), keeping the SIP credentials.
	SetPasswordHash(ctx context.Context, id, phc string) error
	// TouchLogin records a successful login time (zero clears it).
	TouchLogin(ctx context.Context, id string, at time.Time) error
}

// SecretStore keeps small named secrets shared by every node on one
// database (for example the Digest nonce key).
type SecretStore interface {
	// Secret returns the secret called name, creating it with gen when it
	// does not exist yet. Concurrent callers, on this node or another, all
	// get the same value. gen runs only when the secret is missing, outside
	// any transaction; its error is returned unchanged.
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}
