package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
)

// newAPIKey returns a key record of u called name, created at base, with a
// fresh id, and the hash to store with it.
func newAPIKey(u *identity.User, name string) (*identity.APIKey, []byte) {
	id := strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	hash := sha256.Sum256([]byte("key-" + id))
	return &identity.APIKey{
		ID:        id,
		UserID:    u.ID,
		Name:      name,
		Scopes:    []string{identity.ScopeAPIKeysRead, identity.ScopeProfileRead},
		CreatedAt: base,
	}, hash[:]
}

func mustCreateKey(t testing.TB, s Store, k *identity.APIKey, hash []byte) {
	t.Helper()
	if err := s.CreateAPIKey(context.Background(), k, hash); err != nil {
		t.Fatalf("CreateAPIKey(%q): %v", k.Name, err)
	}
}

func mustGetKey(t testing.TB, s Store, id string) (*identity.APIKey, []byte) {
	t.Helper()
	k, hash, err := s.APIKeyByID(context.Background(), id)
	if err != nil {
		t.Fatalf("APIKeyByID(%q): %v", id, err)
	}
	return k, hash
}

// apiKeyDiff describes how got differs from want, "" when equal. Times
// compare with Equal; nil and empty scopes are equal.
func apiKeyDiff(got, want *identity.APIKey) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.UserID != want.UserID {
		add("UserID", got.UserID, want.UserID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if !slices.Equal(got.Scopes, want.Scopes) {
		add("Scopes", got.Scopes, want.Scopes)
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"LastUsedAt", got.LastUsedAt, want.LastUsedAt},
		{"RevokedAt", got.RevokedAt, want.RevokedAt},
	} {
		if !f.got.Equal(f.want) || f.got.IsZero() != f.want.IsZero() {
			add(f.name, f.got, f.want)
		}
	}
	return strings.Join(d, "; ")
}

func checkKey(t testing.TB, s Store, what string, want *identity.APIKey) {
	t.Helper()
	got, _ := mustGetKey(t, s, want.ID)
	if d := apiKeyDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// listIDs returns the ids ListAPIKeys gives for userID, in order.
func listIDs(t testing.TB, s Store, userID string) []string {
	t.Helper()
	keys, err := s.ListAPIKeys(context.Background(), userID)
	if err != nil {
		t.Fatalf("ListAPIKeys(%q): %v", userID, err)
	}
	ids := []string{}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

var apiKeyTests = []subtest{
	{"a created key reads back with its hash, unset times staying zero", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		k, hash := newAPIKey(u, "ci")
		mustCreateKey(t, s, k, hash)
		got, gotHash := mustGetKey(t, s, k.ID)
		if d := apiKeyDiff(got, k); d != "" {
			t.Error(d)
		}
		if !bytes.Equal(gotHash, hash) {
			t.Errorf("hash = %x, want %x", gotHash, hash)
		}
	}},
	{"every field round-trips, times included", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		k, hash := newAPIKey(u, "deploy bot ☃")
		k.Scopes = []string{identity.ScopeAdmin}
		k.ExpiresAt = base.Add(90 * 24 * time.Hour)
		k.LastUsedAt = base.Add(time.Minute)
		k.RevokedAt = base.Add(time.Hour)
		mustCreateKey(t, s, k, hash)
		checkKey(t, s, "stored", k)
	}},
	{"an unknown id is not found", func(t *testing.T, s Store) {
		_, _, err := s.APIKeyByID(context.Background(), "nosuchkey123")
		wantErr(t, "APIKeyByID", err, identity.ErrNotFound)
	}},
	{"a key for a missing user is not found and not stored", func(t *testing.T, s Store) {
		k, hash := newAPIKey(newUser("ghost"), "ci")
		wantErr(t, "CreateAPIKey", s.CreateAPIKey(context.Background(), k, hash), identity.ErrNotFound)
		_, _, err := s.APIKeyByID(context.Background(), k.ID)
		wantErr(t, "APIKeyByID", err, identity.ErrNotFound)
	}},
	{"a taken id is a conflict", func(t *testing.T, s Store) {
		u := mustCreateNamed(t, s, "alice")[0]
		k, hash := newAPIKey(u, "one")
		mustCreateKey(t, s, k, hash)
		k2, hash2 := newAPIKey(u, "two")
		k2.ID = k.ID
		wantErr(t, "CreateAPIKey", s.CreateAPIKey(context.Background(), k2, hash2), identity.ErrConflict)
	}},
	{"a name is unique among a user's unrevoked keys only", func(t *testing.T, s Store) {
		ctx := context.Background()
		us := mustCreateNamed(t, s, "alice", "bob")
		k, hash := newAPIKey(us[0], "ci")
		mustCreateKey(t, s, k, hash)
		dup, dupHash := newAPIKey(us[0], "ci")
		wantErr(t, "same name, same user", s.CreateAPIKey(ctx, dup, dupHash), identity.ErrConflict)
		other, otherHash := newAPIKey(us[1], "ci")
		mustCreateKey(t, s, other, otherHash) // another user's "ci" is fine
		if err := s.RevokeAPIKey(ctx, k.ID, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustCreateKey(t, s, dup, dupHash) // the revoked "ci" frees the name
		if got := listIDs(t, s, us[0].ID); len(got) != 2 {
			t.Errorf("alice has %d keys, want 2 (the revoked one stays listed)", len(got))
		}
	}},
	{"a list holds only the user's keys, newest first, revoked ones included", func(t *testing.T, s Store) {
		ctx := context.Background()
		us := mustCreateNamed(t, s, "alice", "bob")
		var want []string
		for i, name := range []string{"first", "second", "third"} {
			k, hash := newAPIKey(us[0], name)
			k.CreatedAt = base.Add(time.Duration(i) * time.Minute)
			mustCreateKey(t, s, k, hash)
			want = append([]string{k.ID}, want...)
		}
		b, bHash := newAPIKey(us[1], "bobs")
		mustCreateKey(t, s, b, bHash)
		if err := s.RevokeAPIKey(ctx, want[1], base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := listIDs(t, s, us[0].ID); !slices.Equal(got, want) {
			t.Errorf("ListAPIKeys = %v, want %v", got, want)
		}
		keys, err := s.ListAPIKeys(ctx, us[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if keys[1].RevokedAt.IsZero() || keys[1].Name != "second" {
			t.Errorf("the revoked key is listed as %+v", keys[1])
		}
		if want := []string{identity.ScopeAPIKeysRead, identity.ScopeProfileRead}; !slices.Equal(keys[0].Scopes, want) {
			t.Errorf("listed scopes = %v, want %v", keys[0].Scopes, want)
		}
	}},
	{"an unknown user lists no keys, without an error", func(t *testing.T, s Store) {
		if got := listIDs(t, s, uuid.NewString()); len(got) != 0 {
			t.Errorf("ListAPIKeys = %v, want none", got)
		}
	}},
	{"revoking is idempotent and keeps the first time", func(t *testing.T, s Store) {
		ctx := context.Background()
		u := mustCreateNamed(t, s, "alice")[0]
		k, hash := newAPIKey(u, "ci")
		mustCreateKey(t, s, k, hash)
		first := base.Add(time.Hour)
		for _, at := range []time.Time{first, first.Add(time.Hour)} {
			if err := s.RevokeAPIKey(ctx, k.ID, at); err != nil {
				t.Fatalf("RevokeAPIKey at %v: %v", at, err)
			}
		}
		k.RevokedAt = first
		checkKey(t, s, "revoked twice", k)
	}},
	{"revoking an unknown key is not found", func(t *testing.T, s Store) {
		wantErr(t, "RevokeAPIKey", s.RevokeAPIKey(context.Background(), "nosuchkey123", base), identity.ErrNotFound)
	}},
	{"touch sets last-used times, never moves one back, and skips unknown keys", func(t *testing.T, s Store) {
		ctx := context.Background()
		u := mustCreateNamed(t, s, "alice")[0]
		a, aHash := newAPIKey(u, "a")
		b, bHash := newAPIKey(u, "b")
		mustCreateKey(t, s, a, aHash)
		mustCreateKey(t, s, b, bHash)
		t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{a.ID: t2, b.ID: t1, "nosuchkey123": t1}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		a.LastUsedAt, b.LastUsedAt = t2, t1
		checkKey(t, s, "after the first touch", a)
		checkKey(t, s, "after the first touch", b)
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{a.ID: t1, b.ID: t2}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		b.LastUsedAt = t2
		checkKey(t, s, "an earlier time", a)
		checkKey(t, s, "a later time", b)
		if err := s.TouchAPIKeys(ctx, nil); err != nil {
			t.Errorf("TouchAPIKeys(nil): %v", err)
		}
	}},
	{"deleting the user deletes its keys", func(t *testing.T, s Store) {
		ctx := context.Background()
		us := mustCreateNamed(t, s, "alice", "bob")
		k, hash := newAPIKey(us[0], "ci")
		mustCreateKey(t, s, k, hash)
		b, bHash := newAPIKey(us[1], "ci")
		mustCreateKey(t, s, b, bHash)
		if err := s.DeleteUser(ctx, us[0].ID); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.APIKeyByID(ctx, k.ID)
		wantErr(t, "APIKeyByID after the owner's deletion", err, identity.ErrNotFound)
		checkKey(t, s, "another user's key", b)
	}},
	{"a key without id, name or hash is invalid", func(t *testing.T, s Store) {
		ctx := context.Background()
		u := mustCreateNamed(t, s, "alice")[0]
		for _, tc := range []struct {
			what string
			edit func(k *identity.APIKey, hash *[]byte)
		}{
			{"no id", func(k *identity.APIKey, _ *[]byte) { k.ID = "" }},
			{"no name", func(k *identity.APIKey, _ *[]byte) { k.Name = "" }},
			{"no hash", func(_ *identity.APIKey, h *[]byte) { *h = nil }},
			{"a scope with a space", func(k *identity.APIKey, _ *[]byte) { k.Scopes = []string{"users:read users:write"} }},
		} {
			k, hash := newAPIKey(u, "ci")
			tc.edit(k, &hash)
			wantErr(t, tc.what, s.CreateAPIKey(ctx, k, hash), identity.ErrInvalid)
		}
	}},
}
