// Package storetest is the conformance suite for users-core storage
// backends. Every backend runs RunTests from its own _test.go against fresh
// stores; passing it is what "implements identity.UserStore" means beyond
// the method signatures.
//
// It is for tests only: nothing outside _test.go files imports it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
)

// Store is what the suite exercises: the identity, jwks and sip storage
// contracts.
type Store interface {
	identity.UserStore
	identity.SecretStore
	identity.RefreshStore
	identity.AttemptStore
	identity.APIKeyStore
	identity.AuditStore
	jwks.KeyStore
	sip.BindingStore
}

// subtest is one named check. Names read as sentences after their group's
// name, e.g. "CreateUser/duplicate username differing in case is a
// conflict".
type subtest struct {
	name string
	run  func(t *testing.T, s Store)
}

// RunTests runs the conformance suite. newStore must return a fresh, empty
// store for each subtest and arrange its cleanup with t.Cleanup.
func RunTests(t *testing.T, newStore func(t *testing.T) Store) {
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"CreateUser", createUserTests},
		{"CreateUsers", createUsersTests},
		{"ListUsers", listUsersTests},
		{"CountUsers", countUsersTests},
		{"UpdateUser", updateUserTests},
		{"DeleteUser", deleteUserTests},
		{"Credentials", credentialsTests},
		{"DigestCredentials", digestCredentialTests},
		{"TouchLogin", touchLoginTests},
		{"Secret", secretTests},
		{"NotFound", notFoundTests},
		{"KeySet", keySetTests},
		{"RefreshTokens", refreshTokenTests},
		{"Attempts", attemptTests},
		{"Bindings", bindingTests},
		{"Audit", auditTests},
		{"APIKeys", apiKeyTests},
		{"ChangeStamps", changeStampTests},
		{"ActiveLocks", activeLockTests},
		{"UsersWithFailures", failureListTests},
		{"NonceCounts", nonceCountTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, st := range g.tests {
				t.Run(st.name, func(t *testing.T) {
					st.run(t, newStore(t))
				})
			}
		})
	}
}

// base is the time test users are created at: millisecond precision, UTC,
// so that it survives every backend unchanged.
var base = time.Date(2024, 5, 1, 12, 30, 45, 123_000_000, time.UTC)

// newUser returns an active user called name with a fresh ID, role user and
// times at base.
func newUser(name string) *identity.User {
	return &identity.User{
		ID:          uuid.NewString(),
		Username:    name,
		DisplayName: "User " + name,
		Roles:       []identity.Role{identity.RoleUser},
		Active:      true,
		CreatedAt:   base,
		UpdatedAt:   base,
	}
}

// sipCreds returns SIP credentials with distinct sealed values, listed out
// of the (realm, algorithm) order a store must return them in.
func sipCreds(tag string) []identity.SIPCredential {
	return []identity.SIPCredential{
		{Realm: "b.example", Algorithm: identity.MD5, Sealed: []byte(tag + "-b-md5")},
		{Realm: "a.example", Algorithm: identity.SHA256, Sealed: []byte(tag + "-a-sha256")},
		{Realm: "a.example", Algorithm: identity.MD5, Sealed: []byte(tag + "-a-md5")},
	}
}

// sortedSIP returns creds in (realm, algorithm) order.
func sortedSIP(creds []identity.SIPCredential) []identity.SIPCredential {
	out := slices.Clone(creds)
	slices.SortFunc(out, func(a, b identity.SIPCredential) int {
		if a.Realm != b.Realm {
			if a.Realm < b.Realm {
				return -1
			}
			return 1
		}
		switch {
		case a.Algorithm < b.Algorithm:
			return -1
		case a.Algorithm > b.Algorithm:
			return 1
		}
		return 0
	})
	return out
}

func mustCreate(t testing.TB, s Store, u *identity.User, creds *identity.Credentials) {
	t.Helper()
	if err := s.CreateUser(context.Background(), u, creds); err != nil {
		t.Fatalf("CreateUser(%q): %v", u.Username, err)
	}
}

func mustCreateNamed(t testing.TB, s Store, names ...string) []*identity.User {
	t.Helper()
	var users []*identity.User
	for _, n := range names {
		u := newUser(n)
		mustCreate(t, s, u, nil)
		users = append(users, u)
	}
	return users
}

func mustGet(t testing.TB, s Store, id string) *identity.User {
	t.Helper()
	u, err := s.UserByID(context.Background(), id)
	if err != nil {
		t.Fatalf("UserByID(%q): %v", id, err)
	}
	return u
}

func mustCredentials(t testing.TB, s Store, id string) *identity.Credentials {
	t.Helper()
	c, err := s.Credentials(context.Background(), id)
	if err != nil {
		t.Fatalf("Credentials(%q): %v", id, err)
	}
	return c
}

func mustCount(t testing.TB, s Store) int {
	t.Helper()
	n, err := s.CountUsers(context.Background())
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	return n
}

// wantErr fails t unless err matches target (an identity sentinel).
func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one matching %v", what, err, target)
	}
}

// userDiff describes how got differs from want, "" when they are equal.
// Times compare with Equal; nil and empty roles are equal.
func userDiff(got, want *identity.User) string {
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
	if got.Username != want.Username {
		add("Username", got.Username, want.Username)
	}
	if got.Email != want.Email {
		add("Email", got.Email, want.Email)
	}
	if got.DisplayName != want.DisplayName {
		add("DisplayName", got.DisplayName, want.DisplayName)
	}
	if !slices.Equal(got.Roles, want.Roles) {
		add("Roles", got.Roles, want.Roles)
	}
	if got.Active != want.Active {
		add("Active", got.Active, want.Active)
	}
	if got.TokenOnly != want.TokenOnly {
		add("TokenOnly", got.TokenOnly, want.TokenOnly)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if !got.LastLoginAt.Equal(want.LastLoginAt) {
		add("LastLoginAt", got.LastLoginAt, want.LastLoginAt)
	}
	return strings.Join(d, "; ")
}

func checkUser(t testing.TB, what string, got, want *identity.User) {
	t.Helper()
	if d := userDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// credsDiff describes how got differs from want, "" when equal. SIP
// credentials must come in the order of want.
func credsDiff(got, want *identity.Credentials) string {
	if got.PasswordHash != want.PasswordHash {
		return fmt.Sprintf("PasswordHash = %q, want %q", got.PasswordHash, want.PasswordHash)
	}
	if len(got.SIP) != len(want.SIP) {
		return fmt.Sprintf("%d SIP credentials, want %d: %v", len(got.SIP), len(want.SIP), got.SIP)
	}
	for i := range got.SIP {
		g, w := got.SIP[i], want.SIP[i]
		if g.Realm != w.Realm || g.Algorithm != w.Algorithm || !bytes.Equal(g.Sealed, w.Sealed) {
			return fmt.Sprintf("SIP[%d] = {%s %s %q}, want {%s %s %q}", i, g.Realm, g.Algorithm, g.Sealed, w.Realm, w.Algorithm, w.Sealed)
		}
	}
	return ""
}

func checkCreds(t testing.TB, what string, got, want *identity.Credentials) {
	t.Helper()
	if d := credsDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// AtOnce runs fn(0) to fn(n-1), each in its own goroutine, all released
// together so that the calls race, and returns once every one has
// returned.
func AtOnce(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
