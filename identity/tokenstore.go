package identity

import (
	"context"
	"time"
)

// RefreshToken is one opaque refresh token as stored: never the token
// itself, only its SHA-256. Tokens descend from a login in one family; each
// refresh rotates the current token into a successor.
type RefreshToken struct {
	ID         string // public id (UUID)
	Hash       []byte // SHA-256 of the whole token string
	FamilyID   string
	ParentID   string // "" for the token issued at login
	UserID     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	// IdleExpiresAt is when the token dies unused; AbsoluteExpiresAt is when
	// the whole family dies, whatever its use.
	IdleExpiresAt     time.Time
	AbsoluteExpiresAt time.Time
	// RotatedAt is when the token was exchanged for its successor (zero
	// while it is the family's current token). SuccessorSealed holds the
	// successor token sealed under the data key, so a concurrent retry in
	// the grace window receives the same successor; it is cleared once the
	// window has passed.
	RotatedAt       time.Time
	SuccessorID     string
	SuccessorSealed []byte
	RevokedAt       time.Time // zero unless revoked
}

// RefreshStore persists refresh tokens. Implementations must pass
// store/storetest. Missing records match ErrNotFound.
type RefreshStore interface {
	// CreateRefreshToken inserts t (the first token of a family). A missing
	// user matches ErrNotFound. Like RotateRefreshToken, it returns nil only
	// once t is durably committed.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// RefreshTokenByHash returns the token whose Hash is hash, whatever its
	// state (rotated, revoked and expired tokens too: the caller decides).
	RefreshTokenByHash(ctx context.Context, hash []byte) (*RefreshToken, error)
	// RotateRefreshToken, in one transaction, marks the token oldID rotated
	// at rotatedAt (recording next.ID and successorSealed) and inserts next.
	// It fails with ErrConflict, changing nothing, unless oldID is current:
	// not rotated and not revoked (ErrNotFound when it does not exist). This
	// compare-and-swap makes two concurrent refreshes with one token produce
	// one successor. next must carry the old token's FamilyID and UserID.
	// It returns nil only once the rotation is durably committed: Refresh
	// hands next's token to the client on that answer. Implementations may
	// commit several rotations together, provided each stays independent
	// (one failing changes nothing of the others).
	RotateRefreshToken(ctx context.Context, oldID string, rotatedAt time.Time, successorSealed []byte, next *RefreshToken) error
	// RevokeRefreshFamily revokes every token of the family. Revocations are
	// idempotent and keep the first RevokedAt.
	RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error
	// RevokeUserRefreshTokens revokes every token of every family of the
	// user and returns how many families were affected.
	RevokeUserRefreshTokens(ctx context.Context, userID string, at time.Time) (int, error)
	// PruneRefreshTokens deletes the families that expired (absolutely, or
	// every token idle) or were revoked before before, and clears successor copies of tokens rotated before
	// graceEnd. It returns the number of tokens deleted.
	PruneRefreshTokens(ctx context.Context, before, graceEnd time.Time) (int, error)
}

// AttemptKind says what a brute-force counter is keyed by.
type AttemptKind string

// Attempt kinds.
const (
	AttemptUser AttemptKind = "user" // lower-cased username
	AttemptAddr AttemptKind = "addr" // client IP address
)

// AttemptKey names one brute-force counter.
type AttemptKey struct {
	Kind  AttemptKind
	Value string
}

// AttemptStore keeps failed authentication attempts and locks, shared by
// every node on one database, so locks survive restarts and hold across
// nodes. Implementations must pass store/storetest.
type AttemptStore interface {
	// RecordFailure records a failure for key at at and returns the number
	// of failures for key at or after since, this one included.
	RecordFailure(ctx context.Context, key AttemptKey, at, since time.Time) (int, error)
	// ClearFailures forgets the recorded failures of key (after a success).
	ClearFailures(ctx context.Context, key AttemptKey) error
	// Lock locks key until until; an existing later lock is kept.
	Lock(ctx context.Context, key AttemptKey, until time.Time) error
	// LockedUntil returns the latest lock among keys that ends after now,
	// and zero when none of them is locked.
	LockedUntil(ctx context.Context, keys []AttemptKey, now time.Time) (time.Time, error)
	// PruneAttempts deletes failures recorded before before and locks that
	// ended before before, returning how many rows went.
	PruneAttempts(ctx context.Context, before time.Time) (int, error)
}
