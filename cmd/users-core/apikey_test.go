package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

var createdKey = regexp.MustCompile(`(?m)^key: +(ucak_[0-9A-Za-z]{12}_[0-9A-Za-z]{36})$`)

func TestCLIAPIKeys(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin").want(t, 0, "")
	runCLI(t, data, alicePassword+"\n", "user", "add", "root", "--password-stdin", "--role", "admin").want(t, 0, "")

	r := runCLI(t, data, "", "apikey", "create", "alice", "--name", "ci", "--scope", "profile:read",
		"--scope", "apikeys:read,registrations:read", "--expires", "30d")
	r.want(t, 0, "will not be shown again")
	m := createdKey.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("create printed no key:\n%s", r.stdout)
	}
	key := m[1]
	if strings.Contains(r.stderr, key) {
		t.Error("the key went to stderr")
	}
	for _, want := range []string{"id:      " + key[5:17], "scopes:  apikeys:read profile:read registrations:read", "user:    alice"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create output lacks %q:\n%s", want, r.stdout)
		}
	}

	t.Run("the printed key authenticates with its scopes", func(t *testing.T) {
		app := openTestApp(t, data)
		defer app.Close()
		keys := app.APIKeys()
		k, u, scopes, err := keys.Authenticate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "alice" || k.Name != "ci" {
			t.Errorf("authenticated as %s with key %q", u.Username, k.Name)
		}
		if want := []string{"apikeys:read", "profile:read", "registrations:read"}; !slices.Equal(scopes, want) {
			t.Errorf("scopes = %v, want %v", scopes, want)
		}
		if d := time.Until(k.ExpiresAt); d < 29*24*time.Hour || d > 30*24*time.Hour {
			t.Errorf("expires in %v, want 30 days", d)
		}
		if err := keys.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("list shows the key without its secret", func(t *testing.T) {
		r := runCLI(t, data, "", "apikey", "list", "alice")
		r.want(t, 0, "")
		for _, want := range []string{"ID", "LAST USED", "STATUS", key[5:17], "ci", "apikeys:read,profile:read,registrations:read", "active"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("list lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, key[18:]) {
			t.Errorf("list shows the secret:\n%s", r.stdout)
		}
		// The key expires and was used (flushed above): no "never" on its line.
		if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || strings.Contains(lines[1], "never") {
			t.Errorf("list shows no last use after a flushed one:\n%s", r.stdout)
		}
		r = runCLI(t, data, "", "apikey", "list", "alice", "--json")
		r.want(t, 0, "")
		var list []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
			t.Fatalf("list --json: %v\n%s", err, r.stdout)
		}
		if list[0]["id"] != key[5:17] || list[0]["status"] != "active" || list[0]["last_used_at"] == nil || list[0]["key"] != nil {
			t.Errorf("list --json entry: %v", list[0])
		}
		if strings.Contains(r.stdout, key[18:]) {
			t.Error("list --json shows the secret")
		}
	})

	t.Run("a user cannot grant admin scopes; an admin can", func(t *testing.T) {
		runCLI(t, data, "", "apikey", "create", "alice", "--name", "escalate", "--scope", "users:write").want(t, 1, "beyond the roles")
		r := runCLI(t, data, "", "apikey", "create", "root", "--name", "ops", "--scope", "admin", "--json")
		r.want(t, 0, "will not be shown again")
		var created map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
			t.Fatalf("create --json: %v\n%s", err, r.stdout)
		}
		k, _ := created["key"].(string)
		if _, err := identity.ParseAPIKey(k); err != nil || created["expires_at"] != nil {
			t.Fatalf("create --json: %v", created)
		}
	})

	t.Run("failures exit 1", func(t *testing.T) {
		runCLI(t, data, "", "apikey", "create", "alice", "--name", "ci", "--scope", "profile:read").want(t, 1, "already has an API key named")
		runCLI(t, data, "", "apikey", "create", "alice", "--name", "x", "--scope", "users:delete").want(t, 1, "unknown scope")
		runCLI(t, data, "", "apikey", "create", "nobody", "--name", "x", "--scope", "profile:read").want(t, 1, "not found")
		runCLI(t, data, "", "apikey", "list", "nobody").want(t, 1, "not found")
		runCLI(t, data, "", "apikey", "revoke", "nosuchkey123").want(t, 1, "not found")
	})

	t.Run("bad usage exits 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"apikey"},
			{"apikey", "frobnicate", "alice"},
			{"apikey", "create", "alice", "--scope", "profile:read"},
			{"apikey", "create", "alice", "--name", "x"},
			{"apikey", "create", "--name", "x", "--scope", "profile:read"},
			{"apikey", "create", "alice", "bob", "--name", "x", "--scope", "profile:read"},
			{"apikey", "create", "alice", "--name", "x", "--scope", "profile:read", "--expires", "soon"},
			{"apikey", "create", "alice", "--name", "x", "--scope", "profile:read", "--expires", "-1h"},
			{"apikey", "list"},
			{"apikey", "list", "alice", "--no-such-flag"},
			{"apikey", "revoke"},
		} {
			r := runCLI(t, data, "", args...)
			if r.code != 2 {
				t.Errorf("%v: exit %d, want 2\nstderr: %s", args, r.code, r.stderr)
			}
		}
	})

	t.Run("revoke refuses the key from then on", func(t *testing.T) {
		runCLI(t, data, "", "apikey", "revoke", key[5:17]).want(t, 0, "")
		runCLI(t, data, "", "apikey", "revoke", key[5:17]).want(t, 0, "") // idempotent
		app := openTestApp(t, data)
		defer app.Close()
		_, _, _, err := app.APIKeys().Authenticate(ctx, key)
		if identity.ErrorCode(err) != identity.CodeUnauthorized {
			t.Fatalf("revoked key: %v, want CodeUnauthorized", err)
		}
		r := runCLI(t, data, "", "apikey", "list", "alice")
		if !strings.Contains(r.stdout, "revoked") {
			t.Errorf("list after revoke:\n%s", r.stdout)
		}
	})
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "720h": 720 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := parseLifetime(in); err != nil || got != want {
			t.Errorf("parseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0d", "-3d", "d", "1.5d", "soon", "-1h", "99999999d"} {
		if _, err := parseLifetime(in); err == nil {
			t.Errorf("parseLifetime(%q) succeeded", in)
		}
	}
}
