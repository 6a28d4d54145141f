package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store"
	"github.com/rvoip/users-core/store/postgres/pgtest"
)

// copyDataKey seals the HA1 values and private keys of every database the
// copy tests fill: a copy keeps sealed values as they are, so the target is
// read with the source's key.
var copyDataKey = bytes.Repeat([]byte{0x5a}, identity.DataKeyLen)

// services are the real services over one database, as a node runs them.
type services struct {
	st      store.Store
	users   *identity.Service
	keys    *jwks.Keyring
	reg     *identity.Regulator
	tokens  *identity.Tokens
	apiKeys *identity.APIKeys
	audit   *identity.Auditor
}

func newServices(t testing.TB, st store.Store) *services {
	t.Helper()
	ctx := context.Background()
	sealer, err := identity.NewSealer(copyDataKey)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := identity.NewHasher(identity.Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)
	if err != nil {
		t.Fatal(err)
	}
	s := &services{st: st, audit: identity.NewAuditor(identity.AuditorConfig{Store: st})}
	go s.audit.Run(ctx)
	t.Cleanup(func() { s.audit.Close(ctx) })
	s.users, err = identity.NewService(identity.ServiceConfig{
		Store: st, Hasher: hasher, Policy: identity.DefaultPasswordPolicy(), Sealer: sealer, Realms: []string{"example.com"},
		Refresh: st, Events: s.audit, CacheEntries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.keys, err = jwks.NewKeyring(ctx, jwks.KeyringConfig{Store: st, Sealer: sealer}); err != nil {
		t.Fatal(err)
	}
	s.reg = identity.NewRegulator(st, identity.RegulatorConfig{
		UserMaxFailures: 3, UserWindow: time.Hour, UserLock: time.Hour,
		AddrMaxFailures: 100, AddrWindow: time.Hour, AddrLock: time.Hour, CheckInterval: -1,
	})
	s.tokens, err = identity.NewTokens(identity.TokenConfig{
		Issuer: "https://users.test", Audience: []string{"rvoip-api"}, SuccessorSealer: sealer,
	}, s.users, st, s.keys, s.reg)
	if err != nil {
		t.Fatal(err)
	}
	s.apiKeys = identity.NewAPIKeys(st, st, s.audit, nil)
	return s
}

// filled is what fill made, for checking a copy works like the original.
type filled struct {
	refresh string // alice's current refresh token (after one rotation)
	apiKey  string
	kids    []string
}

const copyPassword = "correct horse battery staple"

// fill writes a bit of everything through the real services: users with
// roles and credentials (one token-only, one disabled, one with non-ASCII
// text), a rotated key set with a next key, logins and a refresh rotation,
// failures up to a lock, API keys, bindings, audit events and nonce counts.
func fill(t testing.TB, st store.Store) filled {
	t.Helper()
	ctx := context.Background()
	s := newServices(t, st)
	var f filled
	for _, nu := range []identity.NewUser{
		{Username: "alice", Password: copyPassword, Email: "alice@example.com", DisplayName: "Alice A"},
		{Username: "bob", Password: copyPassword, Roles: []identity.Role{identity.RoleAdmin, identity.RoleUser}},
		{Username: "carol", Password: copyPassword, TokenOnly: true},
		{Username: "dave", Password: copyPassword, Disabled: true},
		{Username: "zoe", Password: copyPassword, Email: "zoë@exämple.com", DisplayName: "Zoë Ünïcødé 🦊"},
	} {
		if _, err := s.users.CreateUser(ctx, nu); err != nil {
			t.Fatalf("create %s: %v", nu.Username, err)
		}
	}
	if _, err := s.keys.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.keys.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range s.keys.Keys() {
		f.kids = append(f.kids, k.KID)
	}
	pair, err := s.tokens.Login(ctx, "alice", copyPassword, "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	if pair, err = s.tokens.Refresh(ctx, pair.RefreshToken); err != nil {
		t.Fatal(err)
	}
	f.refresh = pair.RefreshToken
	if _, err := s.tokens.Login(ctx, "bob", copyPassword, "192.0.2.11"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.tokens.Login(ctx, "mallory", "guess", "198.51.100.7"); err == nil {
			t.Fatal("a guess logged in")
		}
	}
	alice, err := s.users.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if f.apiKey, _, err = s.apiKeys.Create(ctx, alice.ID, "ci", []string{"profile:read"}, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ops", "backup"} {
		if _, _, err := s.apiKeys.Create(ctx, alice.ID, name, []string{"profile:read"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err = st.UpdateBindings(ctx, "sip:alice@example.com", now, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{
			{ID: "b-1", AoR: "sip:alice@example.com", UserID: alice.ID, Contact: "<sip:alice@192.0.2.10:5060>",
				ContactKey: "sip:alice@192.0.2.10:5060", Q: 1000, CallID: "call-1", CSeq: 7,
				ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now, Transport: "UDP", Source: "192.0.2.10:5060"},
			{ID: "b-2", AoR: "sip:alice@example.com", UserID: alice.ID, Contact: "<sip:alice@[2001:db8::1]:5061;transport=tls>",
				ContactKey: "sip:alice@[2001:db8::1]:5061;transport=tls", Q: -1, Instance: "urn:uuid:00000000-0000-0000-0000-000000000001",
				RegID: 1, CallID: "call-2", CSeq: 4294967295, Path: []string{"<sip:edge.example.com;lr>"},
				ExpiresAt: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now, Transport: "TLS", UserAgent: "Phone/1.0", Node: "node-a"},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, nonce := range []string{"nonce-one", "nonce-two"} {
		if ok, err := st.UseNonceCount(ctx, nonce, uint32(i+1), now.Add(5*time.Minute)); !ok || err != nil {
			t.Fatalf("UseNonceCount: %v %v", ok, err)
		}
	}
	if err := s.audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// dump reads every table of a database behind the store's back: table ->
// rows, each row its columns in name order as "name=value", rows sorted.
// Flags read as 0 or 1 and SQLite's api_keys rowid as seq, the forms the
// two backends share, so that dumps of the two compare equal.
// schema_migrations keeps its version and name only (applied_at is when
// the target was migrated), and change_stamps is left out (a copy bumps
// the target's stamps).
type dump map[string][]string

func dumpSQLite(t testing.TB, path string) dump {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	d := dump{}
	for _, table := range tables {
		q := `SELECT * FROM ` + table
		if table == "api_keys" {
			q = `SELECT *, rowid AS seq FROM api_keys`
		}
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			d.add(table, cols, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return d.done()
}

func dumpPostgres(t testing.TB, url string) dump {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	d := dump{}
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, f := range rows.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			d.add(table, cols, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return d.done()
}

func (d dump) add(table string, cols []string, vals []any) {
	if table == "change_stamps" {
		return
	}
	var parts []string
	for i, c := range cols {
		if table == "schema_migrations" && c == "applied_at" {
			continue
		}
		var s string
		switch v := vals[i].(type) {
		case nil:
			s = "NULL"
		case bool:
			s = "0"
			if v {
				s = "1"
			}
		case int64, int32, int16:
			s = fmt.Sprint(v)
		case string:
			s = fmt.Sprintf("%q", v)
		case []byte:
			s = fmt.Sprintf("x'%x'", v)
		default:
			s = fmt.Sprintf("%T(%v)", v, v)
		}
		parts = append(parts, c+"="+s)
	}
	sort.Strings(parts)
	d[table] = append(d[table], strings.Join(parts, " "))
}

func (d dump) done() dump {
	for _, rows := range d {
		sort.Strings(rows)
	}
	return d
}

// diff describes how got differs from want, "" when they are equal.
func (d dump) diff(got dump) string {
	var out []string
	names := map[string]bool{}
	for n := range d {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	for n := range names {
		if !slices.Equal(d[n], got[n]) {
			out = append(out, fmt.Sprintf("table %s:\n  want %d rows %q\n  got  %d rows %q", n, len(d[n]), d[n], len(got[n]), got[n]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func openURL(t testing.TB, url string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func copyDB(t testing.TB, dst, src store.Store, opts store.CopyOptions) *store.CopyReport {
	t.Helper()
	r, err := store.Copy(context.Background(), dst, src, opts)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	return r
}

// counts returns the report's counts as a map.
func counts(r *store.CopyReport) map[string]int64 {
	m := map[string]int64{}
	for _, tr := range r.Tables {
		m[tr.Table] = tr.Rows
	}
	return m
}

func TestCopyRoundTripSQLitePostgresSQLite(t *testing.T) {
	ctx := context.Background()
	pgURL := pgtest.NewDatabase(t)
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	a := openURL(t, "sqlite://"+pathA)
	f := fill(t, a)
	pg := openURL(t, pgURL)
	b := openURL(t, "sqlite://"+pathB)

	// Small batches, so that tables take several.
	var progress []string
	r1 := copyDB(t, pg, a, store.CopyOptions{BatchSize: 2, Progress: func(table string, done, total int64) {
		progress = append(progress, fmt.Sprintf("%s %d/%d", table, done, total))
	}})
	r2 := copyDB(t, b, pg, store.CopyOptions{})

	dumpA, dumpPG, dumpB := dumpSQLite(t, pathA), dumpPostgres(t, pgURL), dumpSQLite(t, pathB)
	for table, rows := range dumpA {
		if len(rows) == 0 {
			t.Errorf("fill left table %s empty: the round trip proves nothing for it", table)
		}
	}
	if d := dumpA.diff(dumpPG); d != "" {
		t.Errorf("PostgreSQL differs from the SQLite source:\n%s", d)
	}
	if d := dumpA.diff(dumpB); d != "" {
		t.Errorf("the SQLite copy of the copy differs from the source:\n%s", d)
	}
	if !maps.Equal(counts(r1), counts(r2)) {
		t.Errorf("the two copies report different counts: %v, %v", r1.Tables, r2.Tables)
	}
	for _, tr := range r1.Tables {
		if want := int64(len(dumpA[tr.Table])); tr.Table != "signing_keyset" && tr.Rows != want {
			t.Errorf("report: %s %d rows, the source has %d", tr.Table, tr.Rows, want)
		}
	}
	if !slices.Contains(progress, "audit_events 2/"+fmt.Sprint(len(dumpA["audit_events"]))) ||
		!slices.Contains(progress, "users 5/5") {
		t.Errorf("progress reports: %v", progress)
	}

	for name, st := range map[string]store.Store{"postgres": pg, "sqlite": b} {
		t.Run("the copy on "+name+" serves the source's users, keys and tokens", func(t *testing.T) {
			s := newServices(t, st)
			var kids []string
			for _, k := range s.keys.Keys() {
				kids = append(kids, k.KID)
			}
			if !slices.Equal(kids, f.kids) {
				t.Errorf("keys %v, want the source's %v", kids, f.kids)
			}
			if _, ok, err := s.users.VerifyPassword(ctx, "zoe", copyPassword); !ok || err != nil {
				t.Errorf("password of zoe: ok=%v err=%v", ok, err)
			}
			_, ha1, ok, err := s.users.DigestHA1(ctx, "alice", "example.com", identity.SHA256, false)
			if err != nil || !ok || ha1 == "" {
				t.Errorf("HA1 of alice: ok=%v err=%v", ok, err)
			}
			if _, err := s.tokens.Refresh(ctx, f.refresh); err != nil {
				t.Errorf("refresh with the source's token: %v", err)
			}
			if _, u, _, err := s.apiKeys.Authenticate(ctx, f.apiKey); err != nil || u.Username != "alice" {
				t.Errorf("API key: %v", err)
			}
			if err := s.reg.Check(ctx, "mallory", ""); identity.ErrorCode(err) != identity.CodeAccountLocked {
				t.Errorf("mallory's lock: %v", err)
			}
			bs, err := st.Bindings(ctx, "sip:alice@example.com", time.Now())
			if err != nil || len(bs) != 2 || bs[1].CSeq != 4294967295 || !slices.Equal(bs[1].Path, []string{"<sip:edge.example.com;lr>"}) {
				t.Errorf("bindings: %+v %v", bs, err)
			}
			// New rows get new ids: the sequences moved past the copied ones.
			before, err := st.ListAudit(ctx, identity.AuditFilter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.AppendAudit(ctx, []identity.Event{{Time: time.Now(), Action: "test.after_copy"}}); err != nil {
				t.Fatal(err)
			}
			after, err := st.ListAudit(ctx, identity.AuditFilter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if after.Records[0].ID <= before.Records[0].ID {
				t.Errorf("audit id after the copy %d, the last copied %d", after.Records[0].ID, before.Records[0].ID)
			}
			alice, _ := s.users.User(ctx, "alice")
			if _, _, err := s.apiKeys.Create(ctx, alice.ID, "after-copy", []string{"profile:read"}, 0); err != nil {
				t.Errorf("API key after the copy: %v", err)
			}
			if _, err := s.keys.Rotate(ctx, true); err != nil {
				t.Errorf("rotating after the copy: %v", err)
			}
		})
	}
}

// target is an empty database of one backend for the copy tests.
type target struct {
	url  string
	dump func(testing.TB) dump
}

func targets(t *testing.T) map[string]func(t *testing.T) target {
	return map[string]func(t *testing.T) target{
		"sqlite": func(t *testing.T) target {
			path := filepath.Join(t.TempDir(), "target.db")
			return target{"sqlite://" + path, func(t testing.TB) dump { return dumpSQLite(t, path) }}
		},
		"postgres": func(t *testing.T) target {
			url := pgtest.NewDatabase(t)
			return target{url, func(t testing.TB) dump { return dumpPostgres(t, url) }}
		},
	}
}

func TestCopyRefusesANonEmptyTargetUnlessForced(t *testing.T) {
	ctx := context.Background()
	srcPath := filepath.Join(t.TempDir(), "source.db")
	src := openURL(t, "sqlite://"+srcPath)
	fill(t, src)
	want := dumpSQLite(t, srcPath)

	for name, newTarget := range targets(t) {
		t.Run(name, func(t *testing.T) {
			tg := newTarget(t)
			dst := openURL(t, tg.url)
			s := newServices(t, dst) // a key set and its version
			if _, err := s.users.CreateUser(ctx, identity.NewUser{Username: "zed", Password: copyPassword}); err != nil {
				t.Fatal(err)
			}
			if _, err := dst.Secret(ctx, "only_here", func() ([]byte, error) { return []byte("x"), nil }); err != nil {
				t.Fatal(err)
			}
			s.audit.Flush(ctx)
			before := tg.dump(t)

			_, err := store.Copy(ctx, dst, src, store.CopyOptions{})
			var ne *store.NotEmptyError
			if !errors.As(err, &ne) {
				t.Fatalf("copy into a non-empty target: %v, want a NotEmptyError", err)
			}
			held := map[string]int64{}
			for _, tr := range ne.Tables {
				held[tr.Table] = tr.Rows
			}
			if held["users"] != 1 || held["secrets"] != 1 || held["signing_keyset"] != 1 || held["signing_keys"] != 1 {
				t.Errorf("NotEmptyError lists %v", ne.Tables)
			}
			if !strings.Contains(err.Error(), "users 1") {
				t.Errorf("message %q does not say what the target holds", err)
			}
			if d := before.diff(tg.dump(t)); d != "" {
				t.Errorf("a refused copy changed the target:\n%s", d)
			}

			copyDB(t, dst, src, store.CopyOptions{Force: true})
			got := tg.dump(t)
			delete(got, "schema_migrations")
			w := maps.Clone(want)
			delete(w, "schema_migrations")
			if d := w.diff(got); d != "" {
				t.Errorf("after a forced copy the target differs from the source:\n%s", d)
			}
			if _, err := dst.UserByName(ctx, "zed"); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("zed survived a forced copy: %v", err)
			}
			// The source's key set version replaced the target's.
			ks, err := dst.KeySet(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sks, _ := src.KeySet(ctx)
			if ks.Version != sks.Version || len(ks.Keys) != len(sks.Keys) {
				t.Errorf("key set version %d with %d keys, want %d with %d", ks.Version, len(ks.Keys), sks.Version, len(sks.Keys))
			}
		})
	}
}

func TestCopyOfAnEmptyDatabaseIsEmpty(t *testing.T) {
	for name, newTarget := range targets(t) {
		t.Run(name, func(t *testing.T) {
			srcPath := filepath.Join(t.TempDir(), "empty.db")
			src := openURL(t, "sqlite://"+srcPath)
			tg := newTarget(t)
			dst := openURL(t, tg.url)
			r := copyDB(t, dst, src, store.CopyOptions{})
			for _, tr := range r.Tables {
				if tr.Rows != 0 {
					t.Errorf("%s: %d rows", tr.Table, tr.Rows)
				}
			}
			// A fresh PostgreSQL database has its key set version row, an
			// empty one is not refused twice, and keys can be saved.
			copyDB(t, dst, src, store.CopyOptions{})
			if _, err := dst.SaveKeySet(context.Background(), 0, nil); err != nil {
				t.Errorf("saving the first key set after the copy: %v", err)
			}
		})
	}
}

func TestCopyFailureLeavesTheTargetAsItWas(t *testing.T) {
	ctx := context.Background()
	srcPath := filepath.Join(t.TempDir(), "source.db")
	src := openURL(t, "sqlite://"+srcPath)
	fill(t, src)
	// SQLite keeps text PostgreSQL refuses (invalid UTF-8), and audit_events
	// is the last table copied: the failure comes after every other table
	// was written.
	if err := src.AppendAudit(ctx, []identity.Event{{Time: time.Now(), Action: "bad", Detail: "\xff\xfe"}}); err != nil {
		t.Fatal(err)
	}
	pgURL := pgtest.NewDatabase(t)
	dst := openURL(t, pgURL)
	s := newServices(t, dst)
	if _, err := s.users.CreateUser(ctx, identity.NewUser{Username: "zed", Password: copyPassword}); err != nil {
		t.Fatal(err)
	}
	s.audit.Flush(ctx)
	before := dumpPostgres(t, pgURL)

	_, err := store.Copy(ctx, dst, src, store.CopyOptions{Force: true, BatchSize: 3})
	if err == nil || !strings.Contains(err.Error(), "audit_events") {
		t.Fatalf("copy of invalid UTF-8 into PostgreSQL: %v, want an error naming audit_events", err)
	}
	if d := before.diff(dumpPostgres(t, pgURL)); d != "" {
		t.Errorf("a failed forced copy changed the target:\n%s", d)
	}
}

func TestCopyRefusesATableItDoesNotKnow(t *testing.T) {
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "source.db")
	src := openURL(t, "sqlite://"+srcPath)
	db, err := sql.Open("sqlite", "file:"+srcPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE added_later (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	dst := openURL(t, "sqlite://"+filepath.Join(dir, "target.db"))
	_, err = store.Copy(context.Background(), dst, src, store.CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "table added_later is unknown to the copy") {
		t.Fatalf("copy with an unknown table: %v", err)
	}
}

func TestCopyURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "source.db")
	fill(t, openURL(t, "sqlite://"+srcPath))

	t.Run("a missing SQLite source is an error, not an empty copy", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.db")
		_, err := store.CopyURL(ctx, "sqlite://"+missing, "sqlite://"+filepath.Join(dir, "t1.db"), store.CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("missing source: %v", err)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the missing source was created: %v", err)
		}
	})
	t.Run("the same database on both sides is refused", func(t *testing.T) {
		_, err := store.CopyURL(ctx, "sqlite://"+srcPath, "sqlite:"+srcPath+"?mode=rwc", store.CopyOptions{Force: true})
		if err == nil || !strings.Contains(err.Error(), "same database") {
			t.Fatalf("copy onto itself: %v", err)
		}
	})
	t.Run("a new SQLite target a failed copy made is removed", func(t *testing.T) {
		// A target in a missing directory fails to open; a target beside a
		// source with an unknown table is created, then the copy fails.
		bad := filepath.Join(dir, "bad.db")
		db, _ := sql.Open("sqlite", "file:"+bad)
		db.Exec(`CREATE TABLE added_later (x INTEGER)`)
		db.Close()
		newTarget := filepath.Join(dir, "new.db")
		if _, err := store.CopyURL(ctx, "sqlite://"+bad, "sqlite://"+newTarget, store.CopyOptions{}); err == nil {
			t.Fatal("copy of a source with an unknown table succeeded")
		}
		if matches, _ := filepath.Glob(newTarget + "*"); len(matches) > 0 {
			t.Errorf("a failed copy left %v behind", matches)
		}
	})
	t.Run("sqlite to sqlite", func(t *testing.T) {
		to := filepath.Join(dir, "copy.db")
		r, err := store.CopyURL(ctx, "sqlite://"+srcPath, "sqlite://"+to, store.CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.SchemaVersion == 0 || counts(r)["users"] != 5 {
			t.Errorf("report %+v", r)
		}
		if d := dumpSQLite(t, srcPath).diff(dumpSQLite(t, to)); d != "" {
			t.Errorf("the copy differs:\n%s", d)
		}
	})
}
