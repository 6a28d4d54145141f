package identity_test

import (
	"context"
	"errors"
	"hash/crc32"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/sqlite"
)

// countingStore is the real SQLite store, counting the calls Authenticate
// and the last-used flush may make, and able to fail TouchAPIKeys.
type countingStore struct {
	*sqlite.DB
	mu        sync.Mutex
	byID      int
	userByID  int
	touches   int
	failTouch bool
}

func (c *countingStore) APIKeyByID(ctx context.Context, id string) (*identity.APIKey, []byte, error) {
	c.mu.Lock()
	c.byID++
	c.mu.Unlock()
	return c.DB.APIKeyByID(ctx, id)
}

func (c *countingStore) UserByID(ctx context.Context, id string) (*identity.User, error) {
	c.mu.Lock()
	c.userByID++
	c.mu.Unlock()
	return c.DB.UserByID(ctx, id)
}

func (c *countingStore) TouchAPIKeys(ctx context.Context, m map[string]time.Time) error {
	c.mu.Lock()
	c.touches++
	fail := c.failTouch
	c.mu.Unlock()
	if fail {
		return errors.New("disk on fire")
	}
	return c.DB.TouchAPIKeys(ctx, m)
}

// calls returns the store reads made so far.
func (c *countingStore) calls() (byID, userByID, touches int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID, c.userByID, c.touches
}

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is an API key service on a fresh SQLite database.
type fixture struct {
	t      *testing.T
	store  *countingStore
	clock  *clock
	keys   *identity.APIKeys
	mu     sync.Mutex
	events []identity.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, store: &countingStore{DB: db}, clock: &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}}
	sink := identity.EventFunc(func(e identity.Event) {
		f.mu.Lock()
		f.events = append(f.events, e)
		f.mu.Unlock()
	})
	f.keys = identity.NewAPIKeys(f.store, f.store, sink, f.clock.now)
	return f
}

// user creates an active user called name with roles.
func (f *fixture) user(name string, roles ...identity.Role) *identity.User {
	f.t.Helper()
	now := f.clock.now()
	u := &identity.User{ID: uuid.NewString(), Username: name, Roles: roles, Active: true, CreatedAt: now, UpdatedAt: now}
	if err := f.store.DB.CreateUser(context.Background(), u, nil); err != nil {
		f.t.Fatal(err)
	}
	return u
}

// update changes the stored user id with fn.
func (f *fixture) update(id string, fn func(u *identity.User)) {
	f.t.Helper()
	if _, err := f.store.DB.UpdateUser(context.Background(), id, func(u *identity.User) error { fn(u); return nil }); err != nil {
		f.t.Fatal(err)
	}
}

// create makes a key or fails the test.
func (f *fixture) create(owner *identity.User, name string, ttl time.Duration, scopes ...string) (string, *identity.APIKey) {
	f.t.Helper()
	key, k, err := f.keys.Create(context.Background(), owner.ID, name, scopes, ttl)
	if err != nil {
		f.t.Fatalf("Create(%s, %q, %v): %v", owner.Username, name, scopes, err)
	}
	return key, k
}

// stored returns the key id as the store has it, bypassing the counters.
func (f *fixture) stored(id string) *identity.APIKey {
	f.t.Helper()
	k, _, err := f.store.DB.APIKeyByID(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// withChecksum appends the checksum to body as the format specifies it,
// computed here independently of the package: CRC32 (IEEE) of body in 6
// base62 digits, most significant first.
func withChecksum(body string) string {
	v := crc32.ChecksumIEEE([]byte(body))
	d := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		d[i] = base62[v%62]
		v /= 62
	}
	return body + string(d)
}

var keyPattern = regexp.MustCompile(`^ucak_([0-9A-Za-z]{12})_[0-9A-Za-z]{36}$`)

func wantCode(t testing.TB, what string, err error, code identity.Code) {
	t.Helper()
	if got := identity.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %s", what, err, got, code)
	}
}

func TestAPIKeyFormat(t *testing.T) {
	f := newFixture(t)
	alice := f.user("alice", identity.RoleUser)
	var keys []string
	for i := 0; i < 20; i++ {
		key, k := f.create(alice, "key "+string(rune('a'+i)), 0, identity.ScopeProfileRead)
		m := keyPattern.FindStringSubmatch(key)
		if m == nil {
			t.Fatalf("key %q does not match %s", key, keyPattern)
		}
		if m[1] != k.ID {
			t.Errorf("key %q carries id %q, record has %q", key, m[1], k.ID)
		}
		if want := withChecksum(key[:len(key)-6]); key != want {
			t.Errorf("key %q: checksum, want %q", key, want[len(want)-6:])
		}
		if id, err := identity.ParseAPIKey(key); err != nil || id != k.ID {
			t.Errorf("ParseAPIKey(%q) = %q, %v; want %q", key, id, err, k.ID)
		}
		if slices.Contains(keys, key) {
			t.Fatalf("key %q generated twice", key)
		}
		keys = append(keys, key)
	}

	t.Run("a key with one character changed is refused without a store access", func(t *testing.T) {
		replacements := base62 + "_-+/=. é\x00"
		byID0, user0, _ := f.store.calls()
		trials := 0
		for _, key := range keys {
			for pos := 0; pos < len(key); pos++ {
				for _, r := range replacements {
					if byte(r) == key[pos] && r < 0x80 {
						continue
					}
					bad := key[:pos] + string(r) + key[pos+1:]
					trials++
					if _, err := identity.ParseAPIKey(bad); identity.ErrorCode(err) != identity.CodeUnauthorized {
						t.Fatalf("ParseAPIKey(%q) (position %d changed) = %v, want CodeUnauthorized", bad, pos, err)
					}
					if _, _, _, err := f.keys.Authenticate(context.Background(), bad); identity.ErrorCode(err) != identity.CodeUnauthorized {
						t.Fatalf("Authenticate(%q) = %v, want CodeUnauthorized", bad, err)
					}
				}
			}
		}
		if byID, user, _ := f.store.calls(); byID != byID0 || user != user0 {
			t.Errorf("%d lookalikes made %d key and %d user lookups, want none", trials, byID-byID0, user-user0)
		}
		if trials < 50_000 {
			t.Errorf("only %d trials", trials)
		}
	})

	t.Run("wrong prefix, length or alphabet is refused", func(t *testing.T) {
		key := keys[0]
		id, secret := key[5:17], key[18:48]
		for _, tc := range []struct{ name, key string }{
			{"empty", ""},
			{"prefix only", "ucak_"},
			{"GitHub's prefix", withChecksum("ghp_" + id + "_" + secret)},
			{"upper-case prefix", withChecksum("UCAK_" + id + "_" + secret)},
			{"one character short", withChecksum("ucak_" + id + "_" + secret[1:])},
			{"one character long", withChecksum("ucak_" + id + "_" + secret + "x")},
			{"a short id", withChecksum("ucak_" + id[1:] + "_x" + secret)},
			{"a dash in the id", withChecksum("ucak_" + id[:11] + "-" + "_" + secret)},
			{"a dash in the secret", withChecksum("ucak_" + id + "_" + secret[:29] + "-")},
			{"a non-ASCII letter", withChecksum("ucak_" + id + "_" + secret[:28] + "é")},
			{"no separator", withChecksum("ucak_" + id + "x" + secret)},
			{"surrounding space", " " + key},
			{"a trailing newline", key + "\n"},
			{"the key twice", key + key},
		} {
			if _, err := identity.ParseAPIKey(tc.key); identity.ErrorCode(err) != identity.CodeUnauthorized {
				t.Errorf("%s: ParseAPIKey(%q) = %v, want CodeUnauthorized", tc.name, tc.key, err)
			}
		}
	})
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()

	t.Run("a good key returns its record, owner and scopes", func(t *testing.T) {
		f := newFixture(t)
		root := f.user("root", identity.RoleAdmin)
		key, k := f.create(root, "ci", 0, identity.ScopeUsersRead, identity.ScopeAPIKeysRead)
		got, owner, scopes, err := f.keys.Authenticate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.ID || owner.ID != root.ID {
			t.Errorf("Authenticate = key %s owner %s, want %s %s", got.ID, owner.ID, k.ID, root.ID)
		}
		if want := []string{identity.ScopeAPIKeysRead, identity.ScopeUsersRead}; !slices.Equal(scopes, want) {
			t.Errorf("scopes = %v, want %v (the key's, not the admin's)", scopes, want)
		}
		if identity.HasScope(scopes, identity.ScopeUsersWrite) {
			t.Error("an admin's read-only key may write users")
		}
	})

	// refused fails t unless key is refused with the one generic answer.
	refused := func(t *testing.T, f *fixture, what, key string) {
		t.Helper()
		_, _, _, err := f.keys.Authenticate(ctx, key)
		wantCode(t, what, err, identity.CodeUnauthorized)
		if msg := identity.ErrorMessage(err); msg != "invalid API key" {
			t.Errorf("%s: message %q, want the generic %q", what, msg, "invalid API key")
		}
	}

	t.Run("a revoked key is refused", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		if err := f.keys.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		refused(t, f, "revoked", key)
	})

	t.Run("a key is refused from its expiry on", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", time.Hour, identity.ScopeProfileRead)
		if !k.ExpiresAt.Equal(f.clock.now().Add(time.Hour)) {
			t.Errorf("ExpiresAt = %v, want an hour from now", k.ExpiresAt)
		}
		f.clock.advance(time.Hour - time.Millisecond)
		if _, _, _, err := f.keys.Authenticate(ctx, key); err != nil {
			t.Fatalf("a millisecond before expiry: %v", err)
		}
		f.clock.advance(time.Millisecond)
		refused(t, f, "at expiry", key)
	})

	t.Run("the right id with a wrong secret is refused after one lookup", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, _ := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		secret := []byte(key[18:48])
		secret[0] = base62[(strings.IndexByte(base62, secret[0])+1)%62]
		forged := withChecksum(key[:18] + string(secret))
		if _, err := identity.ParseAPIKey(forged); err != nil {
			t.Fatalf("the forged key should be well-formed: %v", err)
		}
		byID0, _, _ := f.store.calls()
		refused(t, f, "wrong secret", forged)
		if byID, _, _ := f.store.calls(); byID != byID0+1 {
			t.Errorf("%d key lookups, want 1", byID-byID0)
		}
		refused(t, f, "a well-formed key nobody issued", withChecksum("ucak_"+strings.Repeat("A", 12)+"_"+string(secret)))
	})

	t.Run("a disabled owner disables the key until re-enabled", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, _ := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		f.update(alice.ID, func(u *identity.User) { u.Active = false })
		refused(t, f, "owner disabled", key)
		f.update(alice.ID, func(u *identity.User) { u.Active = true })
		if _, _, _, err := f.keys.Authenticate(ctx, key); err != nil {
			t.Fatalf("owner enabled again: %v", err)
		}
	})

	t.Run("a deleted owner's key is refused", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, _ := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		if err := f.store.DB.DeleteUser(ctx, alice.ID); err != nil {
			t.Fatal(err)
		}
		refused(t, f, "owner deleted", key)
	})

	t.Run("a demoted owner's key loses the admin scopes, and regains them on promotion", func(t *testing.T) {
		f := newFixture(t)
		root := f.user("root", identity.RoleAdmin)
		key, _ := f.create(root, "ops", 0, identity.ScopeUsersWrite, identity.ScopeProfileRead)
		all, _ := f.create(root, "all", 0, identity.ScopeAdmin)
		scopesOf := func(key string) []string {
			t.Helper()
			_, _, s, err := f.keys.Authenticate(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if s := scopesOf(key); !slices.Equal(s, []string{identity.ScopeProfileRead, identity.ScopeUsersWrite}) {
			t.Fatalf("as admin: %v", s)
		}
		if s := scopesOf(all); !slices.Equal(s, identity.KnownScopes()) {
			t.Fatalf("admin key as admin: %v, want every scope", s)
		}
		f.update(root.ID, func(u *identity.User) { u.Roles = []identity.Role{identity.RoleUser} })
		if s := scopesOf(key); !slices.Equal(s, []string{identity.ScopeProfileRead}) {
			t.Errorf("after demotion: %v, want only profile:read", s)
		}
		s := scopesOf(all)
		if !slices.Equal(s, identity.RoleScopes([]identity.Role{identity.RoleUser})) || identity.HasScope(s, identity.ScopeUsersRead) {
			t.Errorf("admin key after demotion: %v, want a user's scopes", s)
		}
		f.update(root.ID, func(u *identity.User) { u.Roles = []identity.Role{identity.RoleAdmin} })
		if s := scopesOf(key); !slices.Equal(s, []string{identity.ScopeProfileRead, identity.ScopeUsersWrite}) {
			t.Errorf("after promotion: %v", s)
		}
	})
}

func TestCreateAPIKey(t *testing.T) {
	ctx := context.Background()

	t.Run("scopes beyond the owner's roles are forbidden", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		for _, s := range []string{identity.ScopeUsersWrite, identity.ScopeUsersRead, identity.ScopeAuditRead, identity.ScopeRegistrationsWrite, identity.ScopeAdmin} {
			_, _, err := f.keys.Create(ctx, alice.ID, "k", []string{identity.ScopeProfileRead, s}, 0)
			wantCode(t, "user asking for "+s, err, identity.CodeForbidden)
		}
		root := f.user("root", identity.RoleAdmin)
		f.create(root, "k", 0, identity.ScopeUsersWrite, identity.ScopeAdmin)
	})

	t.Run("a scope limit on the context bounds even an admin", func(t *testing.T) {
		f := newFixture(t)
		root := f.user("root", identity.RoleAdmin)
		limited := identity.WithScopeLimit(ctx, []string{identity.ScopeAPIKeysWrite, identity.ScopeProfileRead})
		for _, s := range []string{identity.ScopeUsersRead, identity.ScopeAdmin} {
			_, _, err := f.keys.Create(limited, root.ID, "k", []string{s}, 0)
			wantCode(t, "limited caller asking for "+s, err, identity.CodeForbidden)
		}
		if _, _, err := f.keys.Create(limited, root.ID, "k", []string{identity.ScopeProfileRead}, 0); err != nil {
			t.Fatalf("a scope within the limit: %v", err)
		}
	})

	t.Run("scopes are validated and normalized", func(t *testing.T) {
		f := newFixture(t)
		root := f.user("root", identity.RoleAdmin)
		_, k, err := f.keys.Create(ctx, root.ID, "k", []string{" Users:Read", "profile:read", "users:read"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{identity.ScopeProfileRead, identity.ScopeUsersRead}; !slices.Equal(k.Scopes, want) || !slices.Equal(f.stored(k.ID).Scopes, want) {
			t.Errorf("scopes = %v, stored %v, want %v", k.Scopes, f.stored(k.ID).Scopes, want)
		}
		for _, scopes := range [][]string{nil, {"users:delete"}, {""}, {"read"}, {"*"}} {
			_, _, err := f.keys.Create(ctx, root.ID, "other", scopes, 0)
			wantCode(t, "scopes "+strings.Join(scopes, ","), err, identity.CodeInvalid)
			if identity.ErrorField(err) != "scopes" {
				t.Errorf("scopes %v: field %q, want scopes", scopes, identity.ErrorField(err))
			}
		}
	})

	t.Run("names are 1 to 64 printable characters, unique among the owner's unrevoked keys", func(t *testing.T) {
		f := newFixture(t)
		alice, bob := f.user("alice", identity.RoleUser), f.user("bob", identity.RoleUser)
		for _, name := range []string{"", "   ", strings.Repeat("n", 65), "tab\there", "bell\a", "\xff"} {
			_, _, err := f.keys.Create(ctx, alice.ID, name, []string{identity.ScopeProfileRead}, 0)
			wantCode(t, "name "+name, err, identity.CodeInvalid)
			if identity.ErrorField(err) != "name" {
				t.Errorf("name %q: field %q, want name", name, identity.ErrorField(err))
			}
		}
		_, k := f.create(alice, strings.Repeat("é", 64), 0, identity.ScopeProfileRead)
		_, ci := f.create(alice, " ci ", 0, identity.ScopeProfileRead)
		if ci.Name != "ci" || utf8Len(k.Name) != 64 {
			t.Errorf("names %q, %q", ci.Name, k.Name)
		}
		_, _, err := f.keys.Create(ctx, alice.ID, "ci", []string{identity.ScopeProfileRead}, 0)
		wantCode(t, "a duplicate name", err, identity.CodeConflict)
		if !errors.Is(err, identity.ErrConflict) {
			t.Error("the duplicate does not match ErrConflict")
		}
		f.create(bob, "ci", 0, identity.ScopeProfileRead)
		if err := f.keys.Revoke(ctx, ci.ID); err != nil {
			t.Fatal(err)
		}
		f.create(alice, "ci", 0, identity.ScopeProfileRead)
	})

	t.Run("expiry, owner and state are checked", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		_, _, err := f.keys.Create(ctx, alice.ID, "k", []string{identity.ScopeProfileRead}, -time.Second)
		wantCode(t, "negative ttl", err, identity.CodeInvalid)
		_, _, err = f.keys.Create(ctx, uuid.NewString(), "k", []string{identity.ScopeProfileRead}, 0)
		if !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("unknown owner: %v, want ErrNotFound", err)
		}
		f.update(alice.ID, func(u *identity.User) { u.Active = false })
		_, _, err = f.keys.Create(ctx, alice.ID, "k", []string{identity.ScopeProfileRead}, 0)
		wantCode(t, "disabled owner", err, identity.CodeForbidden)
	})

	t.Run("a user holds at most 50 active keys", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		var last *identity.APIKey
		for i := 0; i < identity.MaxActiveAPIKeys-1; i++ {
			_, last = f.create(alice, "k"+strings.Repeat("x", i), 0, identity.ScopeProfileRead)
		}
		f.create(alice, "short-lived", time.Minute, identity.ScopeProfileRead)
		_, _, err := f.keys.Create(ctx, alice.ID, "one too many", []string{identity.ScopeProfileRead}, 0)
		wantCode(t, "51st key", err, identity.CodeConflict)
		if err := f.keys.Revoke(ctx, last.ID); err != nil {
			t.Fatal(err)
		}
		f.create(alice, "after a revocation", 0, identity.ScopeProfileRead)
		_, _, err = f.keys.Create(ctx, alice.ID, "one too many", []string{identity.ScopeProfileRead}, 0)
		wantCode(t, "50 active again", err, identity.CodeConflict)
		f.clock.advance(time.Minute)
		f.create(alice, "after an expiry", 0, identity.ScopeProfileRead)
	})

	t.Run("creation and revocation are events without the key", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		actx := identity.WithActor(ctx, "cli", "")
		key, k, err := f.keys.Create(actx, alice.ID, "ci", []string{identity.ScopeProfileRead}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := f.keys.Revoke(actx, k.ID); err != nil {
				t.Fatalf("revoke %d: %v", i+1, err)
			}
		}
		if err := f.keys.Revoke(actx, "nosuchkey123"); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("revoking an unknown key: %v, want ErrNotFound", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.events) != 2 {
			t.Fatalf("events = %+v, want created and one revoked", f.events)
		}
		for i, action := range []string{identity.ActionAPIKeyCreated, identity.ActionAPIKeyRevoked} {
			e := f.events[i]
			if e.Action != action || e.Subject != alice.ID || e.Actor != "cli" || e.Outcome != identity.OutcomeSuccess {
				t.Errorf("event %d = %+v, want %s on alice by cli", i, e, action)
			}
			if !strings.Contains(e.Detail, k.ID) || !strings.Contains(e.Detail, "ci") {
				t.Errorf("event %d detail %q lacks the key id or name", i, e.Detail)
			}
			if strings.Contains(e.Detail, key[18:]) {
				t.Errorf("event %d detail %q holds the secret", i, e.Detail)
			}
		}
	})
}

func utf8Len(s string) int { return len([]rune(s)) }

func TestListAndGetAPIKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice := f.user("alice", identity.RoleUser)
	_, a := f.create(alice, "a", 0, identity.ScopeProfileRead)
	f.clock.advance(time.Second)
	_, b := f.create(alice, "b", 0, identity.ScopeProfileRead)
	keys, err := f.keys.List(ctx, alice.ID)
	if err != nil || len(keys) != 2 || keys[0].ID != b.ID || keys[1].ID != a.ID {
		t.Fatalf("List = %v, %v; want b then a", keys, err)
	}
	if got, err := f.keys.Get(ctx, a.ID); err != nil || got.Name != "a" {
		t.Errorf("Get = %v, %v", got, err)
	}
	if _, err := f.keys.Get(ctx, "nosuchkey123"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := f.keys.List(ctx, uuid.NewString()); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("List of an unknown user: %v, want ErrNotFound", err)
	}
}

func TestAPIKeyLastUsed(t *testing.T) {
	ctx := context.Background()

	t.Run("authentication writes nothing; Flush writes the time", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		f.clock.advance(time.Minute)
		used := f.clock.now()
		got, _, _, err := f.keys.Authenticate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastUsedAt.Equal(used) {
			t.Errorf("returned LastUsedAt = %v, want %v", got.LastUsedAt, used)
		}
		if _, _, touches := f.store.calls(); touches != 0 {
			t.Errorf("Authenticate wrote to the store %d times", touches)
		}
		if s := f.stored(k.ID); !s.LastUsedAt.IsZero() {
			t.Fatalf("stored LastUsedAt = %v right after Authenticate, want zero", s.LastUsedAt)
		}
		if err := f.keys.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if s := f.stored(k.ID); !s.LastUsedAt.Equal(used) {
			t.Errorf("stored LastUsedAt = %v after Flush, want %v", s.LastUsedAt, used)
		}
		if err := f.keys.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, touches := f.store.calls(); touches != 1 {
			t.Errorf("%d store writes, want 1 (an empty flush writes nothing)", touches)
		}
	})

	t.Run("a failed flush keeps the times for the next", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		if _, _, _, err := f.keys.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
		f.store.mu.Lock()
		f.store.failTouch = true
		f.store.mu.Unlock()
		if err := f.keys.Flush(ctx); err == nil {
			t.Fatal("Flush did not report the store's failure")
		}
		f.store.mu.Lock()
		f.store.failTouch = false
		f.store.mu.Unlock()
		if err := f.keys.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if f.stored(k.ID).LastUsedAt.IsZero() {
			t.Error("the time of the failed flush was lost")
		}
	})

	t.Run("Run flushes on its interval", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.keys.Run(rctx, 10*time.Millisecond) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		if _, _, _, err := f.keys.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); f.stored(k.ID).LastUsedAt.IsZero(); {
			if time.Now().After(deadline) {
				t.Fatal("Run did not flush within 5 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("Run flushes once more when its context ends", func(t *testing.T) {
		f := newFixture(t)
		alice := f.user("alice", identity.RoleUser)
		key, k := f.create(alice, "ci", 0, identity.ScopeProfileRead)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.keys.Run(rctx, time.Hour) }()
		if _, _, _, err := f.keys.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if f.stored(k.ID).LastUsedAt.IsZero() {
			t.Error("the last use was not flushed at shutdown")
		}
	})
}

func TestScopes(t *testing.T) {
	admin := []identity.Role{identity.RoleAdmin}
	user := []identity.Role{identity.RoleUser}

	t.Run("roles grant their scopes", func(t *testing.T) {
		if got := identity.RoleScopes(admin); !slices.Equal(got, identity.KnownScopes()) || !slices.Contains(got, identity.ScopeAdmin) {
			t.Errorf("admin: %v", got)
		}
		want := []string{"apikeys:read", "apikeys:write", "profile:read", "profile:write", "registrations:read"}
		if got := identity.RoleScopes(user); !slices.Equal(got, want) {
			t.Errorf("user: %v, want %v", got, want)
		}
		if got := identity.RoleScopes(nil); len(got) != 0 {
			t.Errorf("no roles: %v", got)
		}
	})

	t.Run("ValidateScopes normalizes and refuses unknown scopes", func(t *testing.T) {
		got, err := identity.ValidateScopes([]string{"USERS:WRITE", " admin ", "users:write"})
		if err != nil || !slices.Equal(got, []string{"admin", "users:write"}) {
			t.Errorf("ValidateScopes = %v, %v", got, err)
		}
		if _, err := identity.ValidateScopes([]string{"users:read", "sip.register"}); !errors.Is(err, identity.ErrInvalid) || identity.ErrorField(err) != "scopes" {
			t.Errorf("unknown scope: %v", err)
		}
	})

	t.Run("effective scopes are the intersection, admin expanded", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			key   []string
			roles []identity.Role
			want  []string
		}{
			{"admin key, admin owner", []string{"admin"}, admin, identity.KnownScopes()},
			{"narrow key, admin owner", []string{"users:read"}, admin, []string{"users:read"}},
			{"admin key, user owner", []string{"admin"}, user, identity.RoleScopes(user)},
			{"admin scopes, user owner", []string{"users:write", "audit:read", "profile:read"}, user, []string{"profile:read"}},
			{"no roles", []string{"admin"}, nil, []string{}},
			{"no scopes", nil, admin, []string{}},
		} {
			if got := identity.EffectiveScopes(tc.key, tc.roles); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	})

	t.Run("HasScope honours admin", func(t *testing.T) {
		if !identity.HasScope([]string{"admin"}, "users:write") || identity.HasScope([]string{"users:read"}, "users:write") || !identity.HasScope([]string{"users:read"}, "users:read") {
			t.Error("HasScope is wrong")
		}
	})
}
