package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rvoip/users-core/store"
	"github.com/rvoip/users-core/store/postgres/pgtest"
)

// copyRows returns the ROWS column of store copy's report by table.
func copyRows(t testing.TB, stdout string) map[string]string {
	t.Helper()
	rows := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z_]+) +([0-9]+)$`).FindAllStringSubmatch(stdout, -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) == 0 {
		t.Fatalf("no row counts in:\n%s", stdout)
	}
	return rows
}

// fillDataDir makes users, an API key and a rotated key set through the
// CLI in the default SQLite database of data.
func fillDataDir(t testing.TB, data string) {
	t.Helper()
	runCLI(t, data, alicePassword+"\n", "user", "add", "alice", "--password-stdin", "--email", "alice@example.com").want(t, 0, "")
	runCLI(t, data, alicePassword+"\n", "user", "add", "root", "--password-stdin", "--role", "admin").want(t, 0, "")
	runCLI(t, data, "", "apikey", "create", "alice", "--name", "ci", "--scope", "profile:read").want(t, 0, "")
	runCLI(t, data, "", "keys", "rotate").want(t, 0, "")
}

func TestCLIStoreCopySQLiteToPostgresAndBack(t *testing.T) {
	pg := pgtest.NewDatabase(t)
	data := t.TempDir()
	fillDataDir(t, data)
	src := "sqlite://" + filepath.Join(data, "users.db")

	r := runCLI(t, data, "", "store", "copy", "--from", src, "--to", pg, "--batch", "2")
	r.want(t, 0, "store copy: sip_credentials: 2 of 12 rows")
	rows := copyRows(t, r.stdout)
	for table, want := range map[string]string{"users": "2", "user_roles": "2", "api_keys": "1", "signing_keys": "2", "signing_keyset": "1"} {
		if rows[table] != want {
			t.Errorf("%s: %s rows, want %s\n%s", table, rows[table], want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "every table has as many rows in the target as in the source") {
		t.Errorf("no verification line:\n%s", r.stdout)
	}

	t.Run("the PostgreSQL copy serves the same users, keys and API keys with the same data key", func(t *testing.T) {
		for _, args := range [][]string{{"user", "list", "--json"}, {"keys", "list", "--json"}, {"apikey", "list", "alice", "--json"}, {"user", "show", "alice", "--json"}} {
			onSQLite := runCLI(t, data, "", args...)
			onSQLite.want(t, 0, "")
			onPG := runCLI(t, data, "", append(args, "--database-url", pg)...)
			onPG.want(t, 0, "")
			if onSQLite.stdout != onPG.stdout {
				t.Errorf("%v differs:\nsqlite: %s\npostgres: %s", args, onSQLite.stdout, onPG.stdout)
			}
		}
		// Another data key cannot read the copied HA1 values, and is told so.
		runCLI(t, t.TempDir(), "", "user", "list", "--database-url", pg).want(t, 1, "not the key this database was created with")
	})

	t.Run("a second copy into the now non-empty target is refused", func(t *testing.T) {
		r := runCLI(t, data, "", "store", "copy", "--from", src, "--to", pg)
		r.want(t, 1, "is not empty (users: 2")
		if !strings.Contains(r.stderr, "--force") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("stderr is not one line naming --force: %q", r.stderr)
		}
	})

	t.Run("--force replaces the target's contents", func(t *testing.T) {
		runCLI(t, data, alicePassword+"\n", "user", "add", "only-on-pg", "--password-stdin", "--database-url", pg).want(t, 0, "")
		r := runCLI(t, data, "", "store", "copy", "--from", src, "--to", pg, "--force")
		r.want(t, 0, "")
		if copyRows(t, r.stdout)["users"] != "2" {
			t.Errorf("forced copy:\n%s", r.stdout)
		}
		runCLI(t, data, "", "user", "show", "only-on-pg", "--database-url", pg).want(t, 1, "not found")
	})

	t.Run("postgres back to a new SQLite file", func(t *testing.T) {
		back := "sqlite://" + filepath.Join(t.TempDir(), "back.db")
		r := runCLI(t, data, "", "store", "copy", "--from", pg, "--to", back)
		r.want(t, 0, "")
		if got := copyRows(t, r.stdout); got["users"] != "2" || got["api_keys"] != "1" {
			t.Errorf("copy back:\n%s", r.stdout)
		}
		a := runCLI(t, data, "", "keys", "list", "--json")
		b := runCLI(t, data, "", "keys", "list", "--json", "--database-url", back)
		if a.stdout != b.stdout {
			t.Errorf("keys differ after the round trip:\n%s\n%s", a.stdout, b.stdout)
		}
	})
}

func TestCLIStoreCopyErrors(t *testing.T) {
	data := t.TempDir()
	fillDataDir(t, data)
	src := "sqlite://" + filepath.Join(data, "users.db")
	to := func() string { return "sqlite://" + filepath.Join(t.TempDir(), "copy.db") }

	runCLI(t, data, "", "store", "copy", "--from", src).want(t, 2, "needs --from URL and --to URL")
	runCLI(t, data, "", "store", "move", "--from", src, "--to", to()).want(t, 2, `unknown subcommand "move"`)
	runCLI(t, data, "", "store", "copy", "--from", src, "--to", src).want(t, 1, "same database")
	runCLI(t, data, "", "store", "copy", "--from", "mysql://u:s3cret@h/db", "--to", to()).want(t, 1, `unsupported database scheme "mysql"`)
	runCLI(t, data, "", "store", "copy", "--from", "sqlite://"+filepath.Join(data, "nope.db"), "--to", to()).want(t, 1, "does not exist")
	r := runCLI(t, data, "", "store", "copy", "--from", src, "--to", "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
	r.want(t, 1, "target: postgres: connect to")
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("the password shows: %s", r.stderr)
	}

	t.Run("a source written by a newer users-core is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "newer.db")
		st, err := store.Open(context.Background(), "sqlite://"+path)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
			t.Fatal(err)
		}
		runCLI(t, data, "", "store", "copy", "--from", "sqlite://"+path, "--to", to()).want(t, 1, "newer than this users-core supports")
	})

	t.Run("sqlite to sqlite", func(t *testing.T) {
		target := to()
		r := runCLI(t, data, "", "store", "copy", "--from", src, "--to", target)
		r.want(t, 0, "")
		if r.stderr != "" {
			t.Errorf("progress for small tables: %q", r.stderr)
		}
		if rows := copyRows(t, r.stdout); rows["users"] != "2" || rows["total"] == "" {
			t.Errorf("report:\n%s", r.stdout)
		}
		a := runCLI(t, data, "", "user", "list", "--json")
		b := runCLI(t, data, "", "user", "list", "--json", "--database-url", target)
		if a.stdout != b.stdout {
			t.Errorf("users differ:\n%s\n%s", a.stdout, b.stdout)
		}
	})
}
