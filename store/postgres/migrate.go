package postgres

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations are SQL files named NNNN_name.sql: NNNN is the schema version
// the file brings the database to. They are applied in version order, each
// in its own transaction, and recorded in schema_migrations. A file, once
// released, never changes: a new change is a new file. The numbers follow
// store/sqlite's: version N means the same tables and columns on both
// backends.
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
	Database  string // "database NAME on HOST:PORT"
	Version   int    // highest version recorded in the database
	Supported int    // SchemaVersion of this build
}

// Error says which versions clash and what to do about it.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("postgres: %s: database schema version %d is newer than this users-core supports (%d); upgrade users-core",
		e.Database, e.Version, e.Supported)
}

func mustLoadMigrations() []migration {
	ms, err := loadMigrations()
	if err != nil {
		panic("postgres: embedded migrations: " + err.Error())
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
func (db *DB) applyMigration(ctx context.Context, c *pgxpool.Conn, m migration) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)

	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	// Without arguments pgx sends the file with the simple query protocol,
	// which runs every statement in it.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, millis(db.Now())); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
