package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/jwks"
)

// TestAVersion1DatabaseIsUpgradedKeepingItsData builds a database as the
// previous release left it (migration 0001 only), opens it, and checks that
// migration 0002 is applied on top without touching the users.
func TestAVersion1DatabaseIsUpgradedKeepingItsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	raw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		migrations[0].SQL,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'init', 0)`,
		`INSERT INTO users (id, username, username_key, created_at, updated_at) VALUES ('id-1', 'Old', 'old', 0, 0)`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("building a version 1 database: %v", err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	rows := migrationRows(t, db.r)
	if len(rows) < 2 || rows[1].version != 2 || rows[1].name != "tokens" {
		t.Errorf("schema_migrations = %v, want versions 1 and 2 (tokens)", rows)
	}
	if _, err := db.UserByName(ctx, "old"); err != nil {
		t.Errorf("user of the version 1 database: %v", err)
	}
	tok := &identity.RefreshToken{ID: "t1", Hash: []byte{1}, FamilyID: "f1", UserID: "id-1"}
	if err := db.CreateRefreshToken(ctx, tok); err != nil {
		t.Errorf("CreateRefreshToken for the old user: %v", err)
	}
}

// TestHotQueriesUseTheirIndexes guards the indexes of migration 0002: the
// per-request queries must look rows up, never scan a table.
func TestHotQueriesUseTheirIndexes(t *testing.T) {
	db, _ := openTemp(t)
	for _, c := range []struct {
		query string
		want  string // in the plan
	}{
		{`SELECT ` + refreshColumns + ` FROM refresh_tokens WHERE hash = ?`,
			"SEARCH refresh_tokens USING INDEX sqlite_autoindex_refresh_tokens_2 (hash=?)"},
		{`SELECT count(*) FROM auth_failures WHERE kind = ? AND value = ? AND at >= ?`,
			"SEARCH auth_failures USING COVERING INDEX auth_failures_key_at (kind=? AND value=? AND at>?)"},
		// With the stamp triggers of migration 0009 SQLite first collects
		// the rows from the index alone, then deletes them.
		{`DELETE FROM auth_failures WHERE kind = ? AND value = ?`,
			"SEARCH auth_failures USING COVERING INDEX auth_failures_key_at (kind=? AND value=?)"},
		{`SELECT max(until) FROM auth_locks WHERE until > ? AND (kind, value) IN (VALUES (?, ?), (?, ?))`,
			"SEARCH auth_locks USING PRIMARY KEY (kind=? AND value=?)"},
		{`UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`,
			"SEARCH refresh_tokens USING INDEX refresh_tokens_family (family_id=?)"},
		{`SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL`,
			"SEARCH refresh_tokens USING INDEX refresh_tokens_user (user_id=?)"},
	} {
		plan := queryPlan(t, db, c.query)
		if !strings.Contains(plan, c.want) {
			t.Errorf("plan of %s:\n%s\nwant it to contain %q", c.query, plan, c.want)
		}
	}
}

// queryPlan returns the EXPLAIN QUERY PLAN details of query, one a line.
func queryPlan(t testing.TB, db *DB, query string) string {
	t.Helper()
	n := strings.Count(query, "?")
	args := make([]any, n)
	for i := range args {
		args[i] = "x"
	}
	rows, err := db.r.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestSaveKeySetRefusesKeySetsThatBreakTheInvariants(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	key := func(kid string, state jwks.KeyState) jwks.StoredKey {
		return jwks.StoredKey{KID: kid, Algorithm: "RS256", State: state, PublicDER: []byte{1}, PrivateSealed: []byte{2}}
	}
	good := []jwks.StoredKey{key("a", jwks.StateActive)}
	if _, err := db.SaveKeySet(ctx, 0, good); err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string][]jwks.StoredKey{
		"two active keys":   {key("a", jwks.StateActive), key("b", jwks.StateActive)},
		"a repeated kid":    {key("a", jwks.StateActive), key("a", jwks.StateNext)},
		"an empty kid":      {key("", jwks.StateNext)},
		"an unknown state":  {key("a", "compromised")},
		"an empty state":    {key("a", "")},
		"one bad among two": {key("b", jwks.StateNext), key("c", "bogus")},
	} {
		if _, err := db.SaveKeySet(ctx, 1, keys); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("SaveKeySet with %s: %v, want ErrInvalid", name, err)
		}
	}
	set, err := db.KeySet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if set.Version != 1 || len(set.Keys) != 1 || set.Keys[0].KID != "a" {
		t.Errorf("KeySet after refused saves = %+v, want version 1 with key a", set)
	}
}

// TestKeySetReadsOneSnapshot saves key sets of growing versions while
// readers check that every key set they read has as many keys as its
// version: a version read from one save and keys from another would not.
func TestKeySetReadsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	const saves = 30
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				set, err := db.KeySet(ctx)
				if err != nil {
					errs <- err
					return
				}
				if int64(len(set.Keys)) != set.Version {
					errs <- fmt.Errorf("key set of version %d has %d keys: it mixes two saves", set.Version, len(set.Keys))
					return
				}
			}
		}()
	}
	var keys []jwks.StoredKey
	for v := range int64(saves) {
		keys = append(keys, jwks.StoredKey{KID: string(rune('a' + v)), Algorithm: "RS256", State: jwks.StateRetired,
			PublicDER: []byte{1}, PrivateSealed: []byte{2}, CreatedAt: time.UnixMilli(v)})
		if _, err := db.SaveKeySet(ctx, v, keys); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
