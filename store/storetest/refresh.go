package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
)

// newToken returns the first token of a new family of u, issued at base,
// with a fresh ID and the hash of a random token string.
func newToken(u *identity.User) *identity.RefreshToken {
	id := uuid.NewString()
	hash := sha256.Sum256([]byte("token-" + uuid.NewString()))
	return &identity.RefreshToken{
		ID:                id,
		Hash:              hash[:],
		FamilyID:          uuid.NewString(),
		UserID:            u.ID,
		CreatedAt:         base,
		LastUsedAt:        base,
		IdleExpiresAt:     base.Add(24 * time.Hour),
		AbsoluteExpiresAt: base.Add(30 * 24 * time.Hour),
	}
}

// successor returns the token that replaces parent when it is rotated at.
func successor(parent *identity.RefreshToken, at time.Time) *identity.RefreshToken {
	hash := sha256.Sum256([]byte("token-" + uuid.NewString()))
	return &identity.RefreshToken{
		ID:                uuid.NewString(),
		Hash:              hash[:],
		FamilyID:          parent.FamilyID,
		ParentID:          parent.ID,
		UserID:            parent.UserID,
		CreatedAt:         at,
		LastUsedAt:        at,
		IdleExpiresAt:     at.Add(24 * time.Hour),
		AbsoluteExpiresAt: parent.AbsoluteExpiresAt,
	}
}

// sealedFor is a stand-in for the sealed successor token of next.
func sealedFor(next *identity.RefreshToken) []byte {
	return append([]byte{0, 0xff}, "sealed-"+next.ID...)
}

// refreshDiff describes how got differs from want, "" when they are equal.
// Times compare with Equal; nil and empty byte slices are equal.
func refreshDiff(got, want *identity.RefreshToken) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	for _, f := range []struct {
		name      string
		got, want string
	}{
		{"ID", got.ID, want.ID},
		{"FamilyID", got.FamilyID, want.FamilyID},
		{"ParentID", got.ParentID, want.ParentID},
		{"UserID", got.UserID, want.UserID},
		{"SuccessorID", got.SuccessorID, want.SuccessorID},
	} {
		if f.got != f.want {
			add(f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		add("Hash", got.Hash, want.Hash)
	}
	if !bytes.Equal(got.SuccessorSealed, want.SuccessorSealed) {
		add("SuccessorSealed", got.SuccessorSealed, want.SuccessorSealed)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"LastUsedAt", got.LastUsedAt, want.LastUsedAt},
		{"IdleExpiresAt", got.IdleExpiresAt, want.IdleExpiresAt},
		{"AbsoluteExpiresAt", got.AbsoluteExpiresAt, want.AbsoluteExpiresAt},
		{"RotatedAt", got.RotatedAt, want.RotatedAt},
		{"RevokedAt", got.RevokedAt, want.RevokedAt},
	} {
		if !f.got.Equal(f.want) {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

// checkToken fails t unless the stored token with want's hash equals want.
func checkToken(t testing.TB, s Store, what string, want *identity.RefreshToken) {
	t.Helper()
	got, err := s.RefreshTokenByHash(context.Background(), want.Hash)
	if err != nil {
		t.Fatalf("%s: RefreshTokenByHash: %v", what, err)
	}
	if d := refreshDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// checkNoToken fails t unless no token has the hash of tok.
func checkNoToken(t testing.TB, s Store, what string, tok *identity.RefreshToken) {
	t.Helper()
	_, err := s.RefreshTokenByHash(context.Background(), tok.Hash)
	wantErr(t, what+": RefreshTokenByHash", err, identity.ErrNotFound)
}

func mustCreateToken(t testing.TB, s Store, tok *identity.RefreshToken) {
	t.Helper()
	if err := s.CreateRefreshToken(context.Background(), tok); err != nil {
		t.Fatalf("CreateRefreshToken: %v", err)
	}
}

// mustRotate rotates old into a new successor at at and returns the
// successor; old is updated to what the store now holds for it.
func mustRotate(t testing.TB, s Store, old *identity.RefreshToken, at time.Time) *identity.RefreshToken {
	t.Helper()
	next := successor(old, at)
	if err := s.RotateRefreshToken(context.Background(), old.ID, at, sealedFor(next), next); err != nil {
		t.Fatalf("RotateRefreshToken(%s): %v", old.ID, err)
	}
	old.RotatedAt, old.SuccessorID, old.SuccessorSealed = at, next.ID, sealedFor(next)
	return next
}

// revoked returns a copy of tok revoked at at.
func revoked(tok *identity.RefreshToken, at time.Time) *identity.RefreshToken {
	c := *tok
	c.RevokedAt = at
	return &c
}

var refreshTokenTests = []subtest{
	{"a created token is found by its hash with every field", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		tok := newToken(u)
		mustCreateToken(t, s, tok)
		checkToken(t, s, "the created token", tok)
	}},
	{"an unknown hash is not found", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		mustCreateToken(t, s, newToken(u))
		hash := sha256.Sum256([]byte("never issued"))
		_, err := s.RefreshTokenByHash(context.Background(), hash[:])
		wantErr(t, "RefreshTokenByHash of an unknown hash", err, identity.ErrNotFound)
	}},
	{"a taken id or hash is a conflict", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		tok := newToken(u)
		mustCreateToken(t, s, tok)
		sameID := newToken(u)
		sameID.ID = tok.ID
		wantErr(t, "CreateRefreshToken with a taken id", s.CreateRefreshToken(context.Background(), sameID), identity.ErrConflict)
		checkNoToken(t, s, "the token with a taken id", sameID)
		sameHash := newToken(u)
		sameHash.Hash = tok.Hash
		wantErr(t, "CreateRefreshToken with a taken hash", s.CreateRefreshToken(context.Background(), sameHash), identity.ErrConflict)
		checkToken(t, s, "the first token", tok)
	}},
	{"a token for a missing user is not found", func(t *testing.T, s Store) {
		tok := newToken(&identity.User{ID: uuid.NewString()})
		wantErr(t, "CreateRefreshToken for a missing user", s.CreateRefreshToken(context.Background(), tok), identity.ErrNotFound)
		checkNoToken(t, s, "the refused token", tok)
	}},
	{"rotation marks the old token and inserts the next", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		old := newToken(u)
		mustCreateToken(t, s, old)
		next := mustRotate(t, s, old, base.Add(time.Minute))
		checkToken(t, s, "the rotated token", old)
		checkToken(t, s, "the successor", next)
		third := mustRotate(t, s, next, base.Add(2*time.Minute))
		checkToken(t, s, "the rotated successor", next)
		checkToken(t, s, "the third token", third)
	}},
	{"rotating one token twice is a conflict the second time", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		old := newToken(u)
		mustCreateToken(t, s, old)
		first := mustRotate(t, s, old, base.Add(time.Minute))
		second := successor(old, base.Add(2*time.Minute))
		err := s.RotateRefreshToken(context.Background(), old.ID, base.Add(2*time.Minute), sealedFor(second), second)
		wantErr(t, "second RotateRefreshToken", err, identity.ErrConflict)
		checkToken(t, s, "the rotated token", old)
		checkToken(t, s, "the first successor", first)
		checkNoToken(t, s, "the second successor", second)
	}},
	{"of 10 concurrent rotations of one token exactly one succeeds", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		old := newToken(u)
		mustCreateToken(t, s, old)
		const n = 10
		at := base.Add(time.Minute)
		nexts := make([]*identity.RefreshToken, n)
		errs := make([]error, n)
		for i := range n {
			nexts[i] = successor(old, at)
		}
		AtOnce(n, func(i int) {
			errs[i] = s.RotateRefreshToken(context.Background(), old.ID, at, sealedFor(nexts[i]), nexts[i])
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("rotations %d and %d both succeeded", winner, i)
				}
				winner = i
			case !errors.Is(err, identity.ErrConflict):
				t.Errorf("rotation %d: %v, want nil or a conflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no rotation succeeded")
		}
		old.RotatedAt, old.SuccessorID, old.SuccessorSealed = at, nexts[winner].ID, sealedFor(nexts[winner])
		checkToken(t, s, "the rotated token", old)
		for i, next := range nexts {
			if i == winner {
				checkToken(t, s, "the winning successor", next)
			} else {
				checkNoToken(t, s, fmt.Sprintf("losing successor %d", i), next)
			}
		}
	}},
	{"rotating a revoked token is a conflict", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		old := newToken(u)
		mustCreateToken(t, s, old)
		revokedAt := base.Add(time.Minute)
		if err := s.RevokeRefreshFamily(context.Background(), old.FamilyID, revokedAt); err != nil {
			t.Fatalf("RevokeRefreshFamily: %v", err)
		}
		next := successor(old, base.Add(2*time.Minute))
		err := s.RotateRefreshToken(context.Background(), old.ID, base.Add(2*time.Minute), sealedFor(next), next)
		wantErr(t, "RotateRefreshToken of a revoked token", err, identity.ErrConflict)
		checkToken(t, s, "the revoked token", revoked(old, revokedAt))
		checkNoToken(t, s, "the successor", next)
	}},
	{"rotating an unknown token is not found", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		ghost := newToken(u)
		next := successor(ghost, base)
		err := s.RotateRefreshToken(context.Background(), ghost.ID, base, sealedFor(next), next)
		wantErr(t, "RotateRefreshToken of an unknown id", err, identity.ErrNotFound)
		checkNoToken(t, s, "the successor", next)
	}},
	{"a rotation whose successor cannot be stored changes nothing", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		other := newToken(u)
		mustCreateToken(t, s, other)
		old := newToken(u)
		mustCreateToken(t, s, old)
		next := successor(old, base.Add(time.Minute))
		next.Hash = other.Hash
		err := s.RotateRefreshToken(context.Background(), old.ID, base.Add(time.Minute), sealedFor(next), next)
		wantErr(t, "RotateRefreshToken with a taken successor hash", err, identity.ErrConflict)
		checkToken(t, s, "the token that stays current", old)
		mustRotate(t, s, old, base.Add(2*time.Minute))
	}},
	{"revoking a family revokes all of it and nothing of another family", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		a1 := newToken(u)
		mustCreateToken(t, s, a1)
		a2 := mustRotate(t, s, a1, base.Add(time.Minute))
		a3 := mustRotate(t, s, a2, base.Add(2*time.Minute))
		b1 := newToken(u)
		mustCreateToken(t, s, b1)
		at := base.Add(time.Hour)
		if err := s.RevokeRefreshFamily(context.Background(), a1.FamilyID, at); err != nil {
			t.Fatalf("RevokeRefreshFamily: %v", err)
		}
		for i, tok := range []*identity.RefreshToken{a1, a2, a3} {
			checkToken(t, s, fmt.Sprintf("token %d of the revoked family", i+1), revoked(tok, at))
		}
		checkToken(t, s, "the token of the other family", b1)
	}},
	{"revoking a family again keeps the first revocation time", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		tok := newToken(u)
		mustCreateToken(t, s, tok)
		first := base.Add(time.Hour)
		for _, at := range []time.Time{first, first.Add(time.Hour)} {
			if err := s.RevokeRefreshFamily(context.Background(), tok.FamilyID, at); err != nil {
				t.Fatalf("RevokeRefreshFamily: %v", err)
			}
		}
		checkToken(t, s, "the twice revoked token", revoked(tok, first))
	}},
	{"revoking a user's tokens covers all its families only and counts them", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "alice", "bob")
		alice, bob := users[0], users[1]
		a1 := newToken(alice)
		mustCreateToken(t, s, a1)
		a2 := mustRotate(t, s, a1, base.Add(time.Minute))
		b1 := newToken(alice)
		mustCreateToken(t, s, b1)
		gone := newToken(alice) // revoked earlier: not affected again
		mustCreateToken(t, s, gone)
		earlier := base.Add(30 * time.Minute)
		if err := s.RevokeRefreshFamily(context.Background(), gone.FamilyID, earlier); err != nil {
			t.Fatalf("RevokeRefreshFamily: %v", err)
		}
		bobs := newToken(bob)
		mustCreateToken(t, s, bobs)

		at := base.Add(time.Hour)
		n, err := s.RevokeUserRefreshTokens(context.Background(), alice.ID, at)
		if err != nil {
			t.Fatalf("RevokeUserRefreshTokens: %v", err)
		}
		if n != 2 {
			t.Errorf("RevokeUserRefreshTokens = %d families, want 2", n)
		}
		checkToken(t, s, "alice's rotated token", revoked(a1, at))
		checkToken(t, s, "alice's current token", revoked(a2, at))
		checkToken(t, s, "alice's second family", revoked(b1, at))
		checkToken(t, s, "alice's family revoked earlier", revoked(gone, earlier))
		checkToken(t, s, "bob's token", bobs)
		if n, err := s.RevokeUserRefreshTokens(context.Background(), alice.ID, at.Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("RevokeUserRefreshTokens again = %d, %v; want 0, nil", n, err)
		}
	}},
	{"deleting the user deletes its tokens", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "alice", "bob")
		a1 := newToken(users[0])
		mustCreateToken(t, s, a1)
		a2 := mustRotate(t, s, a1, base.Add(time.Minute))
		b1 := newToken(users[1])
		mustCreateToken(t, s, b1)
		if err := s.DeleteUser(context.Background(), users[0].ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkNoToken(t, s, "the deleted user's rotated token", a1)
		checkNoToken(t, s, "the deleted user's current token", a2)
		checkToken(t, s, "the other user's token", b1)
	}},
	{"pruning deletes expired and revoked families, clears successors after the grace end and keeps current tokens", func(t *testing.T, s Store) {
		ctx := context.Background()
		u := mustCreateNamed(t, s, "alice")[0]
		before, graceEnd := base.Add(3*time.Hour), base.Add(4*time.Hour)
		family := func(absolute time.Time) *identity.RefreshToken {
			tok := newToken(u)
			tok.AbsoluteExpiresAt = absolute
			mustCreateToken(t, s, tok)
			return tok
		}
		revoke := func(tok *identity.RefreshToken, at time.Time) {
			if err := s.RevokeRefreshFamily(ctx, tok.FamilyID, at); err != nil {
				t.Fatalf("RevokeRefreshFamily: %v", err)
			}
		}
		far := base.Add(30 * 24 * time.Hour)

		// Expired before before: the whole family goes.
		e1 := family(base.Add(time.Hour))
		e2 := mustRotate(t, s, e1, base.Add(time.Minute))
		// Revoked before before: the whole family goes.
		r1 := family(far)
		r2 := mustRotate(t, s, r1, base.Add(time.Minute))
		revoke(r1, base.Add(2*time.Hour))
		// Expiring and revoked exactly at before: kept.
		x := family(before)
		y := family(far)
		revoke(y, before)
		y = revoked(y, before)
		// Current: k1 rotated before the grace end loses its successor copy,
		// k2 rotated after it keeps it, k3 is untouched.
		k1 := family(far)
		k2 := mustRotate(t, s, k1, base.Add(30*time.Minute))
		k3 := mustRotate(t, s, k2, base.Add(5*time.Hour))

		n, err := s.PruneRefreshTokens(ctx, before, graceEnd)
		if err != nil {
			t.Fatalf("PruneRefreshTokens: %v", err)
		}
		if n != 4 {
			t.Errorf("PruneRefreshTokens = %d, want 4 deleted", n)
		}
		for name, tok := range map[string]*identity.RefreshToken{"e1": e1, "e2": e2, "r1": r1, "r2": r2} {
			checkNoToken(t, s, "pruned token "+name, tok)
		}
		k1.SuccessorSealed = nil
		checkToken(t, s, "k1, rotated before the grace end", k1)
		checkToken(t, s, "k2, rotated after the grace end", k2)
		checkToken(t, s, "k3, current", k3)
		checkToken(t, s, "x, expiring at before", x)
		checkToken(t, s, "y, revoked at before", y)
	}},
	{"pruning deletes a family whose every token went idle, and keeps one still in use", func(t *testing.T, s Store) {
		ctx := context.Background()
		u := mustCreateNamed(t, s, "alice")[0]
		before := base.Add(3 * time.Hour)
		idle := newToken(u)
		idle.IdleExpiresAt = base.Add(time.Hour)
		mustCreateToken(t, s, idle)
		used := newToken(u)
		used.IdleExpiresAt = base.Add(time.Hour)
		mustCreateToken(t, s, used)
		next := mustRotate(t, s, used, base.Add(30*time.Minute)) // idle until base+24h30m
		if n, err := s.PruneRefreshTokens(ctx, before, base); err != nil || n != 1 {
			t.Fatalf("PruneRefreshTokens = %d, %v; want 1 deleted", n, err)
		}
		checkNoToken(t, s, "the idle family", idle)
		checkToken(t, s, "the family's current token", next)
	}},
}
