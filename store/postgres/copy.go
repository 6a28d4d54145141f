package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Whole-table access for store.Copy, which moves a database from one
// backend to another (`users-core store copy`). store decides which tables
// are copied, in which order; this file only reads and writes rows, in a
// form both backends share: every value is nil (NULL), int64, string or
// []byte. A BOOLEAN travels as SQLite stores a flag, int64 0 or 1, and
// INTEGER and SMALLINT values as int64.

// copyName matches the table and column names CopyTx accepts: they are
// spliced into SQL, so anything else is refused.
var copyName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// CopyTx is one side of store.Copy: a REPEATABLE READ, read-only
// transaction whose reads all see one snapshot of the database (the
// source), or the one READ COMMITTED transaction the whole copy goes in
// (the target). It is not safe for concurrent use and is for store.Copy
// only.
type CopyTx struct {
	tx    pgx.Tx
	types map[string]map[string]string // table -> column -> data_type
}

// BeginCopy begins a CopyTx, reading (one snapshot) or writing.
func (db *DB) BeginCopy(ctx context.Context, write bool) (*CopyTx, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if write {
		opts = pgx.TxOptions{}
	}
	tx, err := db.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin copy on %s: %w", db.name, err)
	}
	return &CopyTx{tx: tx, types: map[string]map[string]string{}}, nil
}

// SchemaVersion returns the schema version the database records.
func (c *CopyTx) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := c.tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Tables returns the names of the tables in the current schema (the one
// Open migrated), in name order.
func (c *CopyTx) Tables(ctx context.Context) ([]string, error) {
	rows, err := c.tx.Query(ctx, `SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: list tables: %w", err)
	}
	return names, nil
}

// Columns returns the columns of table in their order in the table.
func (c *CopyTx) Columns(ctx context.Context, table string) ([]string, error) {
	if !copyName.MatchString(table) {
		return nil, fmt.Errorf("postgres: copy: bad table name %q", table)
	}
	rows, err := c.tx.Query(ctx, `SELECT column_name::text, data_type::text FROM information_schema.columns
	WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, fmt.Errorf("postgres: columns of %s: %w", table, err)
	}
	pairs, err := pgx.CollectRows(rows, scanPair)
	if err != nil {
		return nil, fmt.Errorf("postgres: columns of %s: %w", table, err)
	}
	var cols []string
	types := map[string]string{}
	for _, p := range pairs {
		cols = append(cols, p[0])
		types[p[0]] = p[1]
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("postgres: copy: no table %s", table)
	}
	c.types[table] = types
	return cols, nil
}

// scanPair reads a row of two text columns.
func scanPair(r pgx.CollectableRow) ([2]string, error) {
	var p [2]string
	err := r.Scan(&p[0], &p[1])
	return p, err
}

// Lock takes an EXCLUSIVE lock on tables until the transaction ends: other
// sessions may still read them, but none may write them, so a node started
// too early waits for the copy instead of mixing its writes into it.
func (c *CopyTx) Lock(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	for _, t := range tables {
		if !copyName.MatchString(t) {
			return fmt.Errorf("postgres: copy: bad table name %q", t)
		}
	}
	if _, err := c.tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("postgres: lock tables: %w", err)
	}
	return nil
}

// Count returns the number of rows of table that satisfy where, an SQL
// condition ("" for every row).
func (c *CopyTx) Count(ctx context.Context, table, where string) (int64, error) {
	if !copyName.MatchString(table) {
		return 0, fmt.Errorf("postgres: copy: bad table name %q", table)
	}
	q := `SELECT count(*) FROM ` + table
	if where != "" {
		q += ` WHERE ` + where
	}
	var n int64
	if err := c.tx.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count %s: %w", table, err)
	}
	return n, nil
}

// Scan calls fn with every row of table that satisfies where ("" for
// every row), ordered by the columns orderBy, as the values of cols in
// that order. fn may keep row.
func (c *CopyTx) Scan(ctx context.Context, table string, cols []string, where string, orderBy []string, fn func(row []any) error) error {
	if !copyName.MatchString(table) {
		return fmt.Errorf("postgres: copy: bad table name %q", table)
	}
	for _, n := range append(append([]string(nil), cols...), orderBy...) {
		if !copyName.MatchString(n) {
			return fmt.Errorf("postgres: copy: bad column name %q", n)
		}
	}
	q := `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + table
	if where != "" {
		q += ` WHERE ` + where
	}
	if len(orderBy) > 0 {
		q += ` ORDER BY ` + strings.Join(orderBy, ", ")
	}
	rows, err := c.tx.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("postgres: read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		row, err := rows.Values()
		if err != nil {
			return fmt.Errorf("postgres: read %s: %w", table, err)
		}
		for i, v := range row {
			switch x := v.(type) {
			case nil, int64, string, []byte:
			case bool:
				row[i] = int64(0)
				if x {
					row[i] = int64(1)
				}
			case int32:
				row[i] = int64(x)
			case int16:
				row[i] = int64(x)
			default:
				return fmt.Errorf("postgres: read %s: column %s holds a %T, which the copy does not carry", table, cols[i], v)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: read %s: %w", table, err)
	}
	return nil
}

// Clear deletes every row of table. The caller clears tables that
// reference others first.
func (c *CopyTx) Clear(ctx context.Context, table string) error {
	if !copyName.MatchString(table) {
		return fmt.Errorf("postgres: copy: bad table name %q", table)
	}
	if _, err := c.tx.Exec(ctx, `DELETE FROM `+table); err != nil {
		return fmt.Errorf("postgres: clear %s: %w", table, err)
	}
	return nil
}

// Insert inserts rows, each the values of cols in that order, into table,
// with COPY. COPY writes the given values into identity columns too (as
// INSERT ... OVERRIDING SYSTEM VALUE would), so ids are kept; Finish moves
// the sequences past them. An int64 0 or 1 for a BOOLEAN column is false
// or true; a nil []byte is stored as an empty value, not NULL.
func (c *CopyTx) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	types, ok := c.types[table]
	if !ok {
		if _, err := c.Columns(ctx, table); err != nil {
			return err
		}
		types = c.types[table]
	}
	for _, col := range cols {
		if _, ok := types[col]; !ok {
			return fmt.Errorf("postgres: insert into %s: no column %s", table, col)
		}
	}
	for _, row := range rows {
		if len(row) != len(cols) {
			return fmt.Errorf("postgres: insert into %s: %d values for %d columns", table, len(row), len(cols))
		}
		for i, v := range row {
			switch x := v.(type) {
			case []byte:
				if x == nil {
					row[i] = []byte{}
				}
			case int64:
				if types[cols[i]] == "boolean" {
					if x != 0 && x != 1 {
						return fmt.Errorf("postgres: insert into %s: column %s is a flag, got %d", table, cols[i], x)
					}
					row[i] = x == 1
				}
			}
		}
	}
	if _, err := c.tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("postgres: insert into %s: %w", table, err)
	}
	return nil
}

// Finish ends a copy into the database before Commit:
//
//   - the sequence of every identity column (audit_events.id, api_keys.seq)
//     moves past the largest copied value, so new rows get new ids;
//   - signing_keyset gets its row back if the copy left it without one
//     (SQLite creates the row with the first saved key set; SaveKeySet here
//     updates it, so it must exist, with version 0 for "none saved");
//   - every change stamp (migration 0007) is bumped, so that a node that
//     kept copies of users or locks from before the copy reloads them.
func (c *CopyTx) Finish(ctx context.Context) error {
	rows, err := c.tx.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
	WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY 1, 2`)
	if err != nil {
		return fmt.Errorf("postgres: list identity columns: %w", err)
	}
	idents, err := pgx.CollectRows(rows, scanPair)
	if err != nil {
		return fmt.Errorf("postgres: list identity columns: %w", err)
	}
	for _, id := range idents {
		table, col := id[0], id[1]
		if !copyName.MatchString(table) || !copyName.MatchString(col) {
			return fmt.Errorf("postgres: copy: bad identity column %s.%s", table, col)
		}
		// is_called false: the next value drawn is max+1 itself (1 for an
		// empty table).
		if _, err := c.tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2),
	coalesce((SELECT max(`+col+`) FROM `+table+`), 0) + 1, false)`, table, col); err != nil {
			return fmt.Errorf("postgres: move the sequence of %s.%s: %w", table, col, err)
		}
	}
	if _, err := c.tx.Exec(ctx, `INSERT INTO signing_keyset (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
		return fmt.Errorf("postgres: restore the key set version: %w", err)
	}
	if _, err := c.tx.Exec(ctx, `UPDATE change_stamps SET stamp = stamp + 1`); err != nil {
		return fmt.Errorf("postgres: bump change stamps: %w", err)
	}
	return nil
}

// Commit commits the transaction.
func (c *CopyTx) Commit(ctx context.Context) error {
	if err := c.tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit copy: %w", err)
	}
	return nil
}

// Rollback ends the transaction without committing; after Commit it does
// nothing.
func (c *CopyTx) Rollback(ctx context.Context) error {
	if err := c.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("postgres: roll back copy: %w", err)
	}
	return nil
}
