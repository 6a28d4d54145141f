package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Whole-table access for store.Copy, which moves a database from one
// backend to another (`users-core store copy`). store decides which tables
// are copied, in which order; this file only reads and writes rows, in a
// form both backends share: every value is nil (NULL), int64, string or
// []byte. SQLite stores flags as INTEGER 0 or 1, so that is also the shared
// form of a flag.

// rowidColumns maps a table to the name its rowid is copied under.
// PostgreSQL's api_keys.seq stands in for SQLite's rowid there (migration
// 0005): both break ListAPIKeys' ties between keys created in the same
// millisecond, so the copy carries the one into the other.
var rowidColumns = map[string]string{"api_keys": "seq"}

// copyName matches the table and column names CopyTx accepts: they are
// spliced into SQL, so anything else is refused.
var copyName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// CopyTx is one side of store.Copy: a read transaction whose reads all see
// one snapshot of the database (the source), or the one write transaction
// the whole copy goes in (the target). It is not safe for concurrent use
// and is for store.Copy only.
type CopyTx struct {
	tx *sql.Tx
}

// BeginCopy begins a CopyTx. A reading one is a transaction on a read-only
// connection: in WAL mode it keeps the snapshot of its first read until it
// ends, whatever is written meanwhile. A writing one is BEGIN IMMEDIATE on
// the writer: it holds the database's write lock, so no other process
// writes until Commit or Rollback.
func (db *DB) BeginCopy(ctx context.Context, write bool) (*CopyTx, error) {
	conn := db.r
	if write {
		conn = db.w
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin copy: %w", err)
	}
	return &CopyTx{tx: tx}, nil
}

// SchemaVersion returns the schema version the database records.
func (c *CopyTx) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := c.tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// Tables returns the names of the database's tables, SQLite's own
// (sqlite_sequence) left out, in name order.
func (c *CopyTx) Tables(ctx context.Context) ([]string, error) {
	rows, err := c.tx.QueryContext(ctx, `SELECT name FROM sqlite_schema
	WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: list tables: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tables: %w", err)
	}
	return names, nil
}

// Columns returns the columns of table in their order in the table, then
// the rowid's copy name where rowidColumns has one.
func (c *CopyTx) Columns(ctx context.Context, table string) ([]string, error) {
	if !copyName.MatchString(table) {
		return nil, fmt.Errorf("sqlite: copy: bad table name %q", table)
	}
	rows, err := c.tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
		}
		cols = append(cols, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("sqlite: copy: no table %s", table)
	}
	if r, ok := rowidColumns[table]; ok {
		cols = append(cols, r)
	}
	return cols, nil
}

// Lock makes sure nothing else writes table until the transaction ends:
// BEGIN IMMEDIATE already holds the write lock of the whole file, so there
// is nothing more to do.
func (c *CopyTx) Lock(ctx context.Context, tables []string) error { return nil }

// Count returns the number of rows of table that satisfy where, an SQL
// condition ("" for every row).
func (c *CopyTx) Count(ctx context.Context, table, where string) (int64, error) {
	if !copyName.MatchString(table) {
		return 0, fmt.Errorf("sqlite: copy: bad table name %q", table)
	}
	q := `SELECT count(*) FROM ` + table
	if where != "" {
		q += ` WHERE ` + where
	}
	var n int64
	if err := c.tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count %s: %w", table, err)
	}
	return n, nil
}

// Scan calls fn with every row of table that satisfies where ("" for
// every row), ordered by the columns orderBy, as the values of cols in
// that order. fn may keep row.
func (c *CopyTx) Scan(ctx context.Context, table string, cols []string, where string, orderBy []string, fn func(row []any) error) error {
	sel, err := c.selectList(table, cols)
	if err != nil {
		return err
	}
	for _, o := range orderBy {
		if !copyName.MatchString(o) {
			return fmt.Errorf("sqlite: copy: bad column name %q", o)
		}
	}
	q := `SELECT ` + sel + ` FROM ` + table
	if where != "" {
		q += ` WHERE ` + where
	}
	if len(orderBy) > 0 {
		q += ` ORDER BY ` + strings.Join(orderBy, ", ")
	}
	rows, err := c.tx.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("sqlite: read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("sqlite: read %s: %w", table, err)
		}
		for i, v := range row {
			switch v.(type) {
			case nil, int64, string, []byte:
			default:
				return fmt.Errorf("sqlite: read %s: column %s holds a %T, which the copy does not carry", table, cols[i], v)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: read %s: %w", table, err)
	}
	return nil
}

// selectList returns the select list of cols of table, the rowid under its
// copy name.
func (c *CopyTx) selectList(table string, cols []string) (string, error) {
	if !copyName.MatchString(table) {
		return "", fmt.Errorf("sqlite: copy: bad table name %q", table)
	}
	out := make([]string, len(cols))
	for i, col := range cols {
		if !copyName.MatchString(col) {
			return "", fmt.Errorf("sqlite: copy: bad column name %q", col)
		}
		out[i] = col
		if col == rowidColumns[table] {
			out[i] = "rowid AS " + col
		}
	}
	return strings.Join(out, ", "), nil
}

// Clear deletes every row of table. The caller clears tables that
// reference others first.
func (c *CopyTx) Clear(ctx context.Context, table string) error {
	if !copyName.MatchString(table) {
		return fmt.Errorf("sqlite: copy: bad table name %q", table)
	}
	if _, err := c.tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
		return fmt.Errorf("sqlite: clear %s: %w", table, err)
	}
	return nil
}

// Insert inserts rows, each the values of cols in that order, into table.
// A nil []byte is stored as an empty value, not NULL (NULL is a nil any).
func (c *CopyTx) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if !copyName.MatchString(table) {
		return fmt.Errorf("sqlite: copy: bad table name %q", table)
	}
	names := make([]string, len(cols))
	for i, col := range cols {
		if !copyName.MatchString(col) {
			return fmt.Errorf("sqlite: copy: bad column name %q", col)
		}
		names[i] = col
		if col == rowidColumns[table] {
			names[i] = "rowid"
		}
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
	stmt, err := c.tx.PrepareContext(ctx, q)
	if err != nil {
		return fmt.Errorf("sqlite: insert into %s: %w", table, err)
	}
	defer stmt.Close()
	for _, row := range rows {
		if len(row) != len(cols) {
			return fmt.Errorf("sqlite: insert into %s: %d values for %d columns", table, len(row), len(cols))
		}
		for i, v := range row {
			if b, ok := v.([]byte); ok && b == nil {
				row[i] = []byte{}
			}
		}
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return fmt.Errorf("sqlite: insert into %s: %w", table, err)
		}
	}
	return nil
}

// Finish ends a copy into the database before Commit: it bumps every
// change stamp (migration 0007), so that a process that kept copies of
// users or locks from before the copy reloads them. (The inserts bump the
// stamps of what they touch, but a cleared table with nothing copied into
// it would not.)
func (c *CopyTx) Finish(ctx context.Context) error {
	if _, err := c.tx.ExecContext(ctx, `UPDATE change_stamps SET stamp = stamp + 1`); err != nil {
		return fmt.Errorf("sqlite: bump change stamps: %w", err)
	}
	return nil
}

// Commit commits the transaction.
func (c *CopyTx) Commit(ctx context.Context) error {
	if err := c.tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit copy: %w", err)
	}
	return nil
}

// Rollback ends the transaction without committing; after Commit it does
// nothing.
func (c *CopyTx) Rollback(ctx context.Context) error {
	if err := c.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("sqlite: roll back copy: %w", err)
	}
	return nil
}
