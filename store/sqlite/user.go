package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
	pagination "github.com/rvoip/users-core/store/internal/page"
)

// roleSep separates roles in the group_concat of userColumns; roles never
// contain it.
const roleSep = "\x1f"

// userColumns selects a user row (as u) and its roles, in the order
// scanUser reads them. Reading the roles in the same statement gives one
// consistent snapshot without a transaction.
const userColumns = `u.id, u.username, u.email, u.display_name, u.active, u.token_only,
	u.created_at, u.updated_at, u.last_login_at,
	(SELECT group_concat(r.role, char(31) ORDER BY r.role) FROM user_roles r WHERE r.user_id = u.id)`

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanUser reads a row selected with userColumns.
func scanUser(s rowScanner) (*identity.User, error) {
	var u identity.User
	if err := scanUserInto(s, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// scanUserInto reads a row selected with userColumns, followed by the
// columns of extra, into u.
func scanUserInto(s rowScanner, u *identity.User, extra ...any) error {
	var (
		created, updated int64
		lastLogin        sql.NullInt64
		roles            sql.NullString
	)
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.Active, &u.TokenOnly,
		&created, &updated, &lastLogin, &roles}, extra...)
	if err := s.Scan(dest...); err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = fromMillis(created), fromMillis(updated)
	if lastLogin.Valid {
		u.LastLoginAt = fromMillis(lastLogin.Int64)
	}
	if roles.Valid && roles.String != "" {
		for _, r := range strings.Split(roles.String, roleSep) {
			u.Roles = append(u.Roles, identity.Role(r))
		}
	}
	return nil
}

// stored returns u as a read would return it after writing it: times at
// millisecond precision in UTC, roles sorted without duplicates.
func stored(u *identity.User) *identity.User {
	c := u.Clone()
	c.CreatedAt = fromMillis(millis(u.CreatedAt))
	c.UpdatedAt = fromMillis(millis(u.UpdatedAt))
	if !u.LastLoginAt.IsZero() {
		c.LastLoginAt = fromMillis(millis(u.LastLoginAt))
	}
	c.Roles = sortedRoles(u.Roles)
	return c
}

// sortedRoles returns roles sorted without duplicates, nil when empty.
func sortedRoles(roles []identity.Role) []identity.Role {
	if len(roles) == 0 {
		return nil
	}
	out := slices.Clone(roles)
	slices.Sort(out)
	return slices.Compact(out)
}

// usernameKey and emailKey are the case-insensitive unique keys. Lower-casing
// in Go folds every script, where SQLite's lower() folds only ASCII.
func usernameKey(name string) string { return identity.UsernameKey(name) }

// emailKey is NULL (nil) for an empty email, so that users without one do
// not collide in the UNIQUE index.
func emailKey(email string) any {
	if email == "" {
		return nil
	}
	return strings.ToLower(email)
}

// lastLogin is the stored form of LastLoginAt: NULL when never.
func lastLogin(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return millis(t)
}

// checkCredentials refuses credentials that cannot be stored: two SIP
// credentials for one (realm, algorithm).
func checkCredentials(op string, creds *identity.Credentials) error {
	if creds == nil {
		return nil
	}
	type key struct {
		realm     string
		alg       identity.DigestAlgorithm
		qualified bool
	}
	seen := make(map[key]bool, len(creds.SIP))
	for _, c := range creds.SIP {
		k := key{c.Realm, c.Algorithm, c.Qualified}
		if seen[k] {
			return identity.Invalid(op, "credentials", "two SIP credentials for realm %q and algorithm %s", c.Realm, c.Algorithm)
		}
		seen[k] = true
	}
	return nil
}

// inserter inserts users with statements prepared once per transaction.
type inserter struct {
	op                string
	tx                *sql.Tx
	user, role, creds *sql.Stmt
}

func newInserter(ctx context.Context, op string, tx *sql.Tx) (*inserter, error) {
	ins := &inserter{op: op, tx: tx}
	var err error
	if ins.user, err = tx.PrepareContext(ctx, `INSERT INTO users
	(id, username, username_key, email, email_key, display_name, display_name_key,
	 active, token_only, password_hash, created_at, updated_at, last_login_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return nil, storeErr(op, err)
	}
	if ins.role, err = tx.PrepareContext(ctx, `INSERT INTO user_roles (user_id, role) VALUES (?, ?)`); err != nil {
		ins.close()
		return nil, storeErr(op, err)
	}
	if ins.creds, err = tx.PrepareContext(ctx, `INSERT INTO sip_credentials (user_id, realm, algorithm, qualified, sealed) VALUES (?, ?, ?, ?, ?)`); err != nil {
		ins.close()
		return nil, storeErr(op, err)
	}
	return ins, nil
}

func (ins *inserter) close() {
	for _, s := range []*sql.Stmt{ins.user, ins.role, ins.creds} {
		if s != nil {
			s.Close()
		}
	}
}

// insert inserts u with its roles and creds.
func (ins *inserter) insert(ctx context.Context, u *identity.User, creds *identity.Credentials) error {
	op := ins.op
	if u == nil {
		return identity.Invalid(op, "user", "user is nil")
	}
	if u.ID == "" {
		return identity.Invalid(op, "id", "user id is not set")
	}
	if err := checkCredentials(op, creds); err != nil {
		return err
	}
	var hash string
	if creds != nil {
		hash = creds.PasswordHash
	}
	_, err := ins.user.ExecContext(ctx, u.ID, u.Username, usernameKey(u.Username), u.Email, emailKey(u.Email),
		u.DisplayName, strings.ToLower(u.DisplayName), boolInt(u.Active), boolInt(u.TokenOnly), hash,
		millis(u.CreatedAt), millis(u.UpdatedAt), lastLogin(u.LastLoginAt))
	if err != nil {
		if isUniqueViolation(err) {
			return conflict(ctx, ins.tx, op, u, true)
		}
		return storeErr(op, err)
	}
	if err := insertRoles(ctx, ins.role, op, u.ID, u.Roles); err != nil {
		return err
	}
	return insertSIPCredentials(ctx, ins.creds, op, u.ID, creds)
}

// insertRoles inserts roles (deduplicated) of user id with stmt, an INSERT
// INTO user_roles.
func insertRoles(ctx context.Context, stmt *sql.Stmt, op, id string, roles []identity.Role) error {
	for _, r := range sortedRoles(roles) {
		if _, err := stmt.ExecContext(ctx, id, string(r)); err != nil {
			return storeErr(op, err)
		}
	}
	return nil
}

// insertSIPCredentials inserts the SIP credentials of creds for user id
// with stmt, an INSERT INTO sip_credentials.
func insertSIPCredentials(ctx context.Context, stmt *sql.Stmt, op, id string, creds *identity.Credentials) error {
	if creds == nil {
		return nil
	}
	for _, c := range creds.SIP {
		sealed := c.Sealed
		if sealed == nil {
			sealed = []byte{} // the column is NOT NULL; nil would bind as NULL
		}
		if _, err := stmt.ExecContext(ctx, id, c.Realm, string(c.Algorithm), boolInt(c.Qualified), sealed); err != nil {
			return storeErr(op, err)
		}
	}
	return nil
}

// conflict explains a unique violation raised by writing u: which of its
// unique values another row already holds. Rows with u's ID are the user
// itself on update; on create (isNew) an equal ID is a conflict too.
func conflict(ctx context.Context, tx *sql.Tx, op string, u *identity.User, isNew bool) error {
	taken := func(query string, args ...any) (bool, error) {
		var ok bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (`+query+`)`, args...).Scan(&ok)
		return ok, err
	}
	exclude := u.ID
	if isNew {
		exclude = "" // ids are never empty, so this excludes no row
	}
	if ok, err := taken(`SELECT 1 FROM users WHERE username_key = ? AND id <> ?`, usernameKey(u.Username), exclude); err != nil {
		return storeErr(op, err)
	} else if ok {
		return identity.E(op, identity.CodeConflict, "username %q already exists", u.Username)
	}
	if k := emailKey(u.Email); k != nil {
		if ok, err := taken(`SELECT 1 FROM users WHERE email_key = ? AND id <> ?`, k, exclude); err != nil {
			return storeErr(op, err)
		} else if ok {
			return identity.E(op, identity.CodeConflict, "email %q already exists", u.Email)
		}
	}
	if isNew {
		if ok, err := taken(`SELECT 1 FROM users WHERE id = ?`, u.ID); err != nil {
			return storeErr(op, err)
		} else if ok {
			return identity.E(op, identity.CodeConflict, "user id %q already exists", u.ID)
		}
	}
	return identity.E(op, identity.CodeConflict, "a unique value of user %q already exists", u.Username)
}

// CreateUser inserts u with its roles and creds (nil means none) in one
// transaction. A taken username or email matches identity.ErrConflict.
func (db *DB) CreateUser(ctx context.Context, u *identity.User, creds *identity.Credentials) error {
	const op = "sqlite.CreateUser"
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		ins, err := newInserter(ctx, op, tx)
		if err != nil {
			return err
		}
		defer ins.close()
		return ins.insert(ctx, u, creds)
	})
}

// CreateUsers inserts every users[i] with creds[i] in one transaction: all
// of them or none. creds may be nil (no credentials for anyone); otherwise
// it must have one entry per user, nil entries meaning none.
func (db *DB) CreateUsers(ctx context.Context, users []*identity.User, creds []*identity.Credentials) error {
	const op = "sqlite.CreateUsers"
	if creds != nil && len(creds) != len(users) {
		return identity.Invalid(op, "credentials", "%d credentials for %d users", len(creds), len(users))
	}
	if len(users) == 0 {
		return nil
	}
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		ins, err := newInserter(ctx, op, tx)
		if err != nil {
			return err
		}
		defer ins.close()
		for i, u := range users {
			var c *identity.Credentials
			if creds != nil {
				c = creds[i]
			}
			if err := ins.insert(ctx, u, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// UserByID returns the user with id, or an error matching
// identity.ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id string) (*identity.User, error) {
	return getUser(ctx, "sqlite.UserByID", db.userByID, id)
}

// UserByName returns the user whose username equals name
// case-insensitively, or an error matching identity.ErrNotFound.
func (db *DB) UserByName(ctx context.Context, name string) (*identity.User, error) {
	return getUser(ctx, "sqlite.UserByName", db.userByName, usernameKey(name))
}

// getUser reads one user with stmt, a prepared SELECT of userColumns with
// one parameter, arg.
func getUser(ctx context.Context, op string, stmt *sql.Stmt, arg any) (*identity.User, error) {
	u, err := scanUser(stmt.QueryRowContext(ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	if err != nil {
		return nil, storeErr(op, err)
	}
	return u, nil
}

// ListUsers returns one page of users matching f in case-insensitive
// username order. The cursor (UserPage.Next, UserFilter.After) is the
// base64url-encoded username key of the last user of the previous page, so
// pages neither overlap nor skip users even while users are added or
// removed between calls. A malformed cursor matches identity.ErrInvalid.
func (db *DB) ListUsers(ctx context.Context, f identity.UserFilter) (identity.UserPage, error) {
	const op = "sqlite.ListUsers"
	limit := pagination.Size(f.Limit)

	var (
		conds []string
		args  []any
	)
	if f.After != "" {
		after, ok := pagination.ParseUserCursor(f.After)
		if !ok {
			return identity.UserPage{}, identity.Invalid(op, "after", "invalid page cursor")
		}
		conds = append(conds, `u.username_key > ?`)
		args = append(args, after)
	}
	if f.Active != nil {
		conds = append(conds, `u.active = ?`)
		args = append(args, boolInt(*f.Active))
	}
	if f.Role != "" {
		conds = append(conds, `EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = ?)`)
		args = append(args, string(f.Role))
	}
	if f.Search != "" {
		// The keys are lower-cased in Go, and so is the term: LIKE then only
		// has to match, not fold. Wildcards in the term are escaped so that
		// "50%" finds "50%", not "500".
		p := "%" + pagination.EscapeLike(strings.ToLower(f.Search)) + "%"
		conds = append(conds, `(u.username_key LIKE ? ESCAPE '\' OR u.email_key LIKE ? ESCAPE '\' OR u.display_name_key LIKE ? ESCAPE '\')`)
		args = append(args, p, p, p)
	}
	query := `SELECT ` + userColumns + ` FROM users u`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY u.username_key LIMIT ?`
	args = append(args, limit+1) // one more tells whether a next page exists

	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return identity.UserPage{}, storeErr(op, err)
	}
	defer rows.Close()
	var page identity.UserPage
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return identity.UserPage{}, storeErr(op, err)
		}
		page.Users = append(page.Users, u)
	}
	if err := rows.Err(); err != nil {
		return identity.UserPage{}, storeErr(op, err)
	}
	if len(page.Users) > limit {
		page.Users = page.Users[:limit]
		last := page.Users[limit-1]
		page.Next = pagination.UserCursor(usernameKey(last.Username))
	}
	return page, nil
}

// CountUsers returns the number of users.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	const op = "sqlite.CountUsers"
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, storeErr(op, err)
	}
	return n, nil
}

// UpdateUser reads the user with id, calls fn on a copy and writes the copy
// back (fields and roles), in one write transaction. An error from fn is
// returned unchanged and nothing is written; fn's changes to ID and
// CreatedAt are undone. A username or email taken by another user matches
// identity.ErrConflict. fn runs inside the transaction, which holds the
// only writer connection: it must not call this DB's write methods (reads
// are fine).
func (db *DB) UpdateUser(ctx context.Context, id string, fn func(u *identity.User) error) (*identity.User, error) {
	const op = "sqlite.UpdateUser"
	if fn == nil {
		return nil, identity.Invalid(op, "fn", "update function is nil")
	}
	var out *identity.User
	err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return identity.E(op, identity.CodeNotFound, "user not found")
		}
		if err != nil {
			return storeErr(op, err)
		}
		next := cur.Clone()
		if err := fn(next); err != nil {
			return err
		}
		next.ID, next.CreatedAt = cur.ID, cur.CreatedAt

		_, err = tx.ExecContext(ctx, `UPDATE users SET
	username = ?, username_key = ?, email = ?, email_key = ?, display_name = ?, display_name_key = ?,
	active = ?, token_only = ?, updated_at = ?, last_login_at = ?
	WHERE id = ?`,
			next.Username, usernameKey(next.Username), next.Email, emailKey(next.Email),
			next.DisplayName, strings.ToLower(next.DisplayName), boolInt(next.Active), boolInt(next.TokenOnly),
			millis(next.UpdatedAt), lastLogin(next.LastLoginAt), id)
		if err != nil {
			if isUniqueViolation(err) {
				return conflict(ctx, tx, op, next, false)
			}
			return storeErr(op, err)
		}
		if !slices.Equal(sortedRoles(next.Roles), cur.Roles) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM user_roles WHERE user_id = ?`, id); err != nil {
				return storeErr(op, err)
			}
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO user_roles (user_id, role) VALUES (?, ?)`)
			if err != nil {
				return storeErr(op, err)
			}
			defer stmt.Close()
			if err := insertRoles(ctx, stmt, op, id, next.Roles); err != nil {
				return err
			}
		}
		out = stored(next)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUser removes the user with id; its roles and credentials go with it
// (ON DELETE CASCADE). A missing user matches identity.ErrNotFound.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	const op = "sqlite.DeleteUser"
	return db.execOne(ctx, op, `DELETE FROM users WHERE id = ?`, id)
}

// execOne runs a single-statement write on the writer that must affect the
// user row; none affected means the user does not exist.
func (db *DB) execOne(ctx context.Context, op, query string, args ...any) error {
	res, err := db.w.ExecContext(ctx, query, args...)
	if err != nil {
		return storeErr(op, err)
	}
	return mustAffect(op, res)
}

// mustAffect turns a write that changed no row into a not-found error.
func mustAffect(op string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return storeErr(op, err)
	}
	if n == 0 {
		return identity.E(op, identity.CodeNotFound, "user not found")
	}
	return nil
}

// Credentials returns the password hash and SIP credentials of the user
// with id, the SIP credentials ordered by realm, algorithm, then
// qualified.
func (db *DB) Credentials(ctx context.Context, id string) (*identity.Credentials, error) {
	const op = "sqlite.Credentials"
	// One statement reads the hash and the SIP credentials from one snapshot.
	rows, err := db.credentials.QueryContext(ctx, id)
	if err != nil {
		return nil, storeErr(op, err)
	}
	defer rows.Close()
	var creds *identity.Credentials
	for rows.Next() {
		var (
			hash             string
			realm, algorithm sql.NullString
			qualified        sql.NullInt64
			sealed           []byte
		)
		if err := rows.Scan(&hash, &realm, &algorithm, &qualified, &sealed); err != nil {
			return nil, storeErr(op, err)
		}
		if creds == nil {
			creds = &identity.Credentials{PasswordHash: hash}
		}
		if realm.Valid {
			if sealed == nil {
				sealed = []byte{}
			}
			creds.SIP = append(creds.SIP, identity.SIPCredential{
				Realm:     realm.String,
				Algorithm: identity.DigestAlgorithm(algorithm.String),
				Qualified: qualified.Int64 == 1,
				Sealed:    sealed,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(op, err)
	}
	if creds == nil {
		return nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	return creds, nil
}

// The credential cache reads a miss in one statement.
var _ identity.DigestCredentialReader = (*DB)(nil)

// DigestCredentials returns the user whose username equals name
// case-insensitively and that user's SIP credentials with algorithm alg and
// the qualified form asked for, of every realm (identity picks the realm,
// case-insensitively), or an error matching identity.ErrNotFound. It is
// identity.DigestCredentialReader: a credential-cache miss on every
// REGISTER of a user not seen lately.
//
// One statement reads the user, its roles and the credentials from one
// snapshot. UserByName then Credentials take two statements, each its own
// read transaction, and while bindings are being committed nearly every
// read transaction finds the database changed and starts with an empty
// page cache (SQLite resets a WAL reader's cache then): the second one
// reads page 1, the id index and the users row again, from the file. With
// a million users that is about 24 page reads per miss instead of 16, and
// 275 instead of 180 µs of CPU per miss at 200 REGISTERs/s.
func (db *DB) DigestCredentials(ctx context.Context, name string, alg identity.DigestAlgorithm, qualified bool) (*identity.User, []identity.SIPCredential, error) {
	const op = "sqlite.DigestCredentials"
	rows, err := db.digestCredentials.QueryContext(ctx, usernameKey(name), string(alg), boolInt(qualified))
	if err != nil {
		return nil, nil, storeErr(op, err)
	}
	defer rows.Close()
	var (
		u     *identity.User
		creds []identity.SIPCredential
	)
	for rows.Next() {
		var (
			r      identity.User
			realm  sql.NullString
			sealed []byte
		)
		if err := scanUserInto(rows, &r, &realm, &sealed); err != nil {
			return nil, nil, storeErr(op, err)
		}
		if u == nil {
			u = &r
		}
		if realm.Valid {
			if sealed == nil {
				sealed = []byte{}
			}
			creds = append(creds, identity.SIPCredential{Realm: realm.String, Algorithm: alg, Qualified: qualified, Sealed: sealed})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, storeErr(op, err)
	}
	if u == nil {
		return nil, nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	return u, creds, nil
}

// SetCredentials replaces, in one transaction, the password hash and every
// SIP credential of the user with id (nil creds clears both), and sets its
// TokenOnly flag and UpdatedAt.
func (db *DB) SetCredentials(ctx context.Context, id string, creds *identity.Credentials, tokenOnly bool, updatedAt time.Time) error {
	const op = "sqlite.SetCredentials"
	if err := checkCredentials(op, creds); err != nil {
		return err
	}
	var hash string
	if creds != nil {
		hash = creds.PasswordHash
	}
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, token_only = ?, updated_at = ? WHERE id = ?`,
			hash, boolInt(tokenOnly), millis(updatedAt), id)
		if err != nil {
			return storeErr(op, err)
		}
		if err := mustAffect(op, res); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sip_credentials WHERE user_id = ?`, id); err != nil {
			return storeErr(op, err)
		}
		if creds == nil || len(creds.SIP) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO sip_credentials (user_id, realm, algorithm, qualified, sealed) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return storeErr(op, err)
		}
		defer stmt.Close()
		return insertSIPCredentials(ctx, stmt, op, id, creds)
	})
}

// SetPasswordHash replaces only the password hash of the user with id (a
// rehash with new parameters): SIP credentials, flags and UpdatedAt stay.
func (db *DB) SetPasswordHash(ctx context.Context, id, phc string) error {
	return db.execOne(ctx, "sqlite.SetPasswordHash", `UPDATE users SET password_hash = ? WHERE id = ?`, phc, id)
}

// TouchLogin sets the LastLoginAt of the user with id to at (millisecond
// precision); a zero at clears it.
func (db *DB) TouchLogin(ctx context.Context, id string, at time.Time) error {
	return db.execOne(ctx, "sqlite.TouchLogin", `UPDATE users SET last_login_at = ? WHERE id = ?`, lastLogin(at), id)
}
