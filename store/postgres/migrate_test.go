package postgres

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rvoip/users-core/store/internal/schema"
)

func TestMigrationsLoad(t *testing.T) {
	ms, err := schema.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d: versions must be 1, 2, 3, ... without gaps", i, m.Version)
		}
	}
}

// TestMigrationsFollowSQLite checks that a schema version means the same
// change on both backends: every migration here has the number and name of
// store/sqlite's migration of that version. SQLite may be ahead (a change
// whose PostgreSQL twin is still to be written); that is logged, so the gap
// shows in verbose runs without failing every other package's build.
func TestMigrationsFollowSQLite(t *testing.T) {
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".sql") {
				out = append(out, e.Name())
			}
		}
		slices.Sort(out)
		return out
	}
	pg, lite := names("migrations"), names("../sqlite/migrations")
	if len(pg) > len(lite) || !slices.Equal(pg, lite[:len(pg)]) {
		t.Fatalf("migrations differ:\npostgres: %v\nsqlite:   %v", pg, lite)
	}
	if missing := lite[len(pg):]; len(missing) > 0 {
		t.Logf("store/sqlite has migrations without a PostgreSQL twin yet: %v", missing)
	}
}
