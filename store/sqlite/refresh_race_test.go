package sqlite

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/storetest"
)

// fakeSigner signs nothing: these tests are about the refresh tokens.
type fakeSigner struct{}

func (fakeSigner) SignJWT(string, any) (string, error) { return "header.payload.signature", nil }

// newTokens returns identity.Tokens over db, with grace as the refresh
// grace window.
func newTokens(t testing.TB, db *DB, grace time.Duration) *identity.Tokens {
	t.Helper()
	sealer, err := identity.NewSealer(make([]byte, identity.DataKeyLen))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := identity.NewHasher(identity.Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)
	if err != nil {
		t.Fatal(err)
	}
	users, err := identity.NewService(identity.ServiceConfig{
		Store: db, Hasher: hasher, Policy: identity.DefaultPasswordPolicy(), Sealer: sealer, Refresh: db, CacheEntries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := identity.NewRegulator(db, identity.RegulatorConfig{
		UserMaxFailures: 3, UserWindow: time.Hour, UserLock: time.Hour,
		AddrMaxFailures: 100, AddrWindow: time.Hour, AddrLock: time.Hour, CheckInterval: -1,
	})
	tokens, err := identity.NewTokens(identity.TokenConfig{
		Issuer: "https://users.test", Audience: []string{"rvoip-api"}, RefreshGrace: grace, SuccessorSealer: sealer,
	}, users, db, fakeSigner{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// hashOf is the stored form of a refresh token.
func hashOf(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// familySize returns how many tokens the family of token has.
func familySize(t testing.TB, db *DB, token *identity.RefreshToken) int {
	t.Helper()
	var n int
	if err := db.r.QueryRowContext(context.Background(), `SELECT count(*) FROM refresh_tokens WHERE family_id = ?`,
		token.FamilyID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentRefreshesOfOneTokenMakeOneSuccessor presents one refresh
// token many times at once through identity.Tokens: the rotations meet in
// the committer's groups, one wins the compare-and-swap, and the others,
// inside the grace window, receive the winner's successor. The family then
// holds the old token and exactly one successor.
func TestConcurrentRefreshesOfOneTokenMakeOneSuccessor(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	tokens := newTokens(t, db, time.Minute)
	u := refreshUser(t, db)
	for round := range 5 {
		pair, err := tokens.Issue(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		const n = 16
		got := make([]identity.TokenPair, n)
		errs := make([]error, n)
		storetest.AtOnce(n, func(i int) {
			got[i], errs[i] = tokens.Refresh(ctx, pair.RefreshToken)
		})
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: refresh %d: %v", round, i, errs[i])
			}
			if got[i].RefreshToken != got[0].RefreshToken {
				t.Fatalf("round %d: refreshes 0 and %d returned different successors", round, i)
			}
		}
		old, err := db.RefreshTokenByHash(ctx, hashOf(pair.RefreshToken))
		if err != nil {
			t.Fatal(err)
		}
		if size := familySize(t, db, old); size != 2 {
			t.Fatalf("round %d: the family has %d tokens, want the old one and one successor", round, size)
		}
		next, err := db.RefreshTokenByHash(ctx, hashOf(got[0].RefreshToken))
		if err != nil || next.ID != old.SuccessorID || !next.RotatedAt.IsZero() {
			t.Fatalf("round %d: the returned successor is %+v (%v), want the current token %s", round, next, err, old.SuccessorID)
		}
	}
}
