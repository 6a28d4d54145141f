package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store/internal/bindplan"
)

// DB persists registrar bindings, so that registrations survive a restart
// and every node on the database sees the same ones.
var _ sip.BindingStore = (*DB)(nil)

// bindingColumns selects a bindings row in the order scanBinding reads it,
// and names the columns the insert statement writes, in the order of
// bindingArgs.
const bindingColumns = `id, aor, user_id, contact, contact_key, q, instance, reg_id, call_id, cseq, path,
	expires_at, created_at, updated_at, source, transport, local_addr, user_agent, node`

// The statements that write one binding, with the parameters of
// bindingArgs. The update selects the row by id, aor and contact_key:
// UpdateBindings never moves a binding to another AoR, and a changed
// contact_key is a delete and an insert (see bindplan.Writes).
// Both set sweep_at to the expiry (migrations/0010_binding_sweep.sql).
const (
	insertBindingSQL = `INSERT INTO bindings (` + bindingColumns + `, sweep_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $12)`
	updateBindingSQL = `UPDATE bindings SET user_id = $3, contact = $4, q = $6, instance = $7, reg_id = $8,
	call_id = $9, cseq = $10, path = $11, expires_at = $12, sweep_at = $12, created_at = $13, updated_at = $14,
	source = $15, transport = $16, local_addr = $17, user_agent = $18, node = $19
	WHERE id = $1 AND aor = $2 AND contact_key = $5`
)

// renewBindingSQL writes a renewal (bindplan.Renewal): no indexed column
// changes, so PostgreSQL can make it a HOT update, and sweep_at stays a
// lower bound of the expiry, which only moves later.
const renewBindingSQL = `UPDATE bindings SET call_id = $3, cseq = $4, expires_at = $5, updated_at = $6
	WHERE id = $1 AND aor = $2`

// The constraints of the bindings table whose violation UpdateBindings
// explains (migrations/0003_bindings.sql).
const (
	conBindingsPkey    = "bindings_pkey"
	conBindingsContact = "bindings_aor_contact_key"
)

// expiredBatch is how many expired bindings DeleteExpiredBindings deletes
// per statement, so that a large sweep (after a long outage) holds no
// transaction open for long.
const expiredBatch = 1000

// scanBinding reads a row selected with bindingColumns.
func scanBinding(s rowScanner) (sip.Binding, error) {
	var (
		b                         sip.Binding
		q, regID, cseq            int64
		expires, created, updated int64
		path                      string
	)
	if err := s.Scan(&b.ID, &b.AoR, &b.UserID, &b.Contact, &b.ContactKey, &q, &b.Instance, &regID,
		&b.CallID, &cseq, &path, &expires, &created, &updated,
		&b.Source, &b.Transport, &b.LocalAddr, &b.UserAgent, &b.Node); err != nil {
		return sip.Binding{}, err
	}
	b.Q, b.RegID, b.CSeq = int(q), int(regID), uint32(cseq)
	b.ExpiresAt, b.CreatedAt, b.UpdatedAt = fromMillis(expires), fromMillis(created), fromMillis(updated)
	var err error
	b.Path, err = bindplan.DecodePath([]byte(path))
	return b, err
}

// bindingArgs returns the values of b in bindingColumns order. path is b's
// Path, already encoded with bindplan.EncodePath.
func bindingArgs(b *sip.Binding, path string) []any {
	return []any{b.ID, b.AoR, b.UserID, b.Contact, b.ContactKey, int64(b.Q), b.Instance, int64(b.RegID),
		b.CallID, int64(b.CSeq), path, millis(b.ExpiresAt), millis(b.CreatedAt), millis(b.UpdatedAt),
		b.Source, b.Transport, b.LocalAddr, b.UserAgent, b.Node}
}

// queryBindings runs query, a SELECT of bindingColumns, with args on q and
// reads every row.
func queryBindings(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, query string, args ...any) ([]sip.Binding, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanBindings(rows)
}

// scanBindings reads every row of rows, a SELECT of bindingColumns, and
// closes it.
func scanBindings(rows pgx.Rows) ([]sip.Binding, error) {
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

// UpdateBindings runs one registrar update of aor in one transaction: it
// reads aor's bindings, passes those not expired at now to fn (sorted by
// CreatedAt, then ID; fn may modify them freely) and makes fn's result the
// complete set of aor's bindings. Bindings of aor missing from the result
// are deleted, expired ones included; returned bindings that differ from
// the stored ones are written, equal ones are left alone.
//
// Concurrent updates of one AoR, from any pool on any node, run one after
// the other and none is lost: the transaction first takes an advisory lock
// on a hash of aor (held until it ends; a lock on rows would not cover the
// first binding of an AoR, which does not exist yet), then reads the
// bindings with FOR UPDATE, so that neither DeleteExpiredBindings nor the
// deletion of a user removes a binding between the read and the write.
// The begin, the lock and the read travel in one round trip, the writes in
// a second, the commit in a third.
//
// An error from fn is returned unchanged and nothing is written. A result
// with a binding of another AoR, one without an ID, or two with one ID
// matches identity.ErrInvalid; two bindings with one ContactKey, or an ID
// that belongs to another AoR's binding, identity.ErrConflict; either
// changes nothing. On success it returns fn's result as fn returned it.
//
// fn runs inside the transaction, holding the AoR's lock: it must not call
// this DB, and should be quick, since every other update of the AoR waits
// for it. It may run more than once when PostgreSQL aborts the transaction
// for a deadlock (with a concurrent user deletion, say); only the last
// run's result is written.
func (db *DB) UpdateBindings(ctx context.Context, aor string, now time.Time, fn func(current []sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	const op = "postgres.UpdateBindings"
	if aor == "" {
		return nil, identity.Invalid(op, "aor", "address-of-record is empty")
	}
	if fn == nil {
		return nil, identity.Invalid(op, "fn", "update function is nil")
	}
	var out []sip.Binding
	err := retry(ctx, func() error {
		var err error
		out, err = db.updateBindings(ctx, op, aor, now, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// updateBindings is one run of UpdateBindings' transaction.
func (db *DB) updateBindings(ctx context.Context, op, aor string, now time.Time, fn func([]sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	var all []sip.Binding
	read := &pgx.Batch{}
	read.BeginTx(pgx.TxOptions{})
	read.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClassBindings, aor)
	read.Queue(`SELECT `+bindingColumns+` FROM bindings WHERE aor = $1 ORDER BY created_at, id FOR UPDATE`, aor).
		Query(func(rows pgx.Rows) error {
			var err error
			all, err = scanBindings(rows)
			return err
		})
	br := db.pool.SendBatch(ctx, read)
	tx := br.Tx()
	// The pool's transaction holds the connection until it ends: roll back
	// on every path that does not commit (after a commit this is a no-op).
	defer tx.Rollback(ctx)
	if err := br.Close(); err != nil {
		return nil, fail(op, err)
	}

	plan, next, err := bindplan.Plan(op, aor, now, all, fn)
	if err != nil {
		return nil, err
	}
	if !plan.Empty() {
		if err := writeBindings(ctx, tx, op, &plan); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fail(op, err)
	}
	return next, nil
}

// writeBindings makes the writes p on tx, in one batch: the deletions, then
// the updates, then the inserts. Every update and insert must write
// exactly one row: an update that matches none (its row changed under the
// transaction, which the row locks rule out) is an internal error, not a
// silent no-op. Constraint violations are mapped to identity errors.
func writeBindings(ctx context.Context, tx pgx.Tx, op string, p *bindplan.Writes) error {
	type write struct {
		b   *sip.Binding
		sql string
	}
	var ws []write
	for _, u := range p.Update {
		if bindplan.Renewal(u.Old, u.New) {
			ws = append(ws, write{u.New, renewBindingSQL})
		} else {
			ws = append(ws, write{u.New, updateBindingSQL})
		}
	}
	for _, b := range p.Insert {
		ws = append(ws, write{b, insertBindingSQL})
	}
	batch := &pgx.Batch{}
	if len(p.Drop) > 0 {
		batch.Queue(`DELETE FROM bindings WHERE id = ANY($1)`, p.Drop)
	}
	for _, w := range ws {
		if w.sql == renewBindingSQL {
			batch.Queue(w.sql, w.b.ID, w.b.AoR, w.b.CallID, int64(w.b.CSeq), millis(w.b.ExpiresAt), millis(w.b.UpdatedAt))
			continue
		}
		path, err := bindplan.EncodePath(w.b.Path)
		if err != nil {
			return identity.Internal(op, err)
		}
		batch.Queue(w.sql, bindingArgs(w.b, path)...)
	}
	br := tx.SendBatch(ctx, batch)
	defer br.Close()
	if len(p.Drop) > 0 {
		if _, err := br.Exec(); err != nil {
			return fail(op, err)
		}
	}
	for _, w := range ws {
		tag, err := br.Exec()
		if err != nil {
			switch constraint(err) {
			case conBindingsPkey:
				return identity.E(op, identity.CodeConflict, "binding id %q belongs to another address-of-record", w.b.ID)
			case conBindingsContact:
				return identity.E(op, identity.CodeConflict, "two bindings of %q for contact %q", w.b.AoR, w.b.ContactKey)
			}
			return fail(op, err)
		}
		if n := tag.RowsAffected(); n != 1 {
			return identity.Internal(op, fmt.Errorf("binding %q: %d rows written, want 1", w.b.ID, n))
		}
	}
	if err := br.Close(); err != nil {
		return fail(op, err)
	}
	return nil
}

// Bindings returns the bindings of aor not expired at now (ExpiresAt after
// now), sorted by CreatedAt, then ID. It takes no lock and never waits for
// an update in progress: it sees the last committed bindings.
func (db *DB) Bindings(ctx context.Context, aor string, now time.Time) ([]sip.Binding, error) {
	const op = "postgres.Bindings"
	bs, err := queryBindings(ctx, db.pool, `SELECT `+bindingColumns+` FROM bindings
	WHERE aor = $1 AND expires_at > $2 ORDER BY created_at, id`, aor, millis(now))
	if err != nil {
		return nil, fail(op, err)
	}
	return bs, nil
}

// DeleteExpiredBindings deletes the bindings that expired before before
// (ExpiresAt earlier than before) and returns how many went. It walks the
// index on sweep_at below before: the renewed bindings found there get
// sweep_at = expires_at, the expired ones are deleted (see
// migrations/0010_binding_sweep.sql). It works in batches of expiredBatch
// rows, one statement each; an error stops it with the earlier batches
// done. The conditions are stated on the changed row itself, not only in
// the subquery that picks the batch: a binding refreshed by a concurrent
// REGISTER while this waited for its row lock is re-checked against its
// new expiry.
func (db *DB) DeleteExpiredBindings(ctx context.Context, before time.Time) (int, error) {
	const op = "postgres.DeleteExpiredBindings"
	for {
		n, err := db.exec(ctx, op, `UPDATE bindings SET sweep_at = expires_at
	WHERE sweep_at < $1 AND expires_at >= $1 AND id IN (
	SELECT id FROM bindings WHERE sweep_at < $1 AND expires_at >= $1 LIMIT $2)`, millis(before), expiredBatch)
		if err != nil {
			return 0, err
		}
		if n < expiredBatch {
			break
		}
	}
	var total int64
	for {
		n, err := db.exec(ctx, op, `DELETE FROM bindings WHERE sweep_at < $1 AND expires_at < $1 AND id IN (
	SELECT id FROM bindings WHERE sweep_at < $1 AND expires_at < $1 LIMIT $2)`, millis(before), expiredBatch)
		if err != nil {
			return int(total), err
		}
		total += n
		if n < expiredBatch {
			return int(total), nil
		}
	}
}

// CountBindings returns the number of bindings, of every AoR, not expired
// at now.
func (db *DB) CountBindings(ctx context.Context, now time.Time) (int, error) {
	const op = "postgres.CountBindings"
	var n int
	// Every binding but the expired ones, which all lie in the range of
	// the sweep_at index up to now.
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bindings) -
	(SELECT count(*) FROM bindings WHERE sweep_at <= $1 AND expires_at <= $1)`, millis(now)).Scan(&n); err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}
