package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/rvoip/users-core/identity"
)

// digestCredentialTests check identity.DigestCredentialReader, an optional
// interface (the credential cache's one-read miss path); without it they
// skip. DigestCredentials must give the user UserByName gives, with the
// SIP credentials of exactly one algorithm and form, in realm order.
var digestCredentialTests = []subtest{
	{"reads the user and one algorithm's HA1s", func(t *testing.T, s Store) {
		r, ok := s.(identity.DigestCredentialReader)
		if !ok {
			t.Skipf("%T does not implement identity.DigestCredentialReader (optional)", s)
		}
		ctx := context.Background()
		alice := newUser("Alice")
		alice.Roles = []identity.Role{identity.RoleUser, identity.RoleAdmin}
		creds := &identity.Credentials{PasswordHash: "$argon2id$x", SIP: []identity.SIPCredential{
			{Realm: "b.example", Algorithm: identity.MD5, Sealed: []byte("b-md5")},
			{Realm: "a.example", Algorithm: identity.MD5, Sealed: []byte("a-md5")},
			{Realm: "a.example", Algorithm: identity.MD5, Qualified: true, Sealed: []byte("a-md5-q")},
			{Realm: "a.example", Algorithm: identity.SHA256, Sealed: []byte("a-sha256")},
		}}
		if err := s.CreateUser(ctx, alice, creds); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, newUser("bob"), nil); err != nil {
			t.Fatal(err)
		}
		byName, err := s.UserByName(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			what      string
			name      string
			alg       identity.DigestAlgorithm
			qualified bool
			want      []string // realm=sealed, in realm order
		}{
			{"plain MD5 of both realms, by a name in other case", "ALICE", identity.MD5, false, []string{"a.example=a-md5", "b.example=b-md5"}},
			{"qualified MD5", "alice", identity.MD5, true, []string{"a.example=a-md5-q"}},
			{"SHA-256", "alice", identity.SHA256, false, []string{"a.example=a-sha256"}},
			{"an algorithm without HA1s", "alice", identity.SHA512256, false, nil},
			{"a user without credentials", "bob", identity.MD5, false, nil},
		} {
			u, got, err := r.DigestCredentials(ctx, tc.name, tc.alg, tc.qualified)
			if err != nil {
				t.Fatalf("%s: %v", tc.what, err)
			}
			var pairs []string
			for _, c := range got {
				if c.Algorithm != tc.alg || c.Qualified != tc.qualified {
					t.Errorf("%s: credential %+v has another algorithm or form", tc.what, c)
				}
				pairs = append(pairs, c.Realm+"="+string(c.Sealed))
			}
			if !slices.Equal(pairs, tc.want) {
				t.Errorf("%s: credentials %v, want %v", tc.what, pairs, tc.want)
			}
			if tc.name == "bob" {
				continue
			}
			if u.ID != byName.ID || u.Username != byName.Username || u.Email != byName.Email || u.Active != byName.Active ||
				!u.CreatedAt.Equal(byName.CreatedAt) || !slices.Equal(u.Roles, byName.Roles) {
				t.Errorf("%s: user %+v, UserByName gives %+v", tc.what, u, byName)
			}
		}
		if _, _, err := r.DigestCredentials(ctx, "nobody", identity.MD5, false); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("unknown user: err = %v, want ErrNotFound", err)
		}
	}},
}
