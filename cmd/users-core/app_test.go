package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rvoip/users-core/identity"
)

// smallArgon2 keeps in-process tests fast; the CLI tests use the defaults.
func smallArgon2(cfg *Config) {
	cfg.UsersCore.Password.Argon2MemoryCost = 1024
	cfg.UsersCore.Password.Argon2TimeCost = 1
	cfg.UsersCore.Password.Argon2Parallelism = 1
}

func openApp(t testing.TB, dataDir string, mutate ...func(*Config)) *App {
	t.Helper()
	cfg := defaultConfig()
	cfg.UsersCore.DataDir = dataDir
	cfg.UsersCore.Domains = []string{"example.com", "voip.example.com"}
	smallArgon2(&cfg)
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	app, err := OpenApp(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

func TestPasswordIsRehashedWhenParametersChange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	app := openApp(t, dir)
	u, err := app.Users.CreateUser(ctx, identity.NewUser{Username: "dave", Password: alicePassword})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := app.Store.Credentials(ctx, u.ID)
	app.Close()

	app = openApp(t, dir, func(c *Config) { c.UsersCore.Password.Argon2TimeCost = 2 })
	if _, ok, err := app.Users.VerifyPassword(ctx, "dave", "wrong password entirely"); ok || err != nil {
		t.Fatalf("wrong password: ok=%v err=%v", ok, err)
	}
	after, _ := app.Store.Credentials(ctx, u.ID)
	if after.PasswordHash != before.PasswordHash {
		t.Fatal("a failed verify rehashed the password")
	}
	if _, ok, err := app.Users.VerifyPassword(ctx, "dave", alicePassword); !ok || err != nil {
		t.Fatalf("verify: ok=%v err=%v", ok, err)
	}
	after, _ = app.Store.Credentials(ctx, u.ID)
	if !strings.Contains(after.PasswordHash, ",t=2,") || strings.Contains(before.PasswordHash, ",t=2,") {
		t.Fatalf("not rehashed with the new parameters: %s -> %s", before.PasswordHash[:30], after.PasswordHash[:30])
	}
	if len(after.SIP) != len(before.SIP) {
		t.Fatal("rehash lost the SIP credentials")
	}
	if _, ok, _ := app.Users.VerifyPassword(ctx, "dave", alicePassword); !ok {
		t.Fatal("the rehashed password does not verify")
	}
}

func TestSIPCredentialsPerRealmAndAlgorithm(t *testing.T) {
	ctx := context.Background()
	app := openApp(t, t.TempDir())
	u, err := app.Users.CreateUser(ctx, identity.NewUser{Username: "erin", Password: alicePassword})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := app.Store.Credentials(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.SIP) != 2*3*2 {
		t.Fatalf("%d SIP credentials, want one per realm (2), algorithm (3) and username form (2)", len(creds.SIP))
	}
	for _, c := range creds.SIP {
		got, err := app.Sealer.OpenHA1(u.ID, c)
		if err != nil {
			t.Fatal(err)
		}
		name := "erin"
		if c.Qualified {
			name = "erin@" + c.Realm
		}
		want, _ := identity.HA1(c.Algorithm, name, c.Realm, alicePassword)
		if got != want {
			t.Errorf("%s/%s: HA1 does not match", c.Realm, c.Algorithm)
		}
	}

	t.Run("a token-only user has no HA1", func(t *testing.T) {
		v, err := app.Users.CreateUser(ctx, identity.NewUser{Username: "tok", Password: alicePassword, TokenOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := app.Store.Credentials(ctx, v.ID)
		if len(c.SIP) != 0 || c.PasswordHash == "" {
			t.Fatalf("token-only credentials: %d HA1, hash set %v", len(c.SIP), c.PasswordHash != "")
		}
		on := false
		if err := app.Users.SetPassword(ctx, v.ID, alicePassword+"!", &on); err != nil {
			t.Fatal(err)
		}
		c, _ = app.Store.Credentials(ctx, v.ID)
		v, _ = app.Users.User(ctx, "tok")
		if len(c.SIP) != 12 || v.TokenOnly {
			t.Fatalf("after enabling Digest: %d HA1, token-only %v", len(c.SIP), v.TokenOnly)
		}
	})
}

func TestUnknownAndDisabledUsersLookLikeWrongPasswords(t *testing.T) {
	ctx := context.Background()
	app := openApp(t, t.TempDir())
	u, err := app.Users.CreateUser(ctx, identity.NewUser{Username: "frank", Password: alicePassword, Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, pw string }{{"nobody", alicePassword}, {"frank", alicePassword}, {"frank", "wrong wrong wrong"}} {
		got, ok, err := app.Users.VerifyPassword(ctx, c.user, c.pw)
		if ok || err != nil || got != nil {
			t.Errorf("%s: ok=%v err=%v user=%v", c.user, ok, err, got)
		}
	}
	for _, name := range []string{"nobody", u.Username} {
		before := app.Hasher.Stats().Runs
		app.Users.VerifyPassword(ctx, name, alicePassword)
		if runs := app.Hasher.Stats().Runs - before; runs != 1 {
			t.Errorf("%s: %d Argon2id runs, want exactly 1 like any wrong password", name, runs)
		}
	}
}

func TestLastActiveAdminCannotBeRemoved(t *testing.T) {
	ctx := context.Background()
	app := openApp(t, t.TempDir())
	pw, err := app.Users.EnsureAdmin(ctx)
	if err != nil || len(pw) < 24 {
		t.Fatalf("EnsureAdmin: %q %v", pw, err)
	}
	if again, err := app.Users.EnsureAdmin(ctx); again != "" || err != nil {
		t.Fatalf("second EnsureAdmin: %q %v", again, err)
	}
	admin, err := app.Users.User(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Users.SetActive(ctx, admin.ID, false); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("disabling the last admin: %v", err)
	}
	if err := app.Users.DeleteUser(ctx, admin.ID); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("deleting the last admin: %v", err)
	}
	if _, err := app.Users.CreateUser(ctx, identity.NewUser{Username: "root2", Password: alicePassword, Roles: []identity.Role{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := app.Users.DeleteUser(ctx, admin.ID); err != nil {
		t.Fatalf("deleting one of two admins: %v", err)
	}
}

func TestCreateUserValidationNamesTheField(t *testing.T) {
	ctx := context.Background()
	app := openApp(t, t.TempDir())
	for _, c := range []struct {
		nu    identity.NewUser
		field string
	}{
		{identity.NewUser{Username: "", Password: alicePassword}, "username"},
		{identity.NewUser{Username: "a b", Password: alicePassword}, "username"},
		{identity.NewUser{Username: "gina", Password: alicePassword, Email: "not-an-email"}, "email"},
		{identity.NewUser{Username: "gina", Password: alicePassword, DisplayName: "bad\nname"}, "display_name"},
		{identity.NewUser{Username: "gina", Password: alicePassword, Roles: []identity.Role{"root"}}, "roles"},
		{identity.NewUser{Username: "gina", Password: "short"}, "password"},
	} {
		_, err := app.Users.CreateUser(ctx, c.nu)
		if identity.ErrorCode(err) != identity.CodeInvalid || identity.ErrorField(err) != c.field {
			t.Errorf("%+v: err %v, want INVALID on %s", c.nu, err, c.field)
		}
	}
	if n, _ := app.Store.CountUsers(ctx); n != 0 {
		t.Fatalf("%d users written by failed creates", n)
	}
}
