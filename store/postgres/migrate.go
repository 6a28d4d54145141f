package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rvoip/users-core/store/internal/schema"
)

// Migrations are SQL files named NNNN_name.sql, read by
// store/internal/schema: NNNN is the schema version the file brings the
// database to. They are applied in version order, each in its own
// transaction, and recorded in schema_migrations. A file, once released,
// never changes: a new change is a new file. The numbers follow
// store/sqlite's: version N means the same tables and columns on both
// backends.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the embedded migrations in version order. Loading them
// cannot fail at run time other than by a broken build, which the package
// tests catch.
var migrations = schema.MustLoad("postgres", migrationFiles, "migrations")

// SchemaVersion returns the newest schema version this build knows: the
// version Open brings every database to.
func SchemaVersion() int { return migrations[len(migrations)-1].Version }

// SchemaTooNewError is returned by Open for a database whose recorded schema
// version is newer than SchemaVersion: it was written by a newer users-core,
// and this one would misread it. Open leaves such a database untouched.
type SchemaTooNewError struct {
	Database  string // "database NAME on HOST:PORT"
	Version   int    // highest version recorded in the database
	Supported int    // SchemaVersion of this build
}

// Error says which versions clash and what to do about it.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("postgres: %s: database schema version %d is newer than this users-core supports (%d); upgrade users-core",
		e.Database, e.Version, e.Supported)
}

// migrate brings the database to SchemaVersion. It is idempotent, and safe
// when several nodes start at once: everything happens on one connection
// holding a session advisory lock (migrationLockKey), so one node applies
// the pending migrations while the others wait for the lock and then find
// none pending.
func (db *DB) migrate(ctx context.Context) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// The lock belongs to the session: unlock it before the connection
		// goes back to the pool, or close the connection, which ends the
		// session and the lock with it.
		if _, uerr := c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
			c.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	// CREATE TABLE IF NOT EXISTS writes nothing when the table exists, so a
	// database that turns out to be too new is not modified.
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT NOT NULL PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_at BIGINT NOT NULL
)`); err != nil {
		return err
	}
	var newest int
	if err := c.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if newest > SchemaVersion() {
		return &SchemaTooNewError{Database: db.name, Version: newest, Supported: SchemaVersion()}
	}
	for _, m := range migrations {
		if err := db.applyMigration(ctx, c, m); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies m on c, in one transaction, unless the database
// already records it.
func (db *DB) applyMigration(ctx context.Context, c *pgxpool.Conn, m schema.Migration) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)

	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	// Without arguments pgx sends the file with the simple query protocol,
	// which runs every statement in it.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, millis(db.Now())); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
