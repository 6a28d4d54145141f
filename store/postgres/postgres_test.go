package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store"
	"github.com/rvoip/users-core/store/postgres"
	"github.com/rvoip/users-core/store/postgres/pgtest"
	"github.com/rvoip/users-core/store/storetest"
)

// open opens the database at url and closes it when t ends.
func open(t testing.TB, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// withParam returns url with the query parameter kv ("name=value") added.
func withParam(url, kv string) string {
	if strings.Contains(url, "?") {
		return url + "&" + kv
	}
	return url + "?" + kv
}

// conn returns a plain connection to the database at url, closed when t
// ends, for looking behind the store's back.
func conn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) storetest.Store {
		return open(t, pgtest.NewDatabase(t))
	})
}

// base is the time the tests below work at.
var base = time.Date(2024, 5, 1, 12, 30, 45, 123_000_000, time.UTC)

func binding(aor string, n int) sip.Binding {
	contact := fmt.Sprintf("sip:ua%d@192.0.2.1:5060", n)
	return sip.Binding{
		ID: uuid.NewString(), AoR: aor, UserID: "user-1", Contact: contact, ContactKey: contact,
		Q: -1, CallID: fmt.Sprintf("call-%d", n), CSeq: 1,
		ExpiresAt: base.Add(time.Hour), CreatedAt: base.Add(time.Duration(n) * time.Millisecond), UpdatedAt: base,
	}
}

// TestTwoPoolsUpdateOneAoR runs concurrent updates of one AoR from two
// pools, as two nodes would, starting with no binding (no row to lock):
// each adds a contact and increments the CSeq of a counter binding, which
// the first update creates. A lost update shows as a missing contact or a
// short count.
func TestTwoPoolsUpdateOneAoR(t *testing.T) {
	url := pgtest.NewDatabase(t)
	nodes := []*postgres.DB{open(t, url), open(t, url)}
	const aor, n = "sip:alice@example.com", 40
	ctx := context.Background()
	counter := binding(aor, 1000)

	added := make([]sip.Binding, n)
	errs := make([]error, n)
	for i := range n {
		added[i] = binding(aor, i)
	}
	storetest.AtOnce(n, func(i int) {
		_, errs[i] = nodes[i%2].UpdateBindings(ctx, aor, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			found := false
			for j := range cur {
				if cur[j].ID == counter.ID {
					cur[j].CSeq++
					found = true
				}
			}
			if !found {
				c := counter
				c.CSeq = 1
				cur = append(cur, c)
			}
			return append(cur, added[i]), nil
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	got, err := nodes[1].Bindings(ctx, aor, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("%d bindings after %d concurrent additions to 1, want %d", len(got), n, n+1)
	}
	ids := map[string]bool{}
	for _, b := range got {
		ids[b.ID] = true
		if b.ID == counter.ID && b.CSeq != n {
			t.Errorf("counter CSeq = %d after %d increments", b.CSeq, n)
		}
	}
	for i, b := range added {
		if !ids[b.ID] {
			t.Errorf("binding %d was lost", i)
		}
	}
}

// TestTwoPoolsRace runs the races the conformance suite runs on one store
// across two pools on one database: every guarantee that must hold between
// nodes.
func TestTwoPoolsRace(t *testing.T) {
	const n = 20
	ctx := context.Background()
	// race runs n calls of fn, alternating between the nodes, at once.
	race := func(nodes []*postgres.DB, fn func(i int, db *postgres.DB) error) []error {
		errs := make([]error, n)
		storetest.AtOnce(n, func(i int) {
			errs[i] = fn(i, nodes[i%len(nodes)])
		})
		return errs
	}
	twoNodes := func(t *testing.T) []*postgres.DB {
		url := pgtest.NewDatabase(t)
		return []*postgres.DB{open(t, url), open(t, url)}
	}

	t.Run("failures of one key get distinct counts", func(t *testing.T) {
		key := identity.AttemptKey{Kind: identity.AttemptAddr, Value: "198.51.100.7"}
		counts := make([]int, n)
		errs := race(twoNodes(t), func(i int, db *postgres.DB) (err error) {
			counts[i], err = db.RecordFailure(ctx, key, base, base)
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(counts)
		for i, c := range counts {
			if c != i+1 {
				t.Fatalf("counts %v, want 1 to %d each once", counts, n)
			}
		}
	})

	t.Run("one key set save from a version wins", func(t *testing.T) {
		nodes := twoNodes(t)
		key := func(kid string, state jwks.KeyState) jwks.StoredKey {
			return jwks.StoredKey{KID: kid, Algorithm: "RS256", State: state, PublicDER: []byte(kid),
				PrivateSealed: []byte(kid), CreatedAt: base, ActivateAt: base}
		}
		if _, err := nodes[0].SaveKeySet(ctx, 0, []jwks.StoredKey{key("old", jwks.StateActive)}); err != nil {
			t.Fatal(err)
		}
		errs := race(nodes, func(i int, db *postgres.DB) error {
			_, err := db.SaveKeySet(ctx, 1, []jwks.StoredKey{key("old", jwks.StateRetired), key(fmt.Sprint("new-", i), jwks.StateActive)})
			return err
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, jwks.ErrKeySetChanged):
				t.Errorf("SaveKeySet: %v", err)
			}
		}
		set, err := nodes[1].KeySet(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if wins != 1 || set.Version != 2 || len(set.Keys) != 2 {
			t.Errorf("%d saves won, version %d with %d keys; want 1 win, version 2, 2 keys", wins, set.Version, len(set.Keys))
		}
	})

	t.Run("one rotation of a refresh token wins", func(t *testing.T) {
		nodes := twoNodes(t)
		u := &identity.User{ID: uuid.NewString(), Username: "alice", Active: true, CreatedAt: base, UpdatedAt: base}
		if err := nodes[0].CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		token := func(family, parent string) *identity.RefreshToken {
			id := uuid.NewString()
			return &identity.RefreshToken{ID: id, Hash: []byte(id), FamilyID: family, ParentID: parent, UserID: u.ID,
				CreatedAt: base, LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour), AbsoluteExpiresAt: base.Add(time.Hour)}
		}
		old := token(uuid.NewString(), "")
		if err := nodes[0].CreateRefreshToken(ctx, old); err != nil {
			t.Fatal(err)
		}
		errs := race(nodes, func(i int, db *postgres.DB) error {
			next := token(old.FamilyID, old.ID)
			return db.RotateRefreshToken(ctx, old.ID, base, []byte("sealed"), next)
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, identity.ErrConflict):
				t.Errorf("RotateRefreshToken: %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d rotations won, want 1", wins)
		}
	})
}

// TestConcurrentOpenMigratesOnce starts several nodes on one empty
// database at once: every Open succeeds, and each migration is recorded
// once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const nodes = 8
	errs := make([]error, nodes)
	dbs := make([]*postgres.DB, nodes)
	storetest.AtOnce(nodes, func(i int) {
		dbs[i], errs[i] = postgres.Open(context.Background(), url)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		dbs[i].Close()
	}
	var rows, distinct, newest int
	if err := conn(t, url).QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT version), max(version) FROM schema_migrations`).Scan(&rows, &distinct, &newest); err != nil {
		t.Fatal(err)
	}
	if rows != distinct || newest != postgres.SchemaVersion() || rows != newest {
		t.Errorf("schema_migrations: %d rows, %d versions, newest %d; want each of 1..%d once",
			rows, distinct, newest, postgres.SchemaVersion())
	}
}

// TestOpenRefusesNewerSchema opens a database a newer users-core migrated:
// Open fails with a *SchemaTooNewError and changes nothing.
func TestOpenRefusesNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	c := conn(t, url)
	ctx := context.Background()
	future := postgres.SchemaVersion() + 1
	if _, err := c.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`, future); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var s string
		if err := c.QueryRow(ctx, `SELECT string_agg(version || ':' || name || ':' || applied_at, ',' ORDER BY version)
	FROM schema_migrations`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()

	for _, openIt := range []func() error{
		func() error { _, err := postgres.Open(ctx, url); return err },
		func() error { _, err := store.Open(ctx, url); return err },
	} {
		err := openIt()
		var tooNew *postgres.SchemaTooNewError
		if !errors.As(err, &tooNew) {
			t.Fatalf("Open of a newer database: %v, want a *SchemaTooNewError", err)
		}
		if tooNew.Version != future || tooNew.Supported != postgres.SchemaVersion() {
			t.Errorf("SchemaTooNewError = %+v, want version %d, supported %d", tooNew, future, postgres.SchemaVersion())
		}
		if !strings.Contains(err.Error(), "upgrade users-core") {
			t.Errorf("error %q does not say what to do", err)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("schema_migrations changed from %s to %s", before, after)
	}
}

// TestStoreOpenDispatchesPostgresURLs checks that store.Open hands both
// URL schemes, with pool parameters, to this package.
func TestStoreOpenDispatchesPostgresURLs(t *testing.T) {
	url := pgtest.NewDatabase(t)
	for _, u := range []string{url, "postgresql" + strings.TrimPrefix(url, "postgres")} {
		u = withParam(u, "pool_max_conns=2")
		st, err := store.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("store.Open(%s): %v", u, err)
		}
		if err := st.Ping(context.Background()); err != nil {
			t.Error(err)
		}
		if _, ok := st.(*postgres.DB); !ok {
			t.Errorf("store.Open(%s) = %T, want *postgres.DB", u, st)
		}
		st.Close()
	}
}

// TestOpenReportsAnUnreachableServer checks the error of a server that
// does not answer: it names the database, not the password.
func TestOpenReportsAnUnreachableServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://u:s3cret@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if !strings.Contains(err.Error(), `"nodb"`) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q: want the database named and the password left out", err)
	}
}

// TestSweepKeepsABindingRefreshedMeanwhile runs DeleteExpiredBindings while
// an update that extends the expiry of an expired-looking binding holds its
// row lock: the sweep waits, re-checks the refreshed row and keeps it.
func TestSweepKeepsABindingRefreshedMeanwhile(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := open(t, url)
	ctx := context.Background()
	const aor = "sip:alice@example.com"
	b := binding(aor, 1)
	b.ExpiresAt = base.Add(time.Minute)
	if _, err := db.UpdateBindings(ctx, aor, base, func([]sip.Binding) ([]sip.Binding, error) {
		return []sip.Binding{b}, nil
	}); err != nil {
		t.Fatal(err)
	}

	inFn, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		_, err := db.UpdateBindings(ctx, aor, base, func(cur []sip.Binding) ([]sip.Binding, error) {
			close(inFn)
			<-release
			cur[0].ExpiresAt = base.Add(time.Hour)
			return cur, nil
		})
		updated <- err
	}()
	<-inFn
	swept := make(chan int, 1)
	go func() {
		n, err := db.DeleteExpiredBindings(ctx, base.Add(2*time.Minute))
		if err != nil {
			t.Error(err)
		}
		swept <- n
	}()
	// Wait until the sweep waits for the binding's row lock.
	watch := conn(t, url)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
	WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM bindings%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep never waited for the locked binding")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if err := <-updated; err != nil {
		t.Fatal(err)
	}
	if n := <-swept; n != 0 {
		t.Errorf("DeleteExpiredBindings deleted %d bindings, want 0: the binding was refreshed", n)
	}
	got, err := db.Bindings(ctx, aor, base.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("%d bindings after the sweep, want the refreshed one", len(got))
	}
}

// TestTextPostgresCannotStoreIsInvalid: PostgreSQL's TEXT holds valid UTF-8
// without NUL bytes only (SQLite stores any bytes). Such a value is the
// caller's input at fault: the write fails with identity.ErrInvalid and
// changes nothing.
func TestTextPostgresCannotStoreIsInvalid(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	const aor = "sip:alice@example.com"
	for _, ua := range []string{"Phone \xff\xfe/1.0", "Phone\x00/1.0"} {
		b := binding(aor, 1)
		b.UserAgent = ua
		_, err := db.UpdateBindings(ctx, aor, base, func([]sip.Binding) ([]sip.Binding, error) {
			return []sip.Binding{b}, nil
		})
		if !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("UpdateBindings with User-Agent %q: %v, want ErrInvalid", ua, err)
		}
	}
	if n, err := db.CountBindings(ctx, base); err != nil || n != 0 {
		t.Errorf("CountBindings = %d, %v; want 0", n, err)
	}
}

// TestStampBumpsOncePerTransaction checks the triggers of migration 0007 on
// one connection (pool_max_conns=1), where a setting leaking from one
// transaction into the next would show: a write of many rows bumps the
// stamp by one, every later transaction bumps it again, and a transaction
// that fails leaves it as it was.
func TestStampBumpsOncePerTransaction(t *testing.T) {
	db := open(t, withParam(pgtest.NewDatabase(t), "pool_max_conns=1"))
	ctx := context.Background()
	stamp := func() int64 {
		t.Helper()
		v, err := db.ChangeStamp(ctx, identity.StampUsers)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	user := func(name string) *identity.User {
		return &identity.User{ID: uuid.NewString(), Username: name, Roles: []identity.Role{identity.RoleUser},
			Active: true, CreatedAt: base, UpdatedAt: base}
	}
	start := stamp()
	batch := []*identity.User{user("a"), user("b"), user("c")}
	if err := db.CreateUsers(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	if got := stamp(); got != start+1 {
		t.Errorf("stamp after one CreateUsers of 3 users with roles = %d, want %d", got, start+1)
	}
	for i, u := range batch {
		if _, err := db.UpdateUser(ctx, u.ID, func(u *identity.User) error { u.DisplayName = "x"; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := stamp(); got != start+2+int64(i) {
			t.Errorf("stamp after update %d = %d, want %d", i, got, start+2+int64(i))
		}
	}
	before := stamp()
	if err := db.CreateUsers(ctx, []*identity.User{user("d"), user("A")}, nil); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("CreateUsers with a taken name: %v, want a conflict", err)
	}
	if got := stamp(); got != before {
		t.Errorf("stamp after a failed CreateUsers = %d, want %d", got, before)
	}
	if err := db.TouchLogin(ctx, batch[0].ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := stamp(); got != before {
		t.Errorf("stamp after TouchLogin = %d, want %d: a login must not flush caches", got, before)
	}
}
