package postgres

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	pagination "github.com/rvoip/users-core/store/internal/page"
)

// batchSize is the most statements one pgx batch carries: a large import
// goes to the server in several round trips instead of one unbounded
// buffer.
const batchSize = 1000

// The constraints of the users table whose violation names the value at
// fault (migrations/0001_init.sql).
const (
	conUsersPkey     = "users_pkey"
	conUsersUsername = "users_username_key_unique"
	conUsersEmail    = "users_email_key_unique"
)

// userColumns selects a user row (as u) and its roles, in the order
// scanUser reads them. Reading the roles in the same statement gives one
// consistent snapshot without a transaction.
const userColumns = `u.id, u.username, u.email, u.display_name, u.active, u.token_only,
	u.created_at, u.updated_at, u.last_login_at,
	array(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role)`

// The statements that insert a user, a role and a SIP credential.
const (
	insertUserSQL = `INSERT INTO users
	(id, username, username_key, email, email_key, display_name, display_name_key,
	 active, token_only, password_hash, created_at, updated_at, last_login_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	insertRoleSQL = `INSERT INTO user_roles (user_id, role) VALUES ($1, $2)`
	insertCredSQL = `INSERT INTO sip_credentials (user_id, realm, algorithm, qualified, sealed) VALUES ($1, $2, $3, $4, $5)`
)

// scanUser reads a row selected with userColumns.
func scanUser(s rowScanner) (*identity.User, error) {
	var u identity.User
	if err := scanUserInto(s, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// scanUserInto reads a row selected with userColumns into u, and the
// columns after them into extra.
func scanUserInto(s rowScanner, u *identity.User, extra ...any) error {
	var (
		created, updated int64
		lastLogin        *int64
		roles            []string
	)
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.Active, &u.TokenOnly,
		&created, &updated, &lastLogin, &roles}, extra...)
	if err := s.Scan(dest...); err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = fromMillis(created), fromMillis(updated)
	u.LastLoginAt = optTime(lastLogin)
	for _, r := range roles {
		u.Roles = append(u.Roles, identity.Role(r))
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

// usernameKey is the case-insensitive unique key of a username: the key
// every store and identity's caches agree on. Lower-casing in Go folds
// every script the same way on every backend.
func usernameKey(name string) string { return identity.UsernameKey(name) }

// emailKey is NULL (nil) for an empty email, so that users without one do
// not collide in the UNIQUE constraint.
func emailKey(email string) *string {
	if email == "" {
		return nil
	}
	k := strings.ToLower(email)
	return &k
}

// checkCredentials refuses credentials that cannot be stored: two SIP
// credentials for one (realm, algorithm, qualified).
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

// checkNewUser refuses a user that cannot be inserted.
func checkNewUser(op string, u *identity.User, creds *identity.Credentials) error {
	if u == nil {
		return identity.Invalid(op, "user", "user is nil")
	}
	if u.ID == "" {
		return identity.Invalid(op, "id", "user id is not set")
	}
	return checkCredentials(op, creds)
}

// userConflict explains a unique violation raised by writing u: which of
// its unique values another row already holds, read from the name of the
// violated constraint.
func userConflict(op string, u *identity.User, err error) error {
	switch constraint(err) {
	case conUsersUsername:
		return identity.E(op, identity.CodeConflict, "username %q already exists", u.Username)
	case conUsersEmail:
		return identity.E(op, identity.CodeConflict, "email %q already exists", u.Email)
	case conUsersPkey:
		return identity.E(op, identity.CodeConflict, "user id %q already exists", u.ID)
	}
	return identity.E(op, identity.CodeConflict, "a unique value of user %q already exists", u.Username)
}

// queued is one statement of a batch and the user it writes.
type queued struct {
	sql  string
	args []any
	user *identity.User
}

// sendQueued runs qs in tx, in batches of batchSize, stopping at the first
// failure: a unique violation of a statement that writes a user is that
// user's conflict.
func sendQueued(ctx context.Context, tx pgx.Tx, op string, qs []queued) error {
	for len(qs) > 0 {
		n := min(len(qs), batchSize)
		b := &pgx.Batch{}
		for _, q := range qs[:n] {
			b.Queue(q.sql, q.args...)
		}
		br := tx.SendBatch(ctx, b)
		for _, q := range qs[:n] {
			if _, err := br.Exec(); err != nil {
				br.Close()
				if q.user != nil && isUniqueViolation(err) {
					return userConflict(op, q.user, err)
				}
				return fail(op, err)
			}
		}
		if err := br.Close(); err != nil {
			return fail(op, err)
		}
		qs = qs[n:]
	}
	return nil
}

// queueUser appends the statements that insert u with its roles and creds.
func queueUser(qs []queued, u *identity.User, creds *identity.Credentials) []queued {
	var hash string
	if creds != nil {
		hash = creds.PasswordHash
	}
	qs = append(qs, queued{insertUserSQL, []any{u.ID, u.Username, usernameKey(u.Username), u.Email, emailKey(u.Email),
		u.DisplayName, strings.ToLower(u.DisplayName), u.Active, u.TokenOnly, hash,
		millis(u.CreatedAt), millis(u.UpdatedAt), optMillis(u.LastLoginAt)}, u})
	qs = queueRoles(qs, u, u.Roles)
	return queueSIPCredentials(qs, u, creds)
}

// queueRoles appends the statements that insert roles (deduplicated) of u.
func queueRoles(qs []queued, u *identity.User, roles []identity.Role) []queued {
	for _, r := range sortedRoles(roles) {
		qs = append(qs, queued{insertRoleSQL, []any{u.ID, string(r)}, u})
	}
	return qs
}

// queueSIPCredentials appends the statements that insert the SIP
// credentials of creds for u.
func queueSIPCredentials(qs []queued, u *identity.User, creds *identity.Credentials) []queued {
	if creds == nil {
		return qs
	}
	for _, c := range creds.SIP {
		qs = append(qs, queued{insertCredSQL, []any{u.ID, c.Realm, string(c.Algorithm), c.Qualified, nonNil(c.Sealed)}, u})
	}
	return qs
}

// insertUsers inserts users[i] with creds[i] (creds may be nil) in tx. The
// users before the first one that cannot be inserted at all are written
// first, so that of a conflict among them and the invalid user, the error
// is the one a store writing one user at a time reports.
func insertUsers(ctx context.Context, tx pgx.Tx, op string, users []*identity.User, creds []*identity.Credentials) error {
	credsOf := func(i int) *identity.Credentials {
		if creds == nil {
			return nil
		}
		return creds[i]
	}
	var (
		qs     []queued
		badErr error
	)
	for i, u := range users {
		if badErr = checkNewUser(op, u, credsOf(i)); badErr != nil {
			break
		}
		qs = queueUser(qs, u, credsOf(i))
	}
	if err := sendQueued(ctx, tx, op, qs); err != nil {
		return err
	}
	return badErr
}

// CreateUser inserts u with its roles and creds (nil means none) in one
// transaction. A taken username or email matches identity.ErrConflict.
func (db *DB) CreateUser(ctx context.Context, u *identity.User, creds *identity.Credentials) error {
	const op = "postgres.CreateUser"
	if err := checkNewUser(op, u, creds); err != nil {
		return err
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		return insertUsers(ctx, tx, op, []*identity.User{u}, []*identity.Credentials{creds})
	})
}

// CreateUsers inserts every users[i] with creds[i] in one transaction: all
// of them or none. creds may be nil (no credentials for anyone); otherwise
// it must have one entry per user, nil entries meaning none.
func (db *DB) CreateUsers(ctx context.Context, users []*identity.User, creds []*identity.Credentials) error {
	const op = "postgres.CreateUsers"
	if creds != nil && len(creds) != len(users) {
		return identity.Invalid(op, "credentials", "%d credentials for %d users", len(creds), len(users))
	}
	if len(users) == 0 {
		return nil
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		return insertUsers(ctx, tx, op, users, creds)
	})
}

// UserByID returns the user with id, or an error matching
// identity.ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id string) (*identity.User, error) {
	return db.getUser(ctx, "postgres.UserByID", `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id)
}

// UserByName returns the user whose username equals name
// case-insensitively, or an error matching identity.ErrNotFound.
func (db *DB) UserByName(ctx context.Context, name string) (*identity.User, error) {
	return db.getUser(ctx, "postgres.UserByName", `SELECT `+userColumns+` FROM users u WHERE u.username_key = $1`, usernameKey(name))
}

// The credential cache reads a miss in one statement.
var _ identity.DigestCredentialReader = (*DB)(nil)

// DigestCredentials implements identity.DigestCredentialReader: the user
// whose username equals name (case-insensitively) and its SIP credentials
// of algorithm alg and form qualified, in realm order, from one statement
// (one snapshot, one round trip): the miss path of the credential cache.
// An unknown user is identity.ErrNotFound.
func (db *DB) DigestCredentials(ctx context.Context, name string, alg identity.DigestAlgorithm, qualified bool) (*identity.User, []identity.SIPCredential, error) {
	const op = "postgres.DigestCredentials"
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+`, c.realm, c.sealed
	FROM users u LEFT JOIN sip_credentials c ON c.user_id = u.id AND c.algorithm = $2 AND c.qualified = $3
	WHERE u.username_key = $1
	ORDER BY c.realm`, usernameKey(name), string(alg), qualified)
	if err != nil {
		return nil, nil, fail(op, err)
	}
	defer rows.Close()
	var (
		u     *identity.User
		creds []identity.SIPCredential
	)
	for rows.Next() {
		var (
			r      identity.User
			realm  *string
			sealed []byte
		)
		if err := scanUserInto(rows, &r, &realm, &sealed); err != nil {
			return nil, nil, fail(op, err)
		}
		if u == nil {
			u = &r
		}
		if realm != nil {
			creds = append(creds, identity.SIPCredential{Realm: *realm, Algorithm: alg, Qualified: qualified, Sealed: nonNil(sealed)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fail(op, err)
	}
	if u == nil {
		return nil, nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	return u, creds, nil
}

// getUser reads one user with query, a SELECT of userColumns with one
// parameter, arg.
func (db *DB) getUser(ctx context.Context, op, query string, arg any) (*identity.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, query, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	if err != nil {
		return nil, fail(op, err)
	}
	return u, nil
}

// params collects the arguments of a statement built piece by piece.
type params []any

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// ListUsers returns one page of users matching f in case-insensitive
// username order (byte order of the lower-cased names). The cursor
// (UserPage.Next, UserFilter.After) is the base64url-encoded username key
// of the last user of the previous page, so pages neither overlap nor skip
// users even while users are added or removed between calls. A malformed
// cursor matches identity.ErrInvalid.
func (db *DB) ListUsers(ctx context.Context, f identity.UserFilter) (identity.UserPage, error) {
	const op = "postgres.ListUsers"
	limit := pagination.Size(f.Limit)

	var (
		conds []string
		args  params
	)
	if f.After != "" {
		after, ok := pagination.ParseUserCursor(f.After)
		if !ok {
			return identity.UserPage{}, identity.Invalid(op, "after", "invalid page cursor")
		}
		conds = append(conds, `u.username_key > `+args.add(after))
	}
	if f.Active != nil {
		conds = append(conds, `u.active = `+args.add(*f.Active))
	}
	if f.Role != "" {
		conds = append(conds, `EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = `+args.add(string(f.Role))+`)`)
	}
	if f.Search != "" {
		// The keys are lower-cased in Go, and so is the term: LIKE then only
		// has to match, not fold. Wildcards in the term are escaped so that
		// "50%" finds "50%", not "500". E'\\' is one backslash whatever
		// standard_conforming_strings says.
		p := args.add("%" + pagination.EscapeLike(strings.ToLower(f.Search)) + "%")
		conds = append(conds, `(u.username_key LIKE `+p+` ESCAPE E'\\' OR u.email_key LIKE `+p+` ESCAPE E'\\' OR u.display_name_key LIKE `+p+` ESCAPE E'\\')`)
	}
	query := `SELECT ` + userColumns + ` FROM users u`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY u.username_key LIMIT ` + args.add(limit+1) // one more tells whether a next page exists

	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return identity.UserPage{}, fail(op, err)
	}
	defer rows.Close()
	var page identity.UserPage
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return identity.UserPage{}, fail(op, err)
		}
		page.Users = append(page.Users, u)
	}
	if err := rows.Err(); err != nil {
		return identity.UserPage{}, fail(op, err)
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
	const op = "postgres.CountUsers"
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// UpdateUser reads the user with id, calls fn on a copy and writes the copy
// back (fields and roles), in one transaction that holds the user's row
// lock from the read to the commit, so concurrent updates of one user, on
// any node, run one after the other and none is lost. An error from fn is
// returned unchanged and nothing is written; fn's changes to ID and
// CreatedAt are undone. A username or email taken by another user matches
// identity.ErrConflict. fn must not call this DB's write methods for the
// same user (it would wait for its own lock); it may run more than once
// when PostgreSQL aborts the transaction for a deadlock.
func (db *DB) UpdateUser(ctx context.Context, id string, fn func(u *identity.User) error) (*identity.User, error) {
	const op = "postgres.UpdateUser"
	if fn == nil {
		return nil, identity.Invalid(op, "fn", "update function is nil")
	}
	var out *identity.User
	err := db.inTx(ctx, op, func(tx pgx.Tx) error {
		// Lock the row first, then read it with its roles in a statement of
		// its own: at READ COMMITTED that statement's snapshot is taken
		// after the lock was granted, so it sees the last committed user
		// and roles (a locking read that waited would re-check the user row
		// but not the roles subquery).
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return identity.E(op, identity.CodeNotFound, "user not found")
		}
		if err != nil {
			return fail(op, err)
		}
		cur, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id))
		if err != nil {
			return fail(op, err)
		}
		next := cur.Clone()
		if err := fn(next); err != nil {
			return err
		}
		next.ID, next.CreatedAt = cur.ID, cur.CreatedAt

		_, err = tx.Exec(ctx, `UPDATE users SET
	username = $1, username_key = $2, email = $3, email_key = $4, display_name = $5, display_name_key = $6,
	active = $7, token_only = $8, updated_at = $9, last_login_at = $10
	WHERE id = $11`,
			next.Username, usernameKey(next.Username), next.Email, emailKey(next.Email),
			next.DisplayName, strings.ToLower(next.DisplayName), next.Active, next.TokenOnly,
			millis(next.UpdatedAt), optMillis(next.LastLoginAt), id)
		if err != nil {
			if isUniqueViolation(err) {
				return userConflict(op, next, err)
			}
			return fail(op, err)
		}
		if !slices.Equal(sortedRoles(next.Roles), cur.Roles) {
			if _, err := tx.Exec(ctx, `DELETE FROM user_roles WHERE user_id = $1`, id); err != nil {
				return fail(op, err)
			}
			if err := sendQueued(ctx, tx, op, queueRoles(nil, next, next.Roles)); err != nil {
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

// DeleteUser removes the user with id; its roles, credentials, tokens and
// API keys go with it (ON DELETE CASCADE), and its bindings (a trigger). A
// missing user matches identity.ErrNotFound.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	return db.execOne(ctx, "postgres.DeleteUser", `DELETE FROM users WHERE id = $1`, id)
}

// execOne runs a single-statement write that must affect the user row;
// none affected means the user does not exist.
func (db *DB) execOne(ctx context.Context, op, query string, args ...any) error {
	n, err := db.exec(ctx, op, query, args...)
	if err != nil {
		return err
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
	const op = "postgres.Credentials"
	// One statement reads the hash and the SIP credentials from one snapshot.
	rows, err := db.pool.Query(ctx, `SELECT u.password_hash, c.realm, c.algorithm, c.qualified, c.sealed
	FROM users u LEFT JOIN sip_credentials c ON c.user_id = u.id
	WHERE u.id = $1
	ORDER BY c.realm, c.algorithm, c.qualified`, id)
	if err != nil {
		return nil, fail(op, err)
	}
	defer rows.Close()
	var creds *identity.Credentials
	for rows.Next() {
		var (
			hash             string
			realm, algorithm *string
			qualified        *bool
			sealed           []byte
		)
		if err := rows.Scan(&hash, &realm, &algorithm, &qualified, &sealed); err != nil {
			return nil, fail(op, err)
		}
		if creds == nil {
			creds = &identity.Credentials{PasswordHash: hash}
		}
		if realm != nil {
			creds.SIP = append(creds.SIP, identity.SIPCredential{
				Realm:     *realm,
				Algorithm: identity.DigestAlgorithm(*algorithm),
				Qualified: *qualified,
				Sealed:    nonNil(sealed),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fail(op, err)
	}
	if creds == nil {
		return nil, identity.E(op, identity.CodeNotFound, "user not found")
	}
	return creds, nil
}

// SetCredentials replaces, in one transaction, the password hash and every
// SIP credential of the user with id (nil creds clears both), and sets its
// TokenOnly flag and UpdatedAt. The UPDATE of the user row comes first: its
// row lock orders concurrent replacements of one user's credentials.
func (db *DB) SetCredentials(ctx context.Context, id string, creds *identity.Credentials, tokenOnly bool, updatedAt time.Time) error {
	const op = "postgres.SetCredentials"
	if err := checkCredentials(op, creds); err != nil {
		return err
	}
	var hash string
	if creds != nil {
		hash = creds.PasswordHash
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $1, token_only = $2, updated_at = $3 WHERE id = $4`,
			hash, tokenOnly, millis(updatedAt), id)
		if err != nil {
			return fail(op, err)
		}
		if tag.RowsAffected() == 0 {
			return identity.E(op, identity.CodeNotFound, "user not found")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sip_credentials WHERE user_id = $1`, id); err != nil {
			return fail(op, err)
		}
		return sendQueued(ctx, tx, op, queueSIPCredentials(nil, &identity.User{ID: id}, creds))
	})
}

// SetPasswordHash replaces only the password hash of the user with id (a
// rehash with new parameters): SIP credentials, flags and UpdatedAt stay.
func (db *DB) SetPasswordHash(ctx context.Context, id, phc string) error {
	return db.execOne(ctx, "postgres.SetPasswordHash", `UPDATE users SET password_hash = $1 WHERE id = $2`, phc, id)
}

// TouchLogin sets the LastLoginAt of the user with id to at (millisecond
// precision); a zero at clears it.
func (db *DB) TouchLogin(ctx context.Context, id string, at time.Time) error {
	return db.execOne(ctx, "postgres.TouchLogin", `UPDATE users SET last_login_at = $1 WHERE id = $2`, optMillis(at), id)
}
