package sqlite

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migrations are SQL files named NNNN_name.sql: NNNN is the schema version
// the file brings the database to. They are applied in version order, each
// in its own transaction, and recorded in schema_migrations. A file, once
// released, never changes: a new change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded migration file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded migrations in version order. Loading them
// cannot fail at run time other than by a broken build, which the package
// tests catch.
var migrations = mustLoadMigrations()

// SchemaVersion returns the newest schema version this build knows: the
// version Open brings every database to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// SchemaTooNewError is returned by Open for a database whose recorded schema
// version is newer than SchemaVersion: it was written by a newer users-core,
// and this one would misread it. Open leaves such a database untouched.
type SchemaTooNewError struct {
	Path      string // the database path given to Open
	Version   int    // highest version recorded in the database
	Supported int    // SchemaVersion of this build
}

// Error says which versions clash and what to do about it.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("sqlite: %s: database schema version %d is newer than this users-core supports (%d); upgrade users-core",
		e.Path, e.Version, e.Supported)
}

func mustLoadMigrations() []migration {
	ms, err := loadMigrations()
	if err != nil {
		panic("sqlite: embedded migrations: " + err.Error())
	}
	return ms
}

func loadMigrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		base := e.Name()
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 || name == "" {
			return nil, fmt.Errorf("%s: want a name like 0001_name.sql", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("%s and %s have the same version %d", prev, base, v)
		}
		seen[v] = base
		b, err := migrationFiles.ReadFile(path.Join("migrations", base))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate brings the database to SchemaVersion. It is idempotent, and safe
// when several processes open one file at once: each migration runs in a
// BEGIN IMMEDIATE transaction that first checks whether it is still
// pending.
func (db *DB) migrate(ctx context.Context) error {
	// CREATE TABLE IF NOT EXISTS writes nothing when the table exists, so a
	// database that turns out to be too new is not modified.
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return err
	}
	for _, m := range migrations {
		if err := db.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies m unless the database already records it.
func (db *DB) applyMigration(ctx context.Context, m migration) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var newest int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if newest > SchemaVersion() {
		return &SchemaTooNewError{Path: db.path, Version: newest, Supported: SchemaVersion()}
	}
	var applied bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, millis(db.Now())); err != nil {
		return err
	}
	return tx.Commit()
}
