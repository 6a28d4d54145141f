package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store/internal/bindplan"
	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DB persists registrar bindings, so that registrations survive a restart
// and every process on one database file sees the same ones.
var _ sip.BindingStore = (*DB)(nil)

// bindingColumns selects a bindings row in the order scanBinding reads it,
// and names the columns the insert statement writes, in the order of
// bindingArgs.
const bindingColumns = `id, aor, user_id, contact, contact_key, q, instance, reg_id, call_id, cseq, path,
	expires_at, created_at, updated_at, source, transport, local_addr, user_agent, node`

// expiredBatch is how many expired bindings DeleteExpiredBindings deletes
// per write transaction, so that a large sweep (after a long outage) does
// not hold the single writer, and with it every REGISTER, for long.
const expiredBatch = 1000

// bindingStmts are the prepared statements of the bindings table. current
// runs on the reader pool. The others are prepared on the writer's single
// connection and bound into each UpdateBindings transaction with
// Tx.StmtContext, which reuses the statement already prepared on that
// connection: the REGISTER path then never parses SQL.
type bindingStmts struct {
	current *sql.Stmt // reader: unexpired bindings of an AoR, sorted

	ofAoR  *sql.Stmt // writer: every binding of an AoR, expired ones too
	insert *sql.Stmt
	// refresh rewrites every column but id, aor, user_id and contact_key;
	// update also user_id. UPDATE rewrites the entries of every index on a
	// column it assigns, even to an equal value, and each rewritten index
	// page is one more page in the WAL at commit: a re-REGISTER, the common
	// case, changes neither column, so refresh leaves those two indexes
	// alone. A changed contact_key is a delete and an insert (see
	// bindplan.Writes), never an update. renew writes the four columns of
	// a renewal (bindplan.Renewal) alone.
	renew   *sql.Stmt
	refresh *sql.Stmt
	update  *sql.Stmt
	del     *sql.Stmt
}

// prepare prepares the statements on the reader pool r and the writer w.
func (s *bindingStmts) prepare(ctx context.Context, r, w *sql.DB) error {
	var err error
	if s.current, err = r.PrepareContext(ctx, `SELECT `+bindingColumns+` FROM bindings
	WHERE aor = ? AND expires_at > ? ORDER BY created_at, id`); err != nil {
		return err
	}
	if s.ofAoR, err = w.PrepareContext(ctx, `SELECT `+bindingColumns+` FROM bindings
	WHERE aor = ? ORDER BY created_at, id`); err != nil {
		return err
	}
	// sweep_at starts at expires_at (migrations/0010_binding_sweep.sql).
	if s.insert, err = w.PrepareContext(ctx, `INSERT INTO bindings (`+bindingColumns+`, sweep_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?12)`); err != nil {
		return err
	}
	// The parameters are numbered after bindingArgs; id and aor only select
	// the row: UpdateBindings never moves a binding to another AoR.
	const set = `contact = ?4, q = ?6, instance = ?7, reg_id = ?8, call_id = ?9,
	cseq = ?10, path = ?11, expires_at = ?12, sweep_at = ?12, created_at = ?13, updated_at = ?14, source = ?15,
	transport = ?16, local_addr = ?17, user_agent = ?18, node = ?19`
	if s.refresh, err = w.PrepareContext(ctx, `UPDATE bindings SET `+set+`
	WHERE id = ?1 AND aor = ?2 AND user_id = ?3 AND contact_key = ?5`); err != nil {
		return err
	}
	// A renewal (bindplan.Renewal) rewrites four columns: fewer values to
	// bind and encode, no CHECK on path to evaluate, and sweep_at, the
	// only indexed column a refresh used to change, stays (the expiry
	// only moves later).
	if s.renew, err = w.PrepareContext(ctx, `UPDATE bindings SET call_id = ?3, cseq = ?4,
	expires_at = ?5, updated_at = ?6 WHERE id = ?1 AND aor = ?2`); err != nil {
		return err
	}
	if s.update, err = w.PrepareContext(ctx, `UPDATE bindings SET user_id = ?3, `+set+`
	WHERE id = ?1 AND aor = ?2 AND contact_key = ?5`); err != nil {
		return err
	}
	s.del, err = w.PrepareContext(ctx, `DELETE FROM bindings WHERE id = ?`)
	return err
}

// close closes the statements that were prepared.
func (s *bindingStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.current, s.ofAoR, s.insert, s.renew, s.refresh, s.update, s.del} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// scanBinding reads a row selected with bindingColumns.
func scanBinding(s rowScanner) (sip.Binding, error) {
	var (
		b                         sip.Binding
		q, regID, cseq            int64
		expires, created, updated int64
		path                      []byte
	)
	if err := s.Scan(&b.ID, &b.AoR, &b.UserID, &b.Contact, &b.ContactKey, &q, &b.Instance, &regID,
		&b.CallID, &cseq, &path, &expires, &created, &updated,
		&b.Source, &b.Transport, &b.LocalAddr, &b.UserAgent, &b.Node); err != nil {
		return sip.Binding{}, err
	}
	b.Q, b.RegID, b.CSeq = int(q), int(regID), uint32(cseq)
	b.ExpiresAt, b.CreatedAt, b.UpdatedAt = fromMillis(expires), fromMillis(created), fromMillis(updated)
	var err error
	b.Path, err = bindplan.DecodePath(path)
	return b, err
}

// bindingArgs returns the values of b in bindingColumns order. path is b's
// Path, already encoded with bindplan.EncodePath.
func bindingArgs(b *sip.Binding, path string) []any {
	return []any{b.ID, b.AoR, b.UserID, b.Contact, b.ContactKey, int64(b.Q), b.Instance, int64(b.RegID),
		b.CallID, int64(b.CSeq), path, millis(b.ExpiresAt), millis(b.CreatedAt), millis(b.UpdatedAt),
		b.Source, b.Transport, b.LocalAddr, b.UserAgent, b.Node}
}

// queryBindings runs stmt, a SELECT of bindingColumns, with args and reads
// every row.
func queryBindings(ctx context.Context, stmt *sql.Stmt, args ...any) ([]sip.Binding, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sip.Binding
	for rows.Next() {
		b, err := scanBinding(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// UpdateBindings runs one registrar update of aor in one write transaction:
// it reads aor's bindings, passes those not expired at now to fn (sorted by
// CreatedAt, then ID; fn may modify them freely) and makes fn's result the
// complete set of aor's bindings. Bindings of aor missing from the result
// are deleted, expired ones included; returned bindings that differ from
// the stored ones are written, equal ones are left alone. BEGIN IMMEDIATE
// takes the write lock before the read, so concurrent updates, in this
// process or another on the same file, run one after the other and none is
// lost.
//
// An error from fn is returned unchanged and nothing is written. A result
// with a binding of another AoR, one without an ID, or two with one ID
// matches identity.ErrInvalid; two bindings with one ContactKey, or an ID
// that belongs to another AoR's binding, identity.ErrConflict; either
// changes nothing. On success it returns fn's result as fn returned it.
//
// fn runs inside the transaction, which holds the only writer connection:
// it must not call this DB's write methods (reads are fine), and should be
// quick, since every other write waits for it.
//
// Updates are group-committed (commit.go): the updates waiting when the
// writer becomes free share one transaction, each under its own savepoint,
// so one fsync acknowledges them all. UpdateBindings returns only after
// that commit, so an acknowledged update is durable. When ctx ends while
// the update is still queued, it is withdrawn and never applied.
func (db *DB) UpdateBindings(ctx context.Context, aor string, now time.Time, fn func(current []sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	const op = "sqlite.UpdateBindings"
	if aor == "" {
		return nil, identity.Invalid(op, "aor", "address-of-record is empty")
	}
	if fn == nil {
		return nil, identity.Invalid(op, "fn", "update function is nil")
	}
	var out []sip.Binding
	err := db.commits.submit(ctx, op, func(ctx context.Context, tx *sql.Tx, protect func() error) error {
		var err error
		out, err = db.applyBindings(ctx, tx, protect, aor, now, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyBindings is one UpdateBindings inside tx, the writer's transaction
// (see UpdateBindings for the contract), protect its savepoint (applyFunc).
// ctx bounds the statements.
func (db *DB) applyBindings(ctx context.Context, tx *sql.Tx, protect func() error, aor string, now time.Time, fn func(current []sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	next, err := db.writeBindings(ctx, tx, protect, aor, now, fn)
	if err != nil {
		return nil, err
	}
	db.commits.mirror.stage(aor, next)
	return next, nil
}

// writeBindings reads the bindings of aor (from the mirror when it has
// them), runs fn and makes its writes. A re-REGISTER makes one statement,
// without a savepoint (see applyFunc): a failure of that statement other
// than on a constraint is reported with errTxLost.
func (db *DB) writeBindings(ctx context.Context, tx *sql.Tx, protect func() error, aor string, now time.Time, fn func(current []sip.Binding) ([]sip.Binding, error)) (_ []sip.Binding, err error) {
	const op = "sqlite.UpdateBindings"
	all, ok := db.commits.mirror.get(aor)
	if !ok {
		var err error
		if all, err = queryBindings(ctx, tx.StmtContext(ctx, db.bindings.ofAoR), aor); err != nil {
			return nil, storeErr(op, err)
		}
	}
	plan, next, err := bindplan.Plan(op, aor, now, all, fn)
	if err != nil {
		return nil, err
	}
	// A changed binding of the same user is a refresh, which leaves the
	// user_id index alone (see bindingStmts); a renewal writes only the
	// four columns that changed.
	var renew, refresh, update []*sip.Binding
	for _, u := range plan.Update {
		switch {
		case bindplan.Renewal(u.Old, u.New):
			renew = append(renew, u.New)
		case u.Old.UserID != u.New.UserID:
			update = append(update, u.New)
		default:
			refresh = append(refresh, u.New)
		}
	}
	if len(plan.Drop)+len(plan.Update)+len(plan.Insert) > 1 {
		if err := protect(); err != nil {
			return nil, storeErr(op, err)
		}
	} else {
		defer func() {
			if isTxLost(err) {
				err = identity.Internal(op, errors.Join(errTxLost, err))
			}
		}()
	}

	if len(plan.Drop) > 0 {
		del := tx.StmtContext(ctx, db.bindings.del)
		for _, id := range plan.Drop {
			if _, err := del.ExecContext(ctx, id); err != nil {
				return nil, storeErr(op, err)
			}
		}
	}
	if len(renew) > 0 {
		stmt := tx.StmtContext(ctx, db.bindings.renew)
		for _, b := range renew {
			if err := renewBinding(ctx, stmt, op, b); err != nil {
				return nil, err
			}
		}
	}
	for _, w := range []struct {
		stmt *sql.Stmt
		bs   []*sip.Binding
	}{{db.bindings.refresh, refresh}, {db.bindings.update, update}, {db.bindings.insert, plan.Insert}} {
		if len(w.bs) == 0 {
			continue
		}
		stmt := tx.StmtContext(ctx, w.stmt)
		for _, b := range w.bs {
			if err := writeBinding(ctx, stmt, op, b); err != nil {
				return nil, err
			}
		}
	}
	return next, nil
}

// isTxLost reports whether err is a failed statement that may have rolled
// back its whole transaction: any SQLite error but a constraint's, and a
// trigger's RAISE too (RAISE(ROLLBACK) ends the transaction).
func isTxLost(err error) bool {
	var e *moderncsqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff != sqlite3.SQLITE_CONSTRAINT || e.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER)
}

// renewBinding runs the renewal statement for b, which must write exactly
// one row (see writeBinding).
func renewBinding(ctx context.Context, stmt *sql.Stmt, op string, b *sip.Binding) error {
	res, err := stmt.ExecContext(ctx, b.ID, b.AoR, b.CallID, int64(b.CSeq), millis(b.ExpiresAt), millis(b.UpdatedAt))
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			err = fmt.Errorf("binding %q: %d rows renewed, want 1", b.ID, n)
		}
	}
	if err != nil {
		return storeErr(op, err)
	}
	return nil
}

// writeBinding runs stmt, the insert or one of the update statements, for
// b and maps constraint violations to identity errors. The statement must
// write exactly one row: an update that matches none (its row changed
// under the transaction, which the write lock rules out) is an internal
// error, not a silent no-op.
func writeBinding(ctx context.Context, stmt *sql.Stmt, op string, b *sip.Binding) error {
	path, err := bindplan.EncodePath(b.Path)
	if err != nil {
		return storeErr(op, err)
	}
	res, err := stmt.ExecContext(ctx, bindingArgs(b, path)...)
	if err == nil {
		n, err := res.RowsAffected()
		if err == nil && n != 1 {
			err = fmt.Errorf("binding %q: %d rows written, want 1", b.ID, n)
		}
		if err != nil {
			return storeErr(op, err)
		}
		return nil
	}
	var e *moderncsqlite.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return identity.E(op, identity.CodeConflict, "binding id %q belongs to another address-of-record", b.ID)
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return identity.E(op, identity.CodeConflict, "two bindings of %q for contact %q", b.AoR, b.ContactKey)
		}
	}
	return storeErr(op, err)
}

// Bindings returns the bindings of aor not expired at now (ExpiresAt after
// now), sorted by CreatedAt, then ID. It reads on the reader pool and never
// waits for the writer.
func (db *DB) Bindings(ctx context.Context, aor string, now time.Time) ([]sip.Binding, error) {
	const op = "sqlite.Bindings"
	bs, err := queryBindings(ctx, db.bindings.current, aor, millis(now))
	if err != nil {
		return nil, storeErr(op, err)
	}
	return bs, nil
}

// DeleteExpiredBindings deletes the bindings that expired before before
// (ExpiresAt earlier than before) and returns how many went. It walks the
// index on sweep_at below before: the renewed bindings found there get
// sweep_at = expires_at, the expired ones are deleted (see
// migrations/0010_binding_sweep.sql). It works in batches of expiredBatch
// rows, one write transaction each, so that registrations are not held up
// by a large sweep; an error stops it with the earlier batches done.
func (db *DB) DeleteExpiredBindings(ctx context.Context, before time.Time) (int, error) {
	const op = "sqlite.DeleteExpiredBindings"
	for {
		n, err := db.sweepBatch(ctx, rehintBindingsSQL, before)
		if err != nil {
			return 0, storeErr(op, err)
		}
		if n < expiredBatch {
			break
		}
	}
	var total int64
	for {
		n, err := db.sweepBatch(ctx, deleteExpiredBindingsSQL, before)
		if err != nil {
			return int(total), storeErr(op, err)
		}
		total += n
		if n < expiredBatch {
			return int(total), nil
		}
	}
}

// The statements of DeleteExpiredBindings and CountBindings, which range
// over the sweep_at index (TestBindingQueriesUseTheirIndexes).
const (
	rehintBindingsSQL = `UPDATE bindings SET sweep_at = expires_at WHERE id IN (
	SELECT id FROM bindings WHERE sweep_at < ?1 AND expires_at >= ?1 LIMIT ?2)`
	deleteExpiredBindingsSQL = `DELETE FROM bindings WHERE id IN (
	SELECT id FROM bindings WHERE sweep_at < ?1 AND expires_at < ?1 LIMIT ?2)`
	// Every binding but the expired ones, which all lie in the range of
	// the sweep_at index up to now: no scan of the table.
	countBindingsSQL = `SELECT (SELECT count(*) FROM bindings) -
	(SELECT count(*) FROM bindings WHERE sweep_at <= ?1 AND expires_at <= ?1)`
)

// sweepBatch runs one batch statement of DeleteExpiredBindings, with
// before and expiredBatch as its parameters, and returns the rows it
// changed.
func (db *DB) sweepBatch(ctx context.Context, query string, before time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx, query, millis(before), expiredBatch)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// CountBindings returns the number of bindings, of every AoR, not expired
// at now.
func (db *DB) CountBindings(ctx context.Context, now time.Time) (int, error) {
	const op = "sqlite.CountBindings"
	var n int
	if err := db.r.QueryRowContext(ctx, countBindingsSQL, millis(now)).Scan(&n); err != nil {
		return 0, storeErr(op, err)
	}
	return n, nil
}
