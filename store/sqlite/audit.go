package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/rvoip/users-core/identity"
	pagination "github.com/rvoip/users-core/store/internal/page"
)

// DB keeps the audit trail.
var _ identity.AuditStore = (*DB)(nil)

// pruneChunk is how many audit rows one PruneAudit transaction deletes at
// most: a backlog of millions then never holds the writer, which logins
// and registrations wait for, longer than a few milliseconds at a time.
const pruneChunk = 5000

// AppendAudit stores events in one write transaction, with ids ascending
// in slice order.
func (db *DB) AppendAudit(ctx context.Context, events []identity.Event) error {
	const op = "sqlite.AppendAudit"
	if len(events) == 0 {
		return nil
	}
	return db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (at, action, actor, subject, source, outcome, detail)
	VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return storeErr(op, err)
		}
		defer stmt.Close()
		for _, e := range events {
			if _, err := stmt.ExecContext(ctx, millis(e.Time), e.Action, e.Actor, e.Subject, e.Source, e.Outcome, e.Detail); err != nil {
				return storeErr(op, err)
			}
		}
		return nil
	})
}

// ListAudit returns one page of the records matching f, newest first. The
// cursor (AuditPage.Next, AuditFilter.After) is the base64url-encoded id of
// the last record of the previous page: the next page holds the matching
// records with smaller ids, so pages neither overlap nor skip records
// while new ones are appended. A malformed cursor matches
// identity.ErrInvalid.
func (db *DB) ListAudit(ctx context.Context, f identity.AuditFilter) (identity.AuditPage, error) {
	const op = "sqlite.ListAudit"
	limit := pagination.Size(f.Limit)

	var (
		conds []string
		args  []any
	)
	if f.After != "" {
		id, ok := pagination.ParseAuditCursor(f.After)
		if !ok {
			return identity.AuditPage{}, identity.Invalid(op, "after", "invalid page cursor")
		}
		conds = append(conds, `id < ?`)
		args = append(args, id)
	}
	for _, c := range []struct{ column, value string }{
		{"action", f.Action}, {"actor", f.Actor}, {"subject", f.Subject}, {"source", f.Source}, {"outcome", f.Outcome},
	} {
		if c.value != "" {
			conds = append(conds, c.column+` = ?`)
			args = append(args, c.value)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, `at >= ?`)
		args = append(args, millis(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, `at < ?`)
		args = append(args, millis(f.Until))
	}
	query := `SELECT id, at, action, actor, subject, source, outcome, detail FROM audit_events`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1) // one more tells whether a next page exists

	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return identity.AuditPage{}, storeErr(op, err)
	}
	defer rows.Close()
	var page identity.AuditPage
	for rows.Next() {
		var (
			r  identity.AuditRecord
			at int64
		)
		if err := rows.Scan(&r.ID, &at, &r.Action, &r.Actor, &r.Subject, &r.Source, &r.Outcome, &r.Detail); err != nil {
			return identity.AuditPage{}, storeErr(op, err)
		}
		r.Time = fromMillis(at)
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return identity.AuditPage{}, storeErr(op, err)
	}
	if len(page.Records) > limit {
		page.Records = page.Records[:limit]
		page.Next = pagination.AuditCursor(page.Records[limit-1].ID)
	}
	return page, nil
}

// PruneAudit deletes the records of events before before, oldest first, in
// transactions of at most pruneChunk rows, and returns how many went. When
// ctx ends between transactions it returns what was deleted so far with
// ctx's error.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	const op = "sqlite.PruneAudit"
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, storeErr(op, err)
		}
		var n int64
		err := db.inWriteTx(ctx, op, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id IN (
	SELECT id FROM audit_events WHERE at < ? ORDER BY at LIMIT ?)`, millis(before), pruneChunk)
			if err != nil {
				return storeErr(op, err)
			}
			n, err = res.RowsAffected()
			if err != nil {
				return storeErr(op, err)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < pruneChunk {
			return total, nil
		}
	}
}
