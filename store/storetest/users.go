package storetest

import (
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
)

var createUserTests = []subtest{
	{"a created user can be read back by id", func(t *testing.T, s Store) {
		u := newUser("alice")
		u.Email = "alice@example.com"
		u.Roles = []identity.Role{identity.RoleAdmin, identity.RoleUser}
		u.Active = false
		u.TokenOnly = true
		u.UpdatedAt = base.Add(time.Hour)
		u.LastLoginAt = base.Add(2 * time.Hour)
		mustCreate(t, s, u, nil)
		checkUser(t, "UserByID", mustGet(t, s, u.ID), u)
	}},
	{"a created user is found by name in any case", func(t *testing.T, s Store) {
		u := newUser("Alice")
		mustCreate(t, s, u, nil)
		for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
			got, err := s.UserByName(context.Background(), name)
			if err != nil {
				t.Fatalf("UserByName(%q): %v", name, err)
			}
			checkUser(t, fmt.Sprintf("UserByName(%q)", name), got, u)
		}
	}},
	{"a user that never logged in has a zero LastLoginAt", func(t *testing.T, s Store) {
		u := newUser("newbie")
		mustCreate(t, s, u, nil)
		if got := mustGet(t, s, u.ID).LastLoginAt; !got.IsZero() {
			t.Errorf("LastLoginAt = %v, want zero", got)
		}
	}},
	{"duplicate username differing in case is a conflict", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "bob")
		err := s.CreateUser(context.Background(), newUser("BOB"), nil)
		wantErr(t, `CreateUser("BOB") after "bob"`, err, identity.ErrConflict)
		if n := mustCount(t, s); n != 1 {
			t.Errorf("CountUsers = %d, want 1", n)
		}
	}},
	{"duplicate email differing in case is a conflict", func(t *testing.T, s Store) {
		a, b := newUser("ann"), newUser("anne")
		a.Email, b.Email = "Ann@Example.com", "ann@example.COM"
		mustCreate(t, s, a, nil)
		err := s.CreateUser(context.Background(), b, nil)
		wantErr(t, "CreateUser with a taken email", err, identity.ErrConflict)
	}},
	{"users without an email do not conflict", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "u1", "u2", "u3")
		if n := mustCount(t, s); n != 3 {
			t.Errorf("CountUsers = %d, want 3", n)
		}
	}},
	{"a failed create leaves nothing behind", func(t *testing.T, s Store) {
		c := newUser("carol")
		c.Email = "carol@example.com"
		mustCreate(t, s, c, nil)
		d := newUser("dave")
		d.Email = "CAROL@example.com"
		err := s.CreateUser(context.Background(), d, &identity.Credentials{PasswordHash: "$argon2id$dave", SIP: sipCreds("dave")})
		wantErr(t, "CreateUser with a taken email", err, identity.ErrConflict)
		_, err = s.UserByName(context.Background(), "dave")
		wantErr(t, "UserByName of the failed user", err, identity.ErrNotFound)
		_, err = s.Credentials(context.Background(), d.ID)
		wantErr(t, "Credentials of the failed user", err, identity.ErrNotFound)
	}},
	{"concurrent creates of one username let exactly one win", func(t *testing.T, s Store) {
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.CreateUser(context.Background(), newUser("racer"), nil)
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, identity.ErrConflict):
				t.Errorf("CreateUser: %v, want nil or a conflict", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d creates succeeded, want 1", wins)
		}
	}},
}

var createUsersTests = []subtest{
	{"inserts every user with its credentials", func(t *testing.T, s Store) {
		var users []*identity.User
		var creds []*identity.Credentials
		for i := range 5 {
			name := fmt.Sprintf("batch%d", i)
			users = append(users, newUser(name))
			creds = append(creds, &identity.Credentials{PasswordHash: "$argon2id$" + name, SIP: sipCreds(name)})
		}
		if err := s.CreateUsers(context.Background(), users, creds); err != nil {
			t.Fatalf("CreateUsers: %v", err)
		}
		for i, u := range users {
			checkUser(t, "UserByID", mustGet(t, s, u.ID), u)
			want := &identity.Credentials{PasswordHash: creds[i].PasswordHash, SIP: sortedSIP(creds[i].SIP)}
			checkCreds(t, "Credentials of "+u.Username, mustCredentials(t, s, u.ID), want)
		}
	}},
	{"a conflict in the middle leaves nothing", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "taken")
		batch := []*identity.User{newUser("m1"), newUser("m2"), newUser("TAKEN"), newUser("m3")}
		err := s.CreateUsers(context.Background(), batch, nil)
		wantErr(t, "CreateUsers with a taken name", err, identity.ErrConflict)
		if n := mustCount(t, s); n != 1 {
			t.Errorf("CountUsers = %d, want 1 (nothing of the batch)", n)
		}
		for _, u := range batch[:2] {
			_, err := s.UserByID(context.Background(), u.ID)
			wantErr(t, "UserByID of "+u.Username, err, identity.ErrNotFound)
		}
	}},
	{"a duplicate inside the batch leaves nothing", func(t *testing.T, s Store) {
		batch := []*identity.User{newUser("x"), newUser("y"), newUser("X")}
		err := s.CreateUsers(context.Background(), batch, nil)
		wantErr(t, "CreateUsers with a duplicate", err, identity.ErrConflict)
		if n := mustCount(t, s); n != 0 {
			t.Errorf("CountUsers = %d, want 0", n)
		}
	}},
	{"an empty batch changes nothing", func(t *testing.T, s Store) {
		if err := s.CreateUsers(context.Background(), nil, nil); err != nil {
			t.Fatalf("CreateUsers(nil): %v", err)
		}
		if n := mustCount(t, s); n != 0 {
			t.Errorf("CountUsers = %d, want 0", n)
		}
	}},
}

// listAll pages through ListUsers with f (f.After ignored) and returns the
// usernames in order, failing t on overlapping or oversized pages.
func listAll(t testing.TB, s Store, f identity.UserFilter) []string {
	t.Helper()
	f.After = ""
	var names []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListUsers never returned an empty Next")
		}
		page, err := s.ListUsers(context.Background(), f)
		if err != nil {
			t.Fatalf("ListUsers(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page.Users) > f.Limit {
			t.Fatalf("page of %d users, limit %d", len(page.Users), f.Limit)
		}
		for _, u := range page.Users {
			if seen[u.ID] {
				t.Fatalf("user %q listed twice", u.Username)
			}
			seen[u.ID] = true
			names = append(names, u.Username)
		}
		if page.Next == "" {
			return names
		}
		f.After = page.Next
	}
}

// sortedByKey returns names in case-insensitive order.
func sortedByKey(names []string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return out
}

func checkNames(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

var listUsersTests = []subtest{
	{"an empty store lists no users and no Next", func(t *testing.T, s Store) {
		page, err := s.ListUsers(context.Background(), identity.UserFilter{})
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		if len(page.Users) != 0 || page.Next != "" {
			t.Errorf("ListUsers = %d users, Next %q; want none", len(page.Users), page.Next)
		}
	}},
	{"pages of 7 over 25 users neither overlap nor skip and the last has no Next", func(t *testing.T, s Store) {
		var users []*identity.User
		var names []string
		for i := range 25 {
			// Out of order and in mixed case, to test the sort.
			name := fmt.Sprintf("user%02d", (i*7)%25)
			if i%3 == 0 {
				name = strings.ToUpper(name)
			}
			users = append(users, newUser(name))
			names = append(names, name)
		}
		if err := s.CreateUsers(context.Background(), users, nil); err != nil {
			t.Fatalf("CreateUsers: %v", err)
		}
		var sizes []int
		var got []string
		f := identity.UserFilter{Limit: 7}
		for {
			page, err := s.ListUsers(context.Background(), f)
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			sizes = append(sizes, len(page.Users))
			for _, u := range page.Users {
				got = append(got, u.Username)
			}
			if page.Next == "" {
				break
			}
			if len(sizes) > 10 {
				t.Fatal("ListUsers never returned an empty Next")
			}
			f.After = page.Next
		}
		if !slices.Equal(sizes, []int{7, 7, 7, 4}) {
			t.Errorf("page sizes %v, want [7 7 7 4]", sizes)
		}
		checkNames(t, "all pages", got, sortedByKey(names))
	}},
	{"a page that ends exactly at the last user has no Next", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "a", "b", "c", "d")
		page, err := s.ListUsers(context.Background(), identity.UserFilter{Limit: 4})
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		if len(page.Users) != 4 || page.Next != "" {
			t.Errorf("ListUsers = %d users, Next %q; want 4 and no Next", len(page.Users), page.Next)
		}
	}},
	{"users come in case-insensitive username order", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "bravo", "Alpha", "charlie", "ALPHA2", "Bravo1")
		checkNames(t, "ListUsers", listAll(t, s, identity.UserFilter{}), []string{"Alpha", "ALPHA2", "bravo", "Bravo1", "charlie"})
	}},
	{"Limit defaults to 100 and is capped at 1000", func(t *testing.T, s Store) {
		var users []*identity.User
		for i := range 1001 {
			users = append(users, newUser(fmt.Sprintf("u%04d", i)))
		}
		if err := s.CreateUsers(context.Background(), users, nil); err != nil {
			t.Fatalf("CreateUsers: %v", err)
		}
		for _, tc := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {5000, 1000}, {1000, 1000}} {
			page, err := s.ListUsers(context.Background(), identity.UserFilter{Limit: tc.limit})
			if err != nil {
				t.Fatalf("ListUsers(Limit %d): %v", tc.limit, err)
			}
			if len(page.Users) != tc.want || page.Next == "" {
				t.Errorf("ListUsers(Limit %d) = %d users, Next %q; want %d and a Next", tc.limit, len(page.Users), page.Next, tc.want)
			}
		}
	}},
	{"Active filter selects only active or only inactive users", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "on1", "off1", "on2", "off2")
		for _, u := range users {
			if strings.HasPrefix(u.Username, "off") {
				if _, err := s.UpdateUser(context.Background(), u.ID, func(u *identity.User) error { u.Active = false; return nil }); err != nil {
					t.Fatalf("UpdateUser: %v", err)
				}
			}
		}
		yes, no := true, false
		checkNames(t, "Active true", listAll(t, s, identity.UserFilter{Active: &yes, Limit: 1}), []string{"on1", "on2"})
		checkNames(t, "Active false", listAll(t, s, identity.UserFilter{Active: &no, Limit: 1}), []string{"off1", "off2"})
	}},
	{"Role filter matches the exact role", func(t *testing.T, s Store) {
		for _, name := range []string{"boss", "worker", "both"} {
			u := newUser(name)
			switch name {
			case "boss":
				u.Roles = []identity.Role{identity.RoleAdmin}
			case "both":
				u.Roles = []identity.Role{identity.RoleAdmin, identity.RoleUser}
			}
			mustCreate(t, s, u, nil)
		}
		checkNames(t, "Role admin", listAll(t, s, identity.UserFilter{Role: identity.RoleAdmin}), []string{"boss", "both"})
		checkNames(t, "Role user", listAll(t, s, identity.UserFilter{Role: identity.RoleUser}), []string{"both", "worker"})
		for _, r := range []identity.Role{"adm", "%", "ADMIN", "admin%"} {
			checkNames(t, fmt.Sprintf("Role %q", r), listAll(t, s, identity.UserFilter{Role: r}), nil)
		}
	}},
	{"Search matches a case-insensitive substring of username, email or display name", func(t *testing.T, s Store) {
		for _, v := range []struct{ name, email, display string }{
			{"alice", "alice@wonder.example", "Alice Liddell"},
			{"bob", "bob@builder.example", "Bob the Builder"},
			{"carol", "", "Carol Danvers"},
		} {
			u := newUser(v.name)
			u.Email, u.DisplayName = v.email, v.display
			mustCreate(t, s, u, nil)
		}
		for _, tc := range []struct {
			term string
			want []string
		}{
			{"LIDDELL", []string{"alice"}},
			{"WONDER", []string{"alice"}},
			{"Bo", []string{"bob"}},
			{"the build", []string{"bob"}},
			{"@", []string{"alice", "bob"}},
			{"r", []string{"alice", "bob", "carol"}},
			{"zzz", nil},
		} {
			checkNames(t, fmt.Sprintf("Search %q", tc.term), listAll(t, s, identity.UserFilter{Search: tc.term}), tc.want)
		}
	}},
	{"Search folds case beyond ASCII", func(t *testing.T, s Store) {
		u := newUser("elodie")
		u.DisplayName = "ÉLODIE Ökonom"
		mustCreate(t, s, u, nil)
		mustCreateNamed(t, s, "other")
		checkNames(t, "Search", listAll(t, s, identity.UserFilter{Search: "élodie ök"}), []string{"elodie"})
	}},
	{"Search treats LIKE wildcards in the term literally", func(t *testing.T, s Store) {
		for _, v := range []struct{ name, display string }{
			{"a_b", "underscore"},
			{"axb", "no underscore"},
			{"p1", "100% sure"},
			{"p2", "1000 sure"},
			{"s1", `back\slash`},
			{"s2", "backslash"},
		} {
			u := newUser(v.name)
			u.DisplayName = v.display
			mustCreate(t, s, u, nil)
		}
		for _, tc := range []struct {
			term string
			want []string
		}{
			{"a_b", []string{"a_b"}},
			{"_", []string{"a_b"}},
			{"100%", []string{"p1"}},
			{"%", []string{"p1"}},
			{`k\s`, []string{"s1"}},
			{`\`, []string{"s1"}},
			{`\%`, nil},
		} {
			checkNames(t, fmt.Sprintf("Search %q", tc.term), listAll(t, s, identity.UserFilter{Search: tc.term}), tc.want)
		}
	}},
	{"filters combine with each other and with pagination", func(t *testing.T, s Store) {
		var want []string
		for i := range 20 {
			u := newUser(fmt.Sprintf("m%02d", i))
			u.Active = i%2 == 0
			if i%3 == 0 {
				u.Roles = []identity.Role{identity.RoleAdmin}
			}
			if i%5 != 4 {
				u.DisplayName = "Team Blue"
			}
			if u.Active && i%3 == 0 && i%5 != 4 {
				want = append(want, u.Username)
			}
			mustCreate(t, s, u, nil)
		}
		yes := true
		f := identity.UserFilter{Active: &yes, Role: identity.RoleAdmin, Search: "blue", Limit: 2}
		checkNames(t, "ListUsers", listAll(t, s, f), want)
	}},
	{"an unreadable cursor is invalid", func(t *testing.T, s Store) {
		mustCreateNamed(t, s, "a")
		_, err := s.ListUsers(context.Background(), identity.UserFilter{After: "!!not a cursor!!"})
		wantErr(t, "ListUsers with a bad cursor", err, identity.ErrInvalid)
	}},
}

var countUsersTests = []subtest{
	{"counts every user", func(t *testing.T, s Store) {
		if n := mustCount(t, s); n != 0 {
			t.Errorf("CountUsers of an empty store = %d", n)
		}
		users := mustCreateNamed(t, s, "c1", "c2", "c3")
		if n := mustCount(t, s); n != 3 {
			t.Errorf("CountUsers = %d, want 3", n)
		}
		if err := s.DeleteUser(context.Background(), users[0].ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if n := mustCount(t, s); n != 2 {
			t.Errorf("CountUsers after a delete = %d, want 2", n)
		}
	}},
}

var updateUserTests = []subtest{
	{"changes fields and roles", func(t *testing.T, s Store) {
		u := newUser("old")
		mustCreate(t, s, u, nil)
		want := u.Clone()
		want.Username = "New"
		want.Email = "new@example.com"
		want.DisplayName = "New Name"
		want.Roles = []identity.Role{identity.RoleAdmin}
		want.Active = false
		want.UpdatedAt = base.Add(time.Hour)
		got, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.Username, x.Email, x.DisplayName = want.Username, want.Email, want.DisplayName
			x.Roles, x.Active, x.UpdatedAt = want.Roles, want.Active, want.UpdatedAt
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		checkUser(t, "UpdateUser result", got, want)
		checkUser(t, "UserByID", mustGet(t, s, u.ID), want)
		byName, err := s.UserByName(context.Background(), "new")
		if err != nil {
			t.Fatalf("UserByName(new name): %v", err)
		}
		checkUser(t, "UserByName", byName, want)
		_, err = s.UserByName(context.Background(), "old")
		wantErr(t, "UserByName(old name)", err, identity.ErrNotFound)
		checkNames(t, "Role admin", listAll(t, s, identity.UserFilter{Role: identity.RoleAdmin}), []string{"New"})
		checkNames(t, "Role user", listAll(t, s, identity.UserFilter{Role: identity.RoleUser}), nil)
	}},
	{"fn receives the stored user", func(t *testing.T, s Store) {
		u := newUser("seen")
		u.Email = "seen@example.com"
		u.Roles = []identity.Role{identity.RoleAdmin, identity.RoleUser}
		mustCreate(t, s, u, nil)
		_, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			checkUser(t, "fn argument", x, u)
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
	}},
	{"an error from fn is returned unchanged and nothing is written", func(t *testing.T, s Store) {
		u := newUser("keep")
		mustCreate(t, s, u, nil)
		errNope := errors.New("nope")
		got, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.Username, x.DisplayName, x.Roles = "changed", "Changed", []identity.Role{identity.RoleAdmin}
			return errNope
		})
		if err != errNope {
			t.Errorf("UpdateUser error = %v, want fn's error itself", err)
		}
		if got != nil {
			t.Errorf("UpdateUser returned a user with an error: %+v", got)
		}
		checkUser(t, "UserByID", mustGet(t, s, u.ID), u)
	}},
	{"a username taken by another user is a conflict and nothing is written", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "first", "second")
		_, err := s.UpdateUser(context.Background(), users[1].ID, func(x *identity.User) error {
			x.Username, x.DisplayName = "FIRST", "Changed"
			return nil
		})
		wantErr(t, "UpdateUser to a taken username", err, identity.ErrConflict)
		checkUser(t, "UserByID", mustGet(t, s, users[1].ID), users[1])
	}},
	{"an email taken by another user is a conflict", func(t *testing.T, s Store) {
		a, b := newUser("ea"), newUser("eb")
		a.Email = "a@example.com"
		mustCreate(t, s, a, nil)
		mustCreate(t, s, b, nil)
		_, err := s.UpdateUser(context.Background(), b.ID, func(x *identity.User) error {
			x.Email = "A@EXAMPLE.COM"
			return nil
		})
		wantErr(t, "UpdateUser to a taken email", err, identity.ErrConflict)
		checkUser(t, "UserByID", mustGet(t, s, b.ID), b)
	}},
	{"a user may change the case of its own username and email", func(t *testing.T, s Store) {
		u := newUser("casey")
		u.Email = "casey@example.com"
		mustCreate(t, s, u, nil)
		got, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.Username, x.Email = "Casey", "Casey@Example.com"
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		if got.Username != "Casey" || got.Email != "Casey@Example.com" {
			t.Errorf("UpdateUser = %q %q, want the new spelling", got.Username, got.Email)
		}
	}},
	{"the old username and email are free after a rename", func(t *testing.T, s Store) {
		u := newUser("before")
		u.Email = "before@example.com"
		mustCreate(t, s, u, nil)
		if _, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.Username, x.Email = "after", ""
			return nil
		}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		v := newUser("before")
		v.Email = "before@example.com"
		mustCreate(t, s, v, nil)
	}},
	{"ID and CreatedAt cannot be changed", func(t *testing.T, s Store) {
		u := newUser("fixed")
		mustCreate(t, s, u, nil)
		otherID := uuid.NewString()
		got, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.ID, x.CreatedAt, x.DisplayName = otherID, base.Add(-time.Hour), "Still Me"
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		want := u.Clone()
		want.DisplayName = "Still Me"
		checkUser(t, "UpdateUser result", got, want)
		checkUser(t, "UserByID", mustGet(t, s, u.ID), want)
		_, err = s.UserByID(context.Background(), otherID)
		wantErr(t, "UserByID(the ID fn set)", err, identity.ErrNotFound)
	}},
	{"credentials are kept", func(t *testing.T, s Store) {
		u := newUser("creds")
		creds := &identity.Credentials{PasswordHash: "$argon2id$x", SIP: sipCreds("x")}
		mustCreate(t, s, u, creds)
		if _, err := s.UpdateUser(context.Background(), u.ID, func(x *identity.User) error {
			x.Username = "creds2"
			return nil
		}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{PasswordHash: creds.PasswordHash, SIP: sortedSIP(creds.SIP)})
	}},
}

var deleteUserTests = []subtest{
	{"a deleted user is not found by id or name", func(t *testing.T, s Store) {
		users := mustCreateNamed(t, s, "gone", "stays")
		if err := s.DeleteUser(context.Background(), users[0].ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.UserByID(context.Background(), users[0].ID)
		wantErr(t, "UserByID", err, identity.ErrNotFound)
		_, err = s.UserByName(context.Background(), "gone")
		wantErr(t, "UserByName", err, identity.ErrNotFound)
		err = s.DeleteUser(context.Background(), users[0].ID)
		wantErr(t, "DeleteUser again", err, identity.ErrNotFound)
		checkUser(t, "the other user", mustGet(t, s, users[1].ID), users[1])
	}},
	{"deletes the user's credentials and roles", func(t *testing.T, s Store) {
		u := newUser("cascade")
		u.Roles = []identity.Role{identity.RoleAdmin}
		mustCreate(t, s, u, &identity.Credentials{PasswordHash: "$argon2id$c", SIP: sipCreds("c")})
		if err := s.DeleteUser(context.Background(), u.ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.Credentials(context.Background(), u.ID)
		wantErr(t, "Credentials of a deleted user", err, identity.ErrNotFound)
		// A new user with the same ID inherits nothing of the old one.
		again := newUser("cascade")
		again.ID = u.ID
		mustCreate(t, s, again, nil)
		checkCreds(t, "Credentials of the new user", mustCredentials(t, s, u.ID), &identity.Credentials{})
		checkUser(t, "UserByID of the new user", mustGet(t, s, u.ID), again)
		checkNames(t, "Role admin", listAll(t, s, identity.UserFilter{Role: identity.RoleAdmin}), nil)
	}},
	{"frees the username and email", func(t *testing.T, s Store) {
		u := newUser("reuse")
		u.Email = "reuse@example.com"
		mustCreate(t, s, u, nil)
		if err := s.DeleteUser(context.Background(), u.ID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		v := newUser("REUSE")
		v.Email = "Reuse@example.com"
		mustCreate(t, s, v, nil)
	}},
}

var credentialsTests = []subtest{
	{"round trip in realm and algorithm order", func(t *testing.T, s Store) {
		u := newUser("digest")
		creds := &identity.Credentials{PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", SIP: sipCreds("d")}
		mustCreate(t, s, u, creds)
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{PasswordHash: creds.PasswordHash, SIP: sortedSIP(creds.SIP)})
	}},
	{"a user created without credentials has none", func(t *testing.T, s Store) {
		u := newUser("bare")
		mustCreate(t, s, u, nil)
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{})
	}},
	{"SetCredentials replaces the hash and every SIP credential", func(t *testing.T, s Store) {
		u := newUser("rotate")
		mustCreate(t, s, u, &identity.Credentials{PasswordHash: "$argon2id$old", SIP: sipCreds("old")})
		next := &identity.Credentials{PasswordHash: "$argon2id$new", SIP: []identity.SIPCredential{
			{Realm: "c.example", Algorithm: identity.SHA512256, Sealed: []byte("new-c")},
			{Realm: "a.example", Algorithm: identity.MD5, Sealed: []byte("new-a")},
		}}
		at := base.Add(3 * time.Hour)
		if err := s.SetCredentials(context.Background(), u.ID, next, false, at); err != nil {
			t.Fatalf("SetCredentials: %v", err)
		}
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{PasswordHash: next.PasswordHash, SIP: sortedSIP(next.SIP)})
		want := u.Clone()
		want.UpdatedAt = at
		checkUser(t, "UserByID", mustGet(t, s, u.ID), want)
	}},
	{"SetCredentials without SIP credentials makes a token-only user", func(t *testing.T, s Store) {
		u := newUser("tokens")
		mustCreate(t, s, u, &identity.Credentials{PasswordHash: "$argon2id$p", SIP: sipCreds("p")})
		if err := s.SetCredentials(context.Background(), u.ID, &identity.Credentials{PasswordHash: "$argon2id$q"}, true, base); err != nil {
			t.Fatalf("SetCredentials: %v", err)
		}
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{PasswordHash: "$argon2id$q"})
		if !mustGet(t, s, u.ID).TokenOnly {
			t.Error("TokenOnly = false after SetCredentials(tokenOnly true)")
		}
		if err := s.SetCredentials(context.Background(), u.ID, &identity.Credentials{SIP: sipCreds("r")}, false, base); err != nil {
			t.Fatalf("SetCredentials: %v", err)
		}
		if mustGet(t, s, u.ID).TokenOnly {
			t.Error("TokenOnly = true after SetCredentials(tokenOnly false)")
		}
	}},
	{"SetPasswordHash replaces only the hash", func(t *testing.T, s Store) {
		u := newUser("rehash")
		creds := &identity.Credentials{PasswordHash: "$argon2id$weak", SIP: sipCreds("h")}
		mustCreate(t, s, u, creds)
		if err := s.SetPasswordHash(context.Background(), u.ID, "$argon2id$strong"); err != nil {
			t.Fatalf("SetPasswordHash: %v", err)
		}
		checkCreds(t, "Credentials", mustCredentials(t, s, u.ID), &identity.Credentials{PasswordHash: "$argon2id$strong", SIP: sortedSIP(creds.SIP)})
		checkUser(t, "UserByID", mustGet(t, s, u.ID), u)
	}},
}

var touchLoginTests = []subtest{
	{"records the login time and nothing else", func(t *testing.T, s Store) {
		u := newUser("login")
		mustCreate(t, s, u, nil)
		for _, at := range []time.Time{base.Add(2*time.Hour + 7*time.Millisecond), base.Add(5 * time.Hour)} {
			if err := s.TouchLogin(context.Background(), u.ID, at); err != nil {
				t.Fatalf("TouchLogin: %v", err)
			}
			want := u.Clone()
			want.LastLoginAt = at
			checkUser(t, "UserByID", mustGet(t, s, u.ID), want)
		}
	}},
}

// notFoundCalls are the methods that take a user id (or name), each called
// for a user that does not exist.
var notFoundCalls = []struct {
	method string
	call   func(ctx context.Context, s Store, missing string) error
}{
	{"UserByID", func(ctx context.Context, s Store, missing string) error {
		_, err := s.UserByID(ctx, missing)
		return err
	}},
	{"UserByName", func(ctx context.Context, s Store, _ string) error {
		_, err := s.UserByName(ctx, "absent")
		return err
	}},
	{"UpdateUser", func(ctx context.Context, s Store, missing string) error {
		_, err := s.UpdateUser(ctx, missing, func(*identity.User) error {
			return errors.New("fn called for a missing user")
		})
		return err
	}},
	{"DeleteUser", func(ctx context.Context, s Store, missing string) error {
		return s.DeleteUser(ctx, missing)
	}},
	{"Credentials", func(ctx context.Context, s Store, missing string) error {
		_, err := s.Credentials(ctx, missing)
		return err
	}},
	{"SetCredentials", func(ctx context.Context, s Store, missing string) error {
		return s.SetCredentials(ctx, missing, &identity.Credentials{PasswordHash: "x", SIP: sipCreds("x")}, false, base)
	}},
	{"SetPasswordHash", func(ctx context.Context, s Store, missing string) error {
		return s.SetPasswordHash(ctx, missing, "x")
	}},
	{"TouchLogin", func(ctx context.Context, s Store, missing string) error {
		return s.TouchLogin(ctx, missing, base)
	}},
}

// notFoundTests has one subtest per method in notFoundCalls, each on a
// store holding one other user that must stay untouched.
var notFoundTests = func() []subtest {
	var tests []subtest
	for _, c := range notFoundCalls {
		tests = append(tests, subtest{c.method + " on a missing user is not found", func(t *testing.T, s Store) {
			present := mustCreateNamed(t, s, "present")[0]
			err := c.call(context.Background(), s, uuid.NewString())
			wantErr(t, c.method, err, identity.ErrNotFound)
			checkUser(t, "the other user", mustGet(t, s, present.ID), present)
			if n := mustCount(t, s); n != 1 {
				t.Errorf("CountUsers = %d, want 1", n)
			}
		}})
	}
	return tests
}()
