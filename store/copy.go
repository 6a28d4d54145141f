package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rvoip/users-core/store/postgres"
	"github.com/rvoip/users-core/store/sqlite"
)

// Copying a database to another backend (`users-core store copy`): every
// row of every table users-core keeps, table by table, with the columns'
// values as they are. Ids, password hashes and sealed values (HA1, private
// keys, refresh successors) are not re-derived or re-sealed: the target
// needs the data key of the source.
//
// The whole copy is one transaction on the target, read from one snapshot
// of the source: a failure at any point, the final count check included,
// rolls everything back and leaves the target as it was. There is no
// half-copied target and no marker to look for.

// copyTable is a table Copy copies.
type copyTable struct {
	name string
	// order is the primary key, or every column where there is none: the
	// order rows are read in, so that a copy is repeatable.
	order []string
	// where selects the rows that are data, in SQL both dialects read; ""
	// for every row.
	where string
}

// copyTables are the tables Copy copies, each after the tables it
// references (foreign keys), so inserts never miss
// a referenced row; a forced copy clears them in the reverse order.
var copyTables = []copyTable{
	{name: "users", order: []string{"id"}},
	{name: "user_roles", order: []string{"user_id", "role"}},
	{name: "sip_credentials", order: []string{"user_id", "realm", "algorithm", "qualified"}},
	{name: "secrets", order: []string{"name"}},
	// A row with version 0 is what PostgreSQL has before the first key set
	// is saved, where SQLite has no row: both mean "no key set", and
	// neither is copied. (postgres.CopyTx.Finish puts the row back.)
	{name: "signing_keyset", order: []string{"id"}, where: "version <> 0"},
	{name: "signing_keys", order: []string{"kid"}},
	{name: "refresh_tokens", order: []string{"id"}},
	{name: "auth_failures", order: []string{"kind", "value", "at"}},
	{name: "auth_locks", order: []string{"kind", "value"}},
	{name: "api_keys", order: []string{"id"}},
	{name: "bindings", order: []string{"id"}},
	{name: "audit_events", order: []string{"id"}},
	{name: "nonce_counts", order: []string{"nonce"}},
}

// notCopied are the tables Copy leaves alone on purpose, and why. A table
// in neither list stops the copy: a migration that adds a table must say
// here whether it is copied.
var notCopied = map[string]string{
	"schema_migrations": "the target records its own migrations (Open applied them)",
	"change_stamps":     "counters of changes to one database; the copy bumps the target's instead",
}

// DefaultCopyBatch is how many rows Copy inserts at a time when
// CopyOptions.BatchSize is 0.
const DefaultCopyBatch = 5000

// CopyOptions adjust Copy.
type CopyOptions struct {
	// Force copies into a target that already holds rows: they are all
	// deleted first, in the copy's transaction, so the target ends up
	// holding exactly the source's rows (or, when the copy fails, its own
	// again). Without Force such a target is refused with a
	// *NotEmptyError. Rows are never merged.
	Force bool
	// BatchSize is how many rows are inserted at a time (0:
	// DefaultCopyBatch).
	BatchSize int
	// Progress, when set, is called after each batch of a table and once
	// when the table is done (done == total, also for an empty table).
	Progress func(table string, done, total int64)
}

// TableRows is the number of rows of a table.
type TableRows struct {
	Table string
	Rows  int64
}

// CopyReport is what Copy copied.
type CopyReport struct {
	// SchemaVersion is the schema version of both databases.
	SchemaVersion int
	// Tables are the copied tables in copy order, each with its number of
	// rows, found equal in the source and the target before the commit.
	Tables []TableRows
}

// NotEmptyError is Copy's answer to a target that already holds rows,
// without CopyOptions.Force.
type NotEmptyError struct {
	Tables []TableRows // the tables that hold rows, and how many
}

func (e *NotEmptyError) Error() string {
	parts := make([]string, len(e.Tables))
	for i, t := range e.Tables {
		parts[i] = fmt.Sprintf("%s %d", t.Table, t.Rows)
	}
	return "store: copy: the target database is not empty (" + strings.Join(parts, ", ") + ")"
}

// copyTx is one side of a copy; both backends' CopyTx satisfy it.
type copyTx interface {
	SchemaVersion(ctx context.Context) (int, error)
	Tables(ctx context.Context) ([]string, error)
	Columns(ctx context.Context, table string) ([]string, error)
	Lock(ctx context.Context, tables []string) error
	Count(ctx context.Context, table, where string) (int64, error)
	Scan(ctx context.Context, table string, cols []string, where string, orderBy []string, fn func(row []any) error) error
	Clear(ctx context.Context, table string) error
	Insert(ctx context.Context, table string, cols []string, rows [][]any) error
	Finish(ctx context.Context) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

var (
	_ copyTx = (*sqlite.CopyTx)(nil)
	_ copyTx = (*postgres.CopyTx)(nil)
)

// beginCopy begins st's side of a copy.
func beginCopy(ctx context.Context, st Store, write bool) (copyTx, error) {
	switch db := st.(type) {
	case *sqlite.DB:
		return nilIfErr(db.BeginCopy(ctx, write))
	case *postgres.DB:
		return nilIfErr(db.BeginCopy(ctx, write))
	}
	return nil, fmt.Errorf("store: copy: a %T cannot be copied", st)
}

// nilIfErr returns a backend's BeginCopy result as a copyTx: nil, not a
// copyTx holding a nil pointer, when err is set.
func nilIfErr[T copyTx](tx T, err error) (copyTx, error) {
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// Copy copies every table users-core keeps (copyTables) from src to dst,
// which may be the same backend or not, and returns the tables' row
// counts. Both databases must be at the same schema version (Open brings
// them to this build's). The rows are read from one snapshot of src and
// written in one transaction on dst, which holds the write lock of every
// copied table (PostgreSQL) or of the file (SQLite) until it ends; before
// it commits, Copy checks that each table has as many rows in dst as in
// src. Any failure rolls it back: dst is then left as it was.
//
// A dst holding rows is refused with a *NotEmptyError unless opts.Force.
// Copy leaves the running of processes to the caller: processes writing to
// src during the copy write after its snapshot, and their writes are not
// copied.
func Copy(ctx context.Context, dst, src Store, opts CopyOptions) (*CopyReport, error) {
	batch := opts.BatchSize
	if batch <= 0 {
		batch = DefaultCopyBatch
	}
	// Rollbacks run even when ctx is cancelled; after a commit they do
	// nothing.
	bg := context.WithoutCancel(ctx)
	in, err := beginCopy(ctx, src, false)
	if err != nil {
		return nil, fmt.Errorf("store: copy: source: %w", err)
	}
	defer in.Rollback(bg)
	// The source's snapshot is taken by its first read, here, before
	// anything is written to the target (which may be the same database).
	version, err := in.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: source: %w", err)
	}
	out, err := beginCopy(ctx, dst, true)
	if err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}
	defer out.Rollback(bg)
	tv, err := out.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}
	if tv != version {
		return nil, fmt.Errorf("store: copy: the source has schema version %d and the target %d; open both with the same users-core first", version, tv)
	}
	for _, side := range []struct {
		name string
		tx   copyTx
	}{{"source", in}, {"target", out}} {
		if err := checkTables(ctx, side.tx); err != nil {
			return nil, fmt.Errorf("store: copy: %s: %w", side.name, err)
		}
	}
	names := make([]string, len(copyTables))
	for i, t := range copyTables {
		names[i] = t.name
	}
	if err := out.Lock(ctx, names); err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}

	cols := make(map[string][]string, len(copyTables))
	for _, t := range copyTables {
		sc, err := in.Columns(ctx, t.name)
		if err != nil {
			return nil, fmt.Errorf("store: copy: source: %w", err)
		}
		tc, err := out.Columns(ctx, t.name)
		if err != nil {
			return nil, fmt.Errorf("store: copy: target: %w", err)
		}
		if !sameSet(sc, tc) {
			return nil, fmt.Errorf("store: copy: table %s has columns %s in the source and %s in the target",
				t.name, strings.Join(sc, ","), strings.Join(tc, ","))
		}
		for _, o := range t.order {
			if !slices.Contains(sc, o) {
				return nil, fmt.Errorf("store: copy: table %s has no column %s to order by", t.name, o)
			}
		}
		cols[t.name] = sc
	}

	var held []TableRows
	for _, t := range copyTables {
		n, err := out.Count(ctx, t.name, t.where)
		if err != nil {
			return nil, fmt.Errorf("store: copy: target: %w", err)
		}
		if n > 0 {
			held = append(held, TableRows{t.name, n})
		}
	}
	if len(held) > 0 && !opts.Force {
		return nil, &NotEmptyError{Tables: held}
	}
	// Every table is cleared, not only those that hold data: rows that
	// are not data (signing_keyset's version 0) would collide with the
	// copied ones.
	for i := len(copyTables) - 1; i >= 0; i-- {
		if err := out.Clear(ctx, copyTables[i].name); err != nil {
			return nil, fmt.Errorf("store: copy: target: %w", err)
		}
	}

	report := &CopyReport{SchemaVersion: version}
	for _, t := range copyTables {
		n, err := copyRows(ctx, out, in, t, cols[t.name], batch, opts.Progress)
		if err != nil {
			return nil, err
		}
		report.Tables = append(report.Tables, TableRows{t.name, n})
	}
	if err := out.Finish(ctx); err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}
	for i, t := range copyTables {
		n, err := out.Count(ctx, t.name, t.where)
		if err != nil {
			return nil, fmt.Errorf("store: copy: target: %w", err)
		}
		if tr := report.Tables[i]; n != tr.Rows {
			return nil, fmt.Errorf("store: copy: table %s has %d rows in the target after copying %d; nothing was copied", t.name, n, tr.Rows)
		}
	}
	if err := out.Commit(ctx); err != nil {
		return nil, fmt.Errorf("store: copy: target: %w", err)
	}
	return report, nil
}

// copyRows copies the rows of t from in to out in batches and returns how
// many it copied, which must be how many in counts.
func copyRows(ctx context.Context, out, in copyTx, t copyTable, cols []string, batch int, progress func(string, int64, int64)) (int64, error) {
	total, err := in.Count(ctx, t.name, t.where)
	if err != nil {
		return 0, fmt.Errorf("store: copy: source: %w", err)
	}
	var done int64
	buf := make([][]any, 0, min(int64(batch), total))
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := out.Insert(ctx, t.name, cols, buf); err != nil {
			return fmt.Errorf("store: copy: target: %w", err)
		}
		done += int64(len(buf))
		buf = buf[:0]
		if progress != nil && done < total {
			progress(t.name, done, total)
		}
		return nil
	}
	err = in.Scan(ctx, t.name, cols, t.where, t.order, func(row []any) error {
		buf = append(buf, row)
		if len(buf) < batch {
			return nil
		}
		return flush()
	})
	if err != nil {
		return 0, fmt.Errorf("store: copy: %w", err)
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if done != total {
		return 0, fmt.Errorf("store: copy: read %d rows of %s from the source, which counts %d", done, t.name, total)
	}
	if progress != nil {
		progress(t.name, done, total)
	}
	return done, nil
}

// checkTables makes sure every table of tx is copied or deliberately not,
// and that tx has every table of copyTables.
func checkTables(ctx context.Context, tx copyTx) error {
	have, err := tx.Tables(ctx)
	if err != nil {
		return err
	}
	for _, name := range have {
		if _, skip := notCopied[name]; skip {
			continue
		}
		if !slices.ContainsFunc(copyTables, func(t copyTable) bool { return t.name == name }) {
			return fmt.Errorf("table %s is unknown to the copy (store/copy.go lists the tables it copies and those it does not)", name)
		}
	}
	for _, t := range copyTables {
		if !slices.Contains(have, t.name) {
			return fmt.Errorf("no table %s", t.name)
		}
	}
	return nil
}

// sameSet reports whether a and b hold the same names, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// CopyURL opens the databases named by from (which must exist) and to
// (created when it is a new SQLite file, which is removed again when the
// copy fails), copies from into to with Copy, and closes both. Both are
// opened like Open does, so both are first migrated to this build's
// schema; a database with a newer schema is refused and left untouched.
// The two URLs must name different databases.
func CopyURL(ctx context.Context, from, to string, opts CopyOptions) (report *CopyReport, err error) {
	if sameDatabase(from, to) {
		return nil, errors.New("store: copy: the source and the target are the same database")
	}
	src, err := OpenExisting(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	if path, ok := sqlitePath(to); ok {
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			defer func() {
				if err != nil {
					for _, p := range []string{path, path + "-wal", path + "-shm"} {
						os.Remove(p)
					}
				}
			}()
		}
	}
	dst, err := Open(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	return Copy(ctx, dst, src, opts)
}

// OpenExisting is Open for a database that must exist already: an SQLite
// URL naming a missing file is an error, where Open would create an empty
// database. (Open never creates PostgreSQL databases.)
func OpenExisting(ctx context.Context, url string) (Store, error) {
	if path, ok := sqlitePath(url); ok {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("store: the SQLite database %s does not exist", path)
			}
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return Open(ctx, url)
}

// sameDatabase reports whether the URLs a and b name the same database:
// one SQLite file, or the same PostgreSQL URL.
func sameDatabase(a, b string) bool {
	pa, aok := sqlitePath(a)
	pb, bok := sqlitePath(b)
	if aok && bok {
		fa, err1 := os.Stat(pa)
		fb, err2 := os.Stat(pb)
		if err1 == nil && err2 == nil {
			return os.SameFile(fa, fb)
		}
		return pa == pb
	}
	return a == b
}

// sqlitePath returns the file path of an SQLite URL, read as Open reads it
// (sqlite://PATH or sqlite:PATH, a query string dropped), and whether url
// is one.
func sqlitePath(url string) (string, bool) {
	if !strings.HasPrefix(url, "sqlite:") {
		return "", false
	}
	url, _, _ = strings.Cut(url, "?")
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		return path, true
	}
	return strings.TrimPrefix(url, "sqlite:"), true
}
