package sqlite

import (
	"context"
	"embed"
	"fmt"

	"github.com/rvoip/users-core/store/internal/schema"
)

// Migrations are SQL files named NNNN_name.sql, read by
// store/internal/schema: NNNN is the schema version the file brings the
// database to. They are applied in version order, each in its own
// transaction, and recorded in schema_migrations. A file, once released,
// never changes: a new change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the embedded migrations in version order. Loading them
// cannot fail at run time other than by a broken build, which the package
// tests catch.
var migrations = schema.MustLoad("sqlite", migrationFiles, "migrations")

// SchemaVersion returns the newest schema version this build knows: the
// version Open brings every database to.
func SchemaVersion() int { return migrations[len(migrations)-1].Version }

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
func (db *DB) applyMigration(ctx context.Context, m schema.Migration) error {
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
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.Version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, millis(db.Now())); err != nil {
		return err
	}
	return tx.Commit()
}
