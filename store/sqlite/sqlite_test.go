package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/internal/schema"
	"github.com/rvoip/users-core/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

// openTemp opens a fresh database in a temporary directory, closed when t
// ends.
func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db, path
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) storetest.Store {
		db, _ := openTemp(t)
		return db
	})
}

func TestEmbeddedMigrationsAreNumberedFromOneWithoutGaps(t *testing.T) {
	ms, err := schema.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d, want %d", i, m.Version, i+1)
		}
	}
	if SchemaVersion() != len(ms) {
		t.Errorf("SchemaVersion() = %d, want %d", SchemaVersion(), len(ms))
	}
}

type migrationRow struct {
	version   int
	name      string
	appliedAt int64
}

func migrationRows(t testing.TB, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) []migrationRow {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.version, &r.name, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpeningTwiceAppliesNothingNew(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first := migrationRows(t, db.r)
	u := &identity.User{ID: "id-1", Username: "kept", Active: true}
	if err := db.CreateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer db.Close()
	second := migrationRows(t, db.r)
	if len(first) != SchemaVersion() {
		t.Errorf("%d migrations recorded, want %d", len(first), SchemaVersion())
	}
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("schema_migrations changed on reopen:\nfirst  %v\nsecond %v", first, second)
	}
	if _, err := db.UserByName(ctx, "kept"); err != nil {
		t.Errorf("user written before the reopen: %v", err)
	}
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenRefusesANewerSchemaAndLeavesItUntouched(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A newer users-core recorded the next version.
	future := SchemaVersion() + 1
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)`, future); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, path)

	_, err = Open(ctx, path)
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) {
		t.Fatalf("Open = %v, want a *SchemaTooNewError", err)
	}
	t.Logf("Open: %v", err)
	if tooNew.Version != future || tooNew.Supported != SchemaVersion() {
		t.Errorf("SchemaTooNewError = %+v, want version %d and supported %d", tooNew, future, SchemaVersion())
	}
	want := fmt.Sprintf("database schema version %d is newer than this users-core supports (%d); upgrade users-core", future, SchemaVersion())
	if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, path) {
		t.Errorf("Open error %q, want it to contain %q and the path", msg, want)
	}
	if after := fileHash(t, path); after != before {
		t.Error("the refused database file changed")
	}
	for _, suffix := range []string{"-wal", "-journal"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Size() > 0 {
			t.Errorf("%s%s left with %d bytes", path, suffix, fi.Size())
		}
	}
}

// checkNoFiles fails t if dir holds anything.
func checkNoFiles(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("Open left %s in %s", e.Name(), dir)
	}
}

func TestOpenInAMissingDirectoryFailsNamingThePath(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "missing", "users.db")
	db, err := Open(context.Background(), path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded in a missing directory")
	}
	t.Logf("Open: %v", err)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name %s", err, path)
	}
	checkNoFiles(t, root) // the directory was not created
}

func TestOpenUnderARegularFileFailsNamingThePath(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "not-a-dir")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "users.db")
	db, err := Open(context.Background(), path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded under a regular file")
	}
	t.Logf("Open: %v", err)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name %s", err, path)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "data" {
		t.Errorf("the regular file changed: %q, %v", b, err)
	}
}

func TestOpenInAnUnwritableDirectoryFailsNamingThePath(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; TestOpenUnderARegularFileFailsNamingThePath covers an unusable parent")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	path := filepath.Join(dir, "users.db")
	db, err := Open(context.Background(), path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded in an unwritable directory")
	}
	t.Logf("Open: %v", err)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name %s", err, path)
	}
	checkNoFiles(t, dir)
}

func TestOpenAcceptsPathsWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d e")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "users.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
}

func TestEveryConnectionHasThePragmas(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	check := func(name string, conn *sql.Conn, queryOnly int) {
		t.Helper()
		for _, p := range []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", "5000"},
			{"synchronous", "2"}, // FULL
			{"query_only", fmt.Sprint(queryOnly)},
		} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", name, p.pragma, err)
			}
			if got != p.want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, p.pragma, got, p.want)
			}
		}
	}
	w, err := db.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("writer", w, 0)
	w.Close()
	// Hold several reader connections at once so that they are distinct.
	var readers []*sql.Conn
	for i := range 3 {
		r, err := db.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
		check(fmt.Sprintf("reader %d", i), r, 1)
	}
	for _, r := range readers {
		r.Close()
	}
}

func TestReadersRefuseWrites(t *testing.T) {
	db, _ := openTemp(t)
	_, err := db.r.ExecContext(context.Background(), `INSERT INTO secrets (name, value, created_at) VALUES ('x', x'00', 0)`)
	if err == nil {
		t.Fatal("a reader connection wrote")
	}
}

func TestUniqueViolationsAreRecognisedByCode(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	insert := `INSERT INTO secrets (name, value, created_at) VALUES ('dup', x'00', 0)`
	if _, err := db.w.ExecContext(ctx, insert); err != nil {
		t.Fatal(err)
	}
	_, err := db.w.ExecContext(ctx, insert)
	if !isUniqueViolation(err) {
		t.Errorf("isUniqueViolation(%v) = false", err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO secrets (name, value, created_at) VALUES ('n', NULL, 0)`)
	if err == nil || isUniqueViolation(err) {
		t.Errorf("a NOT NULL violation (%v) counted as a unique violation", err)
	}
}

func TestTwoSIPCredentialsForOneRealmAndAlgorithmAreInvalid(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	dup := &identity.Credentials{SIP: []identity.SIPCredential{
		{Realm: "r", Algorithm: identity.MD5, Sealed: []byte("1")},
		{Realm: "r", Algorithm: identity.MD5, Sealed: []byte("2")},
	}}
	err := db.CreateUser(ctx, &identity.User{ID: "id", Username: "u"}, dup)
	if !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("CreateUser = %v, want ErrInvalid", err)
	}
	if n, _ := db.CountUsers(ctx); n != 0 {
		t.Errorf("CountUsers = %d after a refused create", n)
	}
}

func TestWritesSurviveReopening(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	creds := &identity.Credentials{PasswordHash: "h", SIP: []identity.SIPCredential{{Realm: "r", Algorithm: identity.SHA256, Sealed: []byte{1, 2, 3}}}}
	if err := db.CreateUser(ctx, &identity.User{ID: "id", Username: "durable"}, creds); err != nil {
		t.Fatal(err)
	}
	secret, err := db.Secret(ctx, "s", func() ([]byte, error) { return []byte("v"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Credentials(ctx, "id")
	if err != nil || got.PasswordHash != "h" || len(got.SIP) != 1 || !bytes.Equal(got.SIP[0].Sealed, []byte{1, 2, 3}) {
		t.Errorf("Credentials after reopen = %+v, %v", got, err)
	}
	again, err := db.Secret(ctx, "s", func() ([]byte, error) { return []byte("other"), nil })
	if err != nil || !bytes.Equal(again, secret) {
		t.Errorf("Secret after reopen = %q, %v; want %q", again, err, secret)
	}
}

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	junk := bytes.Repeat([]byte("this is not an SQLite database\n"), 200)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on a file that is not a database")
	}
	t.Logf("Open: %v", err)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name %s", err, path)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, junk) {
		t.Error("Open changed the file")
	}
}

// TestTwoProcessesWriteOneFile opens one file twice, as the server and the
// CLI do, and updates the same users from both at once: with BEGIN
// IMMEDIATE and the busy timeout no write fails with SQLITE_BUSY.
func TestTwoProcessesWriteOneFile(t *testing.T) {
	ctx := context.Background()
	a, path := openTemp(t)
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const users, rounds = 4, 25
	for i := range users {
		u := &identity.User{ID: fmt.Sprint("id-", i), Username: fmt.Sprint("u", i)}
		if err := a.CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2*users*rounds)
	var wg sync.WaitGroup
	for _, db := range []*DB{a, b} {
		for i := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					_, err := db.UpdateUser(ctx, fmt.Sprint("id-", i), func(u *identity.User) error {
						u.DisplayName += "x"
						return nil
					})
					if err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("UpdateUser: %v", err)
	}
	for i := range users {
		u, err := a.UserByID(ctx, fmt.Sprint("id-", i))
		if err != nil {
			t.Fatal(err)
		}
		if len(u.DisplayName) != 2*rounds {
			t.Errorf("user %d has %d updates, want %d: an update was lost", i, len(u.DisplayName), 2*rounds)
		}
	}
}
