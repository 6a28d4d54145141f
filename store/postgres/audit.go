package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rvoip/users-core/identity"
	pagination "github.com/rvoip/users-core/store/internal/page"
)

// DB keeps the audit trail.
var _ identity.AuditStore = (*DB)(nil)

// pruneChunk is how many audit rows one PruneAudit transaction deletes at
// most, so that a backlog of millions never holds locks or a transaction
// open for long.
const pruneChunk = 5000

// AppendAudit stores events in one transaction, with ids ascending in slice
// order. Appends from every node are serialized by a transaction advisory
// lock taken before the first id is drawn: ids then become visible in
// ascending order, which is what lets ListAudit's cursor (an id) never
// skip a record. Without it, a transaction that drew smaller ids could
// commit after a reader paged past them. The Auditor appends in batches,
// so the lock is taken a few times a second per node at most.
func (db *DB) AppendAudit(ctx context.Context, events []identity.Event) error {
	const op = "postgres.AppendAudit"
	if len(events) == 0 {
		return nil
	}
	return db.inTx(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockClassAudit); err != nil {
			return fail(op, err)
		}
		// COPY reads the rows in order and draws each id as it inserts.
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"},
			[]string{"at", "action", "actor", "subject", "source", "outcome", "detail"},
			pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
				e := &events[i]
				return []any{millis(e.Time), e.Action, e.Actor, e.Subject, e.Source, e.Outcome, e.Detail}, nil
			}))
		if err != nil {
			return fail(op, err)
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
	const op = "postgres.ListAudit"
	limit := pagination.Size(f.Limit)

	var (
		conds []string
		args  params
	)
	if f.After != "" {
		id, ok := pagination.ParseAuditCursor(f.After)
		if !ok {
			return identity.AuditPage{}, identity.Invalid(op, "after", "invalid page cursor")
		}
		conds = append(conds, `id < `+args.add(id))
	}
	for _, c := range []struct{ column, value string }{
		{"action", f.Action}, {"actor", f.Actor}, {"subject", f.Subject}, {"source", f.Source}, {"outcome", f.Outcome},
	} {
		if c.value != "" {
			conds = append(conds, c.column+` = `+args.add(c.value))
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, `at >= `+args.add(millis(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, `at < `+args.add(millis(f.Until)))
	}
	query := `SELECT id, at, action, actor, subject, source, outcome, detail FROM audit_events`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY id DESC LIMIT ` + args.add(limit+1) // one more tells whether a next page exists

	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return identity.AuditPage{}, fail(op, err)
	}
	defer rows.Close()
	var page identity.AuditPage
	for rows.Next() {
		var (
			r  identity.AuditRecord
			at int64
		)
		if err := rows.Scan(&r.ID, &at, &r.Action, &r.Actor, &r.Subject, &r.Source, &r.Outcome, &r.Detail); err != nil {
			return identity.AuditPage{}, fail(op, err)
		}
		r.Time = fromMillis(at)
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return identity.AuditPage{}, fail(op, err)
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
	const op = "postgres.PruneAudit"
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, identity.Internal(op, err)
		}
		n, err := db.exec(ctx, op, `DELETE FROM audit_events WHERE id IN (
	SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)`, millis(before), pruneChunk)
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < pruneChunk {
			return total, nil
		}
	}
}
