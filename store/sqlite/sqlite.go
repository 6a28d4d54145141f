// Package sqlite is the default users-core storage backend: one SQLite
// database file, opened through modernc.org/sqlite (pure Go, no cgo). DB
// implements identity.UserStore and identity.SecretStore and passes
// store/storetest.
//
// Writes go through a single connection, reads through a separate pool of
// read-only connections; the schema is kept by embedded, numbered
// migrations applied on Open. It is not a general SQL helper: other packages
// never see a *sql.DB from here.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process on the same file, or a checkpoint) before a
// statement fails with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// DB implements the storage contracts of identity (and store.Store, which
// this package cannot name without an import cycle).
var (
	_ identity.UserStore   = (*DB)(nil)
	_ identity.SecretStore = (*DB)(nil)
)

// DB is a users-core database in one SQLite file. It is safe for concurrent
// use. Create it with Open and release it with Close.
type DB struct {
	// Now returns the current time. It stamps migration records and created
	// secrets; tests may replace it right after Open. Times of users come
	// from the caller, never from here.
	Now func() time.Time

	path string
	w    *sql.DB // the single writer connection
	r    *sql.DB // read-only connection pool

	// Hot reads, prepared once on the reader pool: parsing the statement
	// costs about as much as running it.
	userByID, userByName, refreshByHash *sql.Stmt
	// failuresExist runs on every successful REGISTER and login
	// (ClearFailures).
	failuresExist *sql.Stmt
	// credentials reads a user's hash and HA1 values.
	credentials *sql.Stmt
	// digestCredentials reads a user and its HA1 values for one algorithm
	// by name: every DigestHA1 that misses the identity cache.
	digestCredentials *sql.Stmt
	// The statements of the bindings table (bindings.go).
	bindings bindingStmts
	// The statements of the api_keys table (apikeys.go).
	apiKeys apiKeyStmts
	// The statements of the change stamps and lock listing (stamps.go).
	stamps stampStmts
	// commits group-commits binding updates (commit.go).
	commits committer
}

// Open opens the SQLite database at path, creating the file if it does not
// exist, and applies pending migrations. The parent directory must already
// exist and be writable (WAL mode keeps -wal and -shm files next to the
// database): Open never creates directories, and when the directory is
// missing or unusable it fails with an error naming path and leaves no file
// behind. A database written by a newer users-core (a schema version above
// SchemaVersion) is refused with a *SchemaTooNewError and left untouched.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: database path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sqlite: open database %s: directory %s does not exist (create it first)", path, dir)
	case err != nil:
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("sqlite: open database %s: %s is not a directory", path, dir)
	}

	db := &DB{Now: time.Now, path: path}
	if db.w, err = sql.Open("sqlite", dsn(abs, false)); err != nil {
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	// One writer connection: SQLite allows one writer at a time anyway, and
	// queueing writers in database/sql's pool is cheaper and fairer than
	// letting them spin on SQLITE_BUSY. It is never closed while idle.
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxIdleTime(0)
	db.w.SetConnMaxLifetime(0)
	if err := db.w.PingContext(ctx); err != nil {
		db.w.Close()
		if isCode(err, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY) {
			return nil, fmt.Errorf("sqlite: cannot open database %s for writing (is directory %s writable?): %w", path, dir, err)
		}
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.w.Close()
		var tooNew *SchemaTooNewError
		if errors.As(err, &tooNew) {
			return nil, err
		}
		return nil, fmt.Errorf("sqlite: migrate database %s: %w", path, err)
	}

	if db.r, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		db.w.Close()
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	// WAL readers never block the writer or each other, so reads scale with
	// connections; a few per CPU covers connections waiting on I/O.
	n := max(4, 2*runtime.NumCPU())
	db.r.SetMaxOpenConns(n)
	db.r.SetMaxIdleConns(n)
	if err := db.r.PingContext(ctx); err != nil {
		db.r.Close()
		db.w.Close()
		return nil, fmt.Errorf("sqlite: open database %s for reading: %w", path, err)
	}
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	if err := db.commits.start(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	return db, nil
}

// dsn returns the modernc.org/sqlite data source name for the database file
// at the absolute path abs. Settings travel as _pragma parameters so that
// every connection the pools open gets them, not only the first.
func dsn(abs string, reader bool) string {
	q := url.Values{}
	// Wait up to busyTimeout for locks held by other processes on the same
	// file (the CLI next to a running server) instead of failing at once.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	// SQLite leaves foreign keys off by default, per connection; the ON
	// DELETE CASCADE clauses that remove a user's roles and credentials
	// depend on them.
	q.Add("_pragma", "foreign_keys(1)")
	// WAL: readers see the last committed state without blocking the writer
	// and the writer never waits for readers. The mode is stored in the file;
	// setting it again on every connection is a no-op that keeps a copied or
	// restored file in WAL too.
	q.Add("_pragma", "journal_mode(WAL)")
	// synchronous=FULL fsyncs the WAL on every commit, before the commit
	// returns. An acknowledged write (a created user, a changed password, a
	// registration) must survive SIGKILL and power loss. WAL alone covers
	// SIGKILL (committed frames are in the operating system's cache), but with
	// NORMAL, the usual WAL choice, the last commits can vanish on power loss
	// or a kernel crash.
	q.Add("_pragma", "synchronous(FULL)")
	if reader {
		// Reader connections refuse writes, so a write that slipped into the
		// read path fails loudly instead of racing the single writer.
		q.Add("_pragma", "query_only(1)")
	} else {
		// BEGIN IMMEDIATE takes the write lock when a transaction starts, so a
		// transaction that reads and then writes never has to upgrade its lock
		// (the upgrade fails with SQLITE_BUSY, without waiting, when another
		// process wrote in between).
		q.Set("_txlock", "immediate")
		// The writer's page cache is 32 MiB (the default is 2 MiB): inserts
		// into the random-ordered id and key indexes of a large import then
		// stay in memory until commit. Readers keep the default: the
		// operating system caches the file for them, and a bigger cache or
		// mmap_size would not help them. A WAL reader empties its page cache
		// (and unmaps its mmap region) at every read transaction that finds
		// the database changed, which under REGISTER load (bindings
		// committed all the time) is nearly every one: a bigger cache is
		// emptied as often, and with mmap_size 2 GiB the server used twice
		// the CPU at 200 REGISTERs/s with 1,000,000 users (munmap and page
		// faults on every read).
		q.Add("_pragma", "cache_size(-32768)")
		// The change-stamp triggers (migration 0007) make every write to
		// users, roles, SIP credentials and locks keep a statement journal,
		// a temporary file by default: a pwrite per changed page, which
		// doubled the time of a 100,000-user CreateUsers. In memory it costs
		// next to nothing (it holds the pages one statement changed).
		q.Add("_pragma", "temp_store(2)")
	}
	return "file:" + escapeURIPath(filepath.ToSlash(abs)) + "?" + q.Encode()
}

// escapeURIPath escapes the characters that would end or alter the path part
// of an SQLite file: URI.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Ping checks that the database answers on the writer and a reader.
func (db *DB) Ping(ctx context.Context) error {
	const op = "sqlite.Ping"
	if err := db.w.PingContext(ctx); err != nil {
		return storeErr(op, err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return storeErr(op, err)
	}
	return nil
}

// prepare prepares the hot read statements on the reader pool, and those of
// the bindings table.
func (db *DB) prepare(ctx context.Context) error {
	var err error
	if db.userByID, err = db.r.PrepareContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`); err != nil {
		return err
	}
	if db.userByName, err = db.r.PrepareContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.username_key = ?`); err != nil {
		return err
	}
	if db.refreshByHash, err = db.r.PrepareContext(ctx, `SELECT `+refreshColumns+` FROM refresh_tokens WHERE hash = ?`); err != nil {
		return err
	}
	if db.credentials, err = db.r.PrepareContext(ctx, `SELECT u.password_hash, c.realm, c.algorithm, c.qualified, c.sealed
	FROM users u LEFT JOIN sip_credentials c ON c.user_id = u.id
	WHERE u.id = ?
	ORDER BY c.realm, c.algorithm, c.qualified`); err != nil {
		return err
	}
	// The user by its name, then its credentials of one algorithm and form
	// through the primary key's user_id prefix: one snapshot, one index
	// descent per table.
	if db.digestCredentials, err = db.r.PrepareContext(ctx, `SELECT `+userColumns+`, c.realm, c.sealed
	FROM users u LEFT JOIN sip_credentials c ON c.user_id = u.id AND c.algorithm = ?2 AND c.qualified = ?3
	WHERE u.username_key = ?1
	ORDER BY c.realm`); err != nil {
		return err
	}
	if db.failuresExist, err = db.r.PrepareContext(ctx, `SELECT EXISTS (SELECT 1 FROM auth_failures WHERE kind = ? AND value = ?)`); err != nil {
		return err
	}
	if err = db.stamps.prepare(ctx, db.r); err != nil {
		return err
	}
	if err = db.apiKeys.prepare(ctx, db.r); err != nil {
		return err
	}
	return db.bindings.prepare(ctx, db.r, db.w)
}

// Close closes every connection. The writer closes last so that SQLite
// checkpoints the WAL into the database file.
func (db *DB) Close() error {
	errs := []error{db.commits.stop()} // first: it writes
	for _, s := range []*sql.Stmt{db.userByID, db.userByName, db.refreshByHash, db.failuresExist, db.credentials, db.digestCredentials} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	errs = append(errs, db.bindings.close(), db.apiKeys.close(), db.stamps.close(), db.r.Close(), db.w.Close())
	return errors.Join(errs...)
}

// inWriteTx runs fn in a transaction on the writer connection (BEGIN
// IMMEDIATE) and commits it when fn returns nil. An error from fn rolls the
// transaction back and is returned unchanged, so fn decides how to wrap
// database errors. fn must not use db.w itself: the writer has one
// connection, and the transaction holds it.
func (db *DB) inWriteTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return storeErr(op, err)
	}
	return nil
}

// isUniqueViolation reports whether err is SQLite's answer to a duplicate
// value in a UNIQUE or PRIMARY KEY column. Connections report extended
// result codes, so the constraint kind is in the code, not only in the text.
func isUniqueViolation(err error) bool {
	var e *moderncsqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// isCode reports whether err is an SQLite error whose primary result code
// (the low byte of the extended code) is one of codes.
func isCode(err error, codes ...int) bool {
	var e *moderncsqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code()&0xff == c {
			return true
		}
	}
	return false
}

// millis converts t to the stored form: Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

// fromMillis converts a stored time back: millisecond precision, UTC.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// boolInt converts b to the stored form of a flag.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// storeErr wraps a database failure for op. SQLite's "busy" and "locked"
// (another process held the write lock past busy_timeout, or a checkpoint
// did) are CodeUnavailable with a short RetryAfter, so the SIP side answers
// 503 and the HTTP side 503 instead of an internal error; everything else
// is CodeInternal.
func storeErr(op string, err error) *identity.Error {
	if isCode(err, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) {
		return &identity.Error{Op: op, Code: identity.CodeUnavailable, Message: "database busy, try again",
			Err: err, RetryAfter: time.Second}
	}
	return identity.Internal(op, err)
}
