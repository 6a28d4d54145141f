package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// adminEnv is a running server with an admin (root) and a user (alice),
// and their bearer headers.
type adminEnv struct {
	m           *Main
	root, alice *identity.User
	rootAuth    []string
	aliceAuth   []string
}

func newAdminEnv(t testing.TB) *adminEnv {
	t.Helper()
	m := startMain(t, t.TempDir())
	e := &adminEnv{m: m}
	e.root = addUser(t, m, "root", identity.RoleAdmin)
	// Leave root the only admin: remove the one the first start created.
	first, err := m.app.Users.User(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.app.Users.DeleteUser(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	e.alice = addUser(t, m, "alice")
	e.rootAuth = bearer(t, m, "root")
	e.aliceAuth = bearer(t, m, "alice")
	return e
}

func bearer(t testing.TB, m *Main, user string) []string {
	t.Helper()
	status, _, body := login(t, m, user, alicePassword)
	if status != 200 {
		t.Fatalf("login %s: %d %v", user, status, body)
	}
	return []string{"Authorization", "Bearer " + body["access_token"].(string)}
}

// want checks status and, when code is set, the error code.
func want(t testing.TB, what string, status int, body map[string]any, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || (code != "" && errCode(body) != code) {
		t.Fatalf("%s: %d %v, want %d %s", what, status, body, wantStatus, code)
	}
}

func TestUsersAPI(t *testing.T) {
	e := newAdminEnv(t)
	m := e.m

	st, hdr, body := call(t, m, "GET", "/users", nil)
	want(t, "no credentials", st, body, 401, "UNAUTHORIZED")
	if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: %v", hdr)
	}
	st, _, body = call(t, m, "GET", "/users", nil, "Authorization", "Bearer not-a-token")
	want(t, "bad token", st, body, 401, "UNAUTHORIZED")

	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "carol", "password": alicePassword, "email": "carol@example.com", "roles": []string{"user"}}, e.rootAuth...)
	want(t, "create", st, body, 201, "")
	carol := body["id"].(string)
	for _, k := range []string{"password", "password_hash", "ha1"} {
		if _, ok := body[k]; ok {
			t.Fatalf("user JSON carries %s: %v", k, body)
		}
	}
	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "CAROL", "password": alicePassword}, e.rootAuth...)
	want(t, "duplicate username", st, body, 409, "CONFLICT")
	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "dave", "password": alicePassword, "email": "carol@example.com"}, e.rootAuth...)
	want(t, "duplicate email", st, body, 409, "CONFLICT")
	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "bad name", "password": alicePassword}, e.rootAuth...)
	want(t, "invalid username", st, body, 400, "BAD_REQUEST")
	if e := body["error"].(map[string]any); e["field"] != "username" {
		t.Fatalf("400 does not name the field: %v", body)
	}
	st, _, body = call(t, m, "POST", "/users", map[string]any{"id": "chosen", "username": "erin", "password": alicePassword}, e.rootAuth...)
	want(t, "an id in the body", st, body, 400, "BAD_REQUEST")
	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "frank", "password": alicePassword}, e.aliceAuth...)
	want(t, "a user creating users", st, body, 403, "FORBIDDEN")

	// Users with role user: alice and carol, one page each.
	st, _, body = call(t, m, "GET", "/users?role=user&limit=1", nil, e.rootAuth...)
	want(t, "list", st, body, 200, "")
	if users := body["users"].([]any); len(users) != 1 || body["next_cursor"] == "" {
		t.Fatalf("first page: %v", body)
	}
	st, _, body = call(t, m, "GET", "/users?cursor="+body["next_cursor"].(string)+"&limit=1&role=user", nil, e.rootAuth...)
	if st != 200 || len(body["users"].([]any)) != 1 || body["next_cursor"] != "" {
		t.Fatalf("second page: %d %v", st, body)
	}
	st, _, body = call(t, m, "GET", "/users?active=maybe", nil, e.rootAuth...)
	want(t, "bad filter", st, body, 400, "BAD_REQUEST")
	st, _, body = call(t, m, "GET", "/users", nil, e.aliceAuth...)
	want(t, "a user listing users", st, body, 403, "FORBIDDEN")

	st, _, body = call(t, m, "GET", "/users/"+e.alice.ID, nil, e.aliceAuth...)
	want(t, "self read", st, body, 200, "")
	st, _, body = call(t, m, "GET", "/users/"+carol, nil, e.aliceAuth...)
	want(t, "reading another user", st, body, 403, "FORBIDDEN")
	st, _, body = call(t, m, "GET", "/users/00000000-0000-4000-8000-000000000000", nil, e.rootAuth...)
	want(t, "missing user", st, body, 404, "NOT_FOUND")
	st, _, body = call(t, m, "GET", "/users/carol", nil, e.rootAuth...)
	want(t, "a username in place of an id", st, body, 404, "NOT_FOUND")

	st, _, body = call(t, m, "PUT", "/users/"+e.alice.ID, map[string]any{"display_name": "Alice A.", "email": "alice@example.com"}, e.aliceAuth...)
	if st != 200 || body["display_name"] != "Alice A." {
		t.Fatalf("self update: %d %v", st, body)
	}
	st, _, body = call(t, m, "PUT", "/users/"+e.alice.ID, map[string]any{"email": "not an email"}, e.aliceAuth...)
	want(t, "invalid email on update", st, body, 400, "BAD_REQUEST")
	st, _, body = call(t, m, "PUT", "/users/"+carol, map[string]any{"email": "alice@example.com"}, e.rootAuth...)
	want(t, "email taken on update", st, body, 409, "CONFLICT")
	st, _, body = call(t, m, "PUT", "/users/"+carol, map[string]any{"active": false}, e.rootAuth...)
	if st != 200 || body["active"] != false {
		t.Fatalf("admin disable: %d %v", st, body)
	}

	st, _, body = call(t, m, "POST", "/users/"+e.alice.ID+"/password", map[string]any{"old_password": "wrong wrong wrong", "new_password": alicePassword + "2"}, e.aliceAuth...)
	want(t, "wrong old password", st, body, 403, "FORBIDDEN")
	st, _, body = call(t, m, "POST", "/users/"+e.alice.ID+"/password", map[string]any{"old_password": alicePassword, "new_password": "short"}, e.aliceAuth...)
	want(t, "weak new password", st, body, 400, "BAD_REQUEST")
	st, _, _ = call(t, m, "POST", "/users/"+e.alice.ID+"/password", map[string]any{"old_password": alicePassword, "new_password": alicePassword + "2"}, e.aliceAuth...)
	if st != 204 {
		t.Fatalf("self password change: %d", st)
	}
	st, _, _ = call(t, m, "POST", "/users/"+carol+"/password", map[string]any{"new_password": alicePassword + "3"}, e.rootAuth...)
	if st != 204 {
		t.Fatalf("admin password reset: %d", st)
	}

	st, _, body = call(t, m, "POST", "/users/"+carol+"/roles", map[string]any{"roles": []string{"admin"}}, e.rootAuth...)
	if st != 200 || !strings.Contains(fmt.Sprint(body["roles"]), "admin") {
		t.Fatalf("promote: %d %v", st, body)
	}
	st, _, body = call(t, m, "POST", "/users/"+carol+"/roles", map[string]any{"roles": []string{"root"}}, e.rootAuth...)
	want(t, "unknown role", st, body, 400, "BAD_REQUEST")

	st, _, _ = call(t, m, "DELETE", "/users/"+carol, nil, e.rootAuth...)
	if st != 204 {
		t.Fatalf("delete: %d", st)
	}
	st, _, body = call(t, m, "DELETE", "/users/"+carol, nil, e.rootAuth...)
	want(t, "delete again", st, body, 404, "NOT_FOUND")
}

func TestPrivilegeTable(t *testing.T) {
	e := newAdminEnv(t)
	m := e.m
	bob := addUser(t, m, "bob")
	for _, c := range []struct {
		name         string
		method, path string
		body         any
		auth         []string
		status       int
	}{
		{"a user making themself admin", "POST", "/users/" + e.alice.ID + "/roles", map[string]any{"roles": []string{"admin"}}, e.aliceAuth, 403},
		{"a user setting roles through PUT", "PUT", "/users/" + e.alice.ID, map[string]any{"roles": []string{"admin"}}, e.aliceAuth, 400},
		{"a user enabling or disabling themself", "PUT", "/users/" + e.alice.ID, map[string]any{"active": true}, e.aliceAuth, 403},
		{"a user changing another user", "PUT", "/users/" + bob.ID, map[string]any{"display_name": "pwned"}, e.aliceAuth, 403},
		{"a user resetting another's password", "POST", "/users/" + bob.ID + "/password", map[string]any{"new_password": alicePassword + "x"}, e.aliceAuth, 403},
		{"a user deleting another user", "DELETE", "/users/" + bob.ID, nil, e.aliceAuth, 403},
		{"a user creating a key for another user", "POST", "/users/" + bob.ID + "/api-keys", map[string]any{"name": "k", "scopes": []string{"profile:read"}}, e.aliceAuth, 403},
		{"removing the last admin", "DELETE", "/users/" + e.root.ID, nil, e.rootAuth, 409},
		{"disabling the last admin", "PUT", "/users/" + e.root.ID, map[string]any{"active": false}, e.rootAuth, 409},
		{"demoting the last admin", "POST", "/users/" + e.root.ID + "/roles", map[string]any{"roles": []string{"user"}}, e.rootAuth, 409},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, _, body := call(t, m, c.method, c.path, c.body, c.auth...)
			if st != c.status {
				t.Fatalf("%d %v, want %d", st, body, c.status)
			}
		})
	}
	u, _ := m.app.Users.User(context.Background(), e.alice.ID)
	if u.HasRole(identity.RoleAdmin) || !u.Active {
		t.Fatalf("alice changed: %+v", u)
	}
}

func TestAPIKeysOverHTTP(t *testing.T) {
	e := newAdminEnv(t)
	m := e.m
	st, _, body := call(t, m, "POST", "/users/"+e.root.ID+"/api-keys", map[string]any{"name": "provisioning", "scopes": []string{"users:read"}}, e.rootAuth...)
	if st != 201 || !strings.HasPrefix(fmt.Sprint(body["key"]), "ucak_") {
		t.Fatalf("create: %d %v", st, body)
	}
	key, keyID := body["key"].(string), body["id"].(string)
	keyAuth := []string{"X-API-Key", key}

	st, _, _ = call(t, m, "GET", "/users", nil, keyAuth...)
	if st != 200 {
		t.Fatalf("a users:read key listing users: %d", st)
	}
	st, _, body = call(t, m, "POST", "/users", map[string]any{"username": "zed", "password": alicePassword}, keyAuth...)
	want(t, "a key beyond its scopes", st, body, 403, "FORBIDDEN")
	st, _, body = call(t, m, "GET", "/users/"+e.root.ID+"/api-keys", nil, e.rootAuth...)
	if st != 200 || strings.Contains(fmt.Sprint(body), key) {
		t.Fatalf("list shows the secret or fails: %d %v", st, body)
	}
	st, _, body = call(t, m, "POST", "/users/"+e.root.ID+"/api-keys", map[string]any{"name": "provisioning", "scopes": []string{"users:read"}}, e.rootAuth...)
	want(t, "duplicate key name", st, body, 409, "CONFLICT")
	st, _, body = call(t, m, "POST", "/users/"+e.alice.ID+"/api-keys", map[string]any{"name": "mine", "scopes": []string{"users:write"}}, e.aliceAuth...)
	want(t, "a user asking for admin scopes", st, body, 403, "FORBIDDEN")

	// A narrow key of an admin must not mint a wider key.
	st, _, body = call(t, m, "POST", "/users/"+e.root.ID+"/api-keys", map[string]any{"name": "minter", "scopes": []string{"apikeys:write"}}, e.rootAuth...)
	want(t, "create a key-minting key", st, body, 201, "")
	minter := []string{"X-API-Key", body["key"].(string)}
	st, _, body = call(t, m, "POST", "/users/"+e.root.ID+"/api-keys", map[string]any{"name": "escalated", "scopes": []string{"admin"}}, minter...)
	want(t, "a key minting a wider key", st, body, 403, "FORBIDDEN")

	t.Run("a key stops working when its owner is demoted", func(t *testing.T) {
		other := addUser(t, m, "second-admin", identity.RoleAdmin)
		if _, err := m.app.Users.SetRoles(context.Background(), e.root.ID, []identity.Role{identity.RoleUser}); err != nil {
			t.Fatal(err)
		}
		st, _, body := call(t, m, "GET", "/users", nil, keyAuth...)
		want(t, "key of a demoted owner", st, body, 403, "FORBIDDEN")
		if _, err := m.app.Users.SetActive(context.Background(), e.root.ID, false); err != nil {
			t.Fatal(err)
		}
		st, _, body = call(t, m, "GET", "/users", nil, keyAuth...)
		want(t, "key of a disabled owner", st, body, 401, "UNAUTHORIZED")
		_ = other
	})

	st, _, _ = call(t, m, "DELETE", "/api-keys/"+keyID, nil, e.aliceAuth...)
	if st != 403 {
		t.Fatalf("another user revoking the key: %d", st)
	}
	adminAuth := bearer(t, m, "second-admin")
	st, _, _ = call(t, m, "DELETE", "/api-keys/"+keyID, nil, adminAuth...)
	if st != 204 {
		t.Fatalf("admin revoke: %d", st)
	}
	st, _, body = call(t, m, "DELETE", "/api-keys/nope", nil, adminAuth...)
	want(t, "revoking a missing key", st, body, 404, "NOT_FOUND")
}

func TestRegistrationsAPI(t *testing.T) {
	e := newAdminEnv(t)
	m := e.m
	now := time.Now()
	b := sip.Binding{ID: "b-1", AoR: "sip:alice@localhost", UserID: e.alice.ID, Contact: "sip:alice@192.0.2.1:5060",
		ContactKey: "sip:alice@192.0.2.1:5060", Q: -1, CallID: "c1", CSeq: 1, ExpiresAt: now.Add(time.Hour),
		CreatedAt: now, UpdatedAt: now, Source: "192.0.2.1:5060", Transport: "UDP", UserAgent: "Phone/1", Node: "n1"}
	if _, err := m.app.Store.UpdateBindings(context.Background(), b.AoR, now, func([]sip.Binding) ([]sip.Binding, error) { return []sip.Binding{b}, nil }); err != nil {
		t.Fatal(err)
	}
	st, _, body := call(t, m, "GET", "/registrations?aor=sip:alice@localhost", nil, e.aliceAuth...)
	if st != 200 || !strings.Contains(fmt.Sprint(body), "Phone/1") || !strings.Contains(fmt.Sprint(body), "UDP") {
		t.Fatalf("own registrations: %d %v", st, body)
	}
	// The flow: which node holds it, and how the phone reached that node.
	if regs, _ := body["registrations"].([]any); len(regs) != 1 {
		t.Fatalf("own registrations: %v", body)
	} else if r := regs[0].(map[string]any); r["node"] != "n1" || r["transport"] != "UDP" || r["source"] != "192.0.2.1:5060" {
		t.Fatalf("registration flow: node %v, transport %v, source %v; want n1, UDP, 192.0.2.1:5060", r["node"], r["transport"], r["source"])
	}
	st, _, body = call(t, m, "GET", "/registrations?aor=sip:root@localhost", nil, e.aliceAuth...)
	want(t, "another AoR", st, body, 403, "FORBIDDEN")
	st, _, body = call(t, m, "GET", "/registrations", nil, e.rootAuth...)
	want(t, "no aor", st, body, 400, "BAD_REQUEST")
	st, _, body = call(t, m, "DELETE", "/registrations/nope", nil, e.rootAuth...)
	want(t, "missing binding", st, body, 404, "NOT_FOUND")
	st, _, _ = call(t, m, "DELETE", "/registrations/b-1", nil, e.rootAuth...)
	if st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if bs, _ := m.app.Store.Bindings(context.Background(), b.AoR, time.Now()); len(bs) != 0 {
		t.Fatalf("binding still there: %v", bs)
	}
}

func TestAuditAPI(t *testing.T) {
	e := newAdminEnv(t)
	m := e.m
	login(t, m, "alice", "wrong password here")
	if err := m.app.Audit.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _, body := call(t, m, "GET", "/audit?action=login.failed&limit=10", nil, e.rootAuth...)
	if st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	events := body["events"].([]any)
	if len(events) != 1 || events[0].(map[string]any)["subject"] != "alice" || events[0].(map[string]any)["source"] != "127.0.0.1" {
		t.Fatalf("audit: %v", body)
	}
	st, _, body = call(t, m, "GET", "/audit", nil, e.aliceAuth...)
	want(t, "a user reading the audit trail", st, body, 403, "FORBIDDEN")
	st, _, body = call(t, m, "GET", "/audit?since=yesterday", nil, e.rootAuth...)
	want(t, "bad since", st, body, 400, "BAD_REQUEST")
}

func TestEveryProtectedRouteAnswers401WithBearerChallenge(t *testing.T) {
	e := newAdminEnv(t)
	id := e.alice.ID
	for _, r := range [][2]string{
		{"GET", "/users"}, {"POST", "/users"}, {"GET", "/users/" + id}, {"PUT", "/users/" + id},
		{"DELETE", "/users/" + id}, {"POST", "/users/" + id + "/password"}, {"POST", "/users/" + id + "/roles"},
		{"POST", "/users/" + id + "/api-keys"}, {"GET", "/users/" + id + "/api-keys"}, {"DELETE", "/api-keys/x"},
		{"GET", "/registrations?aor=sip:alice@localhost"}, {"DELETE", "/registrations/x"}, {"GET", "/audit"},
		{"POST", "/auth/logout"},
	} {
		for _, auth := range [][]string{nil, {"Authorization", "Bearer garbage"}, {"X-API-Key", "ucak_notakey"}} {
			st, hdr, body := call(t, e.m, r[0], r[1], map[string]any{}, auth...)
			if st != 401 || errCode(body) != "UNAUTHORIZED" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %v: %d %v %q", r[0], r[1], auth, st, body, hdr.Get("WWW-Authenticate"))
			}
		}
	}
}
