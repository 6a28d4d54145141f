package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// flushAudit waits until the events emitted so far are in the store.
func flushAudit(t testing.TB, app *App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := app.Audit.Flush(ctx); err != nil {
		t.Fatalf("flushing the audit trail: %v", err)
	}
}

// waitAudit flushes the audit trail until it holds a record matching f,
// for at most 5 seconds. Observers of a REGISTER run after the response is
// sent, so the client may see the answer before the event is emitted.
func waitAudit(t testing.TB, app *App, f identity.AuditFilter) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		flushAudit(t, app)
		p, err := app.Store.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		if len(p.Records) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record matching %+v within 5s", f)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// auditTrail returns every stored audit record matching f, newest first.
func auditTrail(t testing.TB, app *App, f identity.AuditFilter) []identity.AuditRecord {
	t.Helper()
	var out []identity.AuditRecord
	for {
		p, err := app.Store.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		out = append(out, p.Records...)
		if p.Next == "" {
			return out
		}
		f.After = p.Next
	}
}

func TestEverySecurityEventReachesTheAuditTrail(t *testing.T) {
	m := sipMain(t, t.TempDir(), func(c *Config) {
		c.UsersCore.Lockout.UserMaxFailures = 3
		c.UsersCore.JWT.RefreshGraceSeconds = 0
	})
	root := addUser(t, m, "root", identity.RoleAdmin)
	_, _, rootLogin := login(t, m, "root", alicePassword)
	asRoot := []string{"Authorization", "Bearer " + rootLogin["access_token"].(string)}
	start := time.Now().Add(-time.Second)

	// An admin creates alice over HTTP.
	status, _, created := call(t, m, "POST", "/users", map[string]any{"username": "alice", "password": alicePassword}, asRoot...)
	if status != 201 {
		t.Fatalf("POST /users: %d %v", status, created)
	}
	alice := created["id"].(string)

	// alice logs in, fails once, refreshes, and her old refresh token is
	// replayed.
	_, _, aliceLogin := login(t, m, "alice", alicePassword)
	if status, _, body := login(t, m, "alice", "not alice's password"); status != 401 {
		t.Fatalf("wrong password: %d %v", status, body)
	}
	rt1 := aliceLogin["refresh_token"].(string)
	if status, _, body := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1}); status != 200 {
		t.Fatalf("refresh: %d %v", status, body)
	}
	time.Sleep(5 * time.Millisecond) // past the (zero) grace window
	if status, _, body := call(t, m, "POST", "/auth/refresh", map[string]string{"refresh_token": rt1}); status != 401 {
		t.Fatalf("reused refresh token: %d %v", status, body)
	}

	// bob guesses until his name is locked.
	addUser(t, m, "bob")
	for i := 0; i < 3; i++ {
		login(t, m, "bob", "not bob's password")
	}

	// The admin changes alice's password, disables and deletes her.
	if status, _, body := call(t, m, "POST", "/users/"+alice+"/password", map[string]string{"new_password": alicePassword + " v2"}, asRoot...); status != 204 {
		t.Fatalf("password change: %d %v", status, body)
	}
	if status, _, body := call(t, m, "PUT", "/users/"+alice, map[string]any{"active": false}, asRoot...); status != 200 {
		t.Fatalf("disable: %d %v", status, body)
	}
	if status, _, body := call(t, m, "DELETE", "/users/"+alice, nil, asRoot...); status != 204 {
		t.Fatalf("delete: %d %v", status, body)
	}

	// carol's phone registers with a wrong password.
	addUser(t, m, "carol")
	if res := newPhone(t, m, "UDP", "carol").registerDigest(identity.SHA256, "not carol's password", 600); res.StatusCode != 401 {
		t.Fatalf("REGISTER with a wrong password: %d", res.StatusCode)
	}

	waitAudit(t, m.app, identity.AuditFilter{Action: identity.ActionRegisterFailed})
	flushAudit(t, m.app)
	const local = "127.0.0.1"
	for _, w := range []struct {
		name                                    string
		action, actor, subject, source, outcome string
		detail                                  string // a part of the detail, when it says something
	}{
		{"user created by an admin", identity.ActionUserCreated, root.ID, alice, local, identity.OutcomeSuccess, "alice"},
		{"login success", identity.ActionLoginSucceeded, alice, alice, local, identity.OutcomeSuccess, ""},
		{"login failure", identity.ActionLoginFailed, "alice", "alice", local, identity.OutcomeFailure, "invalid credentials"},
		{"token refresh", identity.ActionTokenRefreshed, alice, alice, local, identity.OutcomeSuccess, ""},
		{"refresh token reuse", identity.ActionRefreshReused, alice, alice, local, identity.OutcomeFailure, "revoked"},
		{"lockout", identity.ActionLockout, "bob", "bob", local, identity.OutcomeSuccess, ""},
		{"password change", identity.ActionPasswordChanged, root.ID, alice, local, identity.OutcomeSuccess, ""},
		{"user disabled", identity.ActionUserDisabled, root.ID, alice, local, identity.OutcomeSuccess, ""},
		{"user deleted", identity.ActionUserDeleted, root.ID, alice, local, identity.OutcomeSuccess, ""},
		{"failed REGISTER", identity.ActionRegisterFailed, "carol", "sip:carol@" + sipDomain, local, identity.OutcomeFailure, "401 wrong credentials"},
	} {
		t.Run(w.name, func(t *testing.T) {
			recs := auditTrail(t, m.app, identity.AuditFilter{Action: w.action, Subject: w.subject})
			if len(recs) == 0 {
				t.Fatalf("no %s event for %s in the trail", w.action, w.subject)
			}
			r := recs[0]
			if r.Actor != w.actor || r.Source != w.source || r.Outcome != w.outcome || !strings.Contains(r.Detail, w.detail) {
				t.Errorf("%s: actor %q, source %q, outcome %q, detail %q; want %q, %q, %q, detail with %q",
					w.action, r.Actor, r.Source, r.Outcome, r.Detail, w.actor, w.source, w.outcome, w.detail)
			}
			if r.Time.Before(start) || r.Time.After(time.Now()) {
				t.Errorf("%s at %v: not during the test", w.action, r.Time)
			}
		})
	}

	t.Run("plain challenges are not recorded", func(t *testing.T) {
		recs := auditTrail(t, m.app, identity.AuditFilter{Action: identity.ActionRegisterFailed})
		if len(recs) != 1 {
			t.Errorf("%d register.failed records, want 1 (the wrong password, not its challenge): %+v", len(recs), recs)
		}
	})
	t.Run("a failed REGISTER keeps the status, transport and port in the detail", func(t *testing.T) {
		for _, r := range auditTrail(t, m.app, identity.AuditFilter{Action: identity.ActionRegisterFailed}) {
			if !strings.Contains(r.Detail, "digest UDP from 127.0.0.1:") {
				t.Errorf("detail %q", r.Detail)
			}
		}
	})
	if d := m.app.Audit.Dropped(); d != 0 {
		t.Errorf("%d audit events dropped", d)
	}
}

func TestAuditEventsOfACLICommandAreWrittenBeforeItExits(t *testing.T) {
	data := t.TempDir()
	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin").want(t, 0, "")
	app := openTestApp(t, data)
	u, err := app.Users.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	recs := auditTrail(t, app, identity.AuditFilter{Action: identity.ActionUserCreated, Subject: u.ID})
	if len(recs) != 1 {
		t.Fatalf("%d user.created records for alice, want 1", len(recs))
	}
}

func TestAuditRetentionPrunesOldEvents(t *testing.T) {
	for _, c := range []struct {
		name     string
		days     int
		wantKept int
	}{
		{"90 days by default keeps the recent event only", 90, 1},
		{"0 keeps everything", 0, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := openTestApp(t, t.TempDir())
			app.Config.UsersCore.Audit.RetentionDays = c.days
			now := time.Now()
			old := identity.Event{Time: now.AddDate(0, 0, -91), Action: identity.ActionLoginFailed, Subject: "old"}
			fresh := identity.Event{Time: now.AddDate(0, 0, -89), Action: identity.ActionLoginFailed, Subject: "fresh"}
			if err := app.Store.AppendAudit(context.Background(), []identity.Event{old, fresh}); err != nil {
				t.Fatal(err)
			}
			app.maintainAudit(context.Background())
			recs := auditTrail(t, app, identity.AuditFilter{Action: identity.ActionLoginFailed})
			if len(recs) != c.wantKept || recs[0].Subject != "fresh" {
				t.Fatalf("kept %+v, want %d records, the newest fresh", recs, c.wantKept)
			}
		})
	}
}

func TestAuditRetentionIsValidated(t *testing.T) {
	if got := defaultConfig().UsersCore.Audit.RetentionDays; got != 90 {
		t.Errorf("default retention %d days, want 90", got)
	}
	for _, days := range []int{-1, 36501} {
		cfg := defaultConfig()
		cfg.UsersCore.Audit.RetentionDays = days
		if err := cfg.finish(); err == nil || !strings.Contains(err.Error(), "audit.retention_days") {
			t.Errorf("retention %d: error %v, want one naming audit.retention_days", days, err)
		}
	}
	cfg := defaultConfig()
	if err := applyEnv(&cfg, func(k string) string {
		if k == "USERS_CORE_AUDIT_RETENTION_DAYS" {
			return "7"
		}
		return ""
	}); err != nil || cfg.UsersCore.Audit.RetentionDays != 7 {
		t.Errorf("USERS_CORE_AUDIT_RETENTION_DAYS=7: %v, retention %d", err, cfg.UsersCore.Audit.RetentionDays)
	}
}
