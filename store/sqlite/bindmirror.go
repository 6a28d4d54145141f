package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"slices"

	"github.com/rvoip/users-core/sip"
	"github.com/rvoip/users-core/store/internal/bindplan"
)

// bindingMirror keeps, for the AoRs the committer updated recently, a copy
// of their rows in the bindings table exactly as the committer's SELECT
// would read them back, so that an UpdateBindings need not read them: a
// re-REGISTER, the common case, then costs only its writes. Under load
// that SELECT was about a third of the committer's time, and the
// committer is the one goroutine every binding update passes through.
//
// It is used only on the committer goroutine, inside a group's
// transaction, so it needs no lock. It must never hold a row the table
// does not, so it is emptied whenever anything else may have written:
//
//   - another connection (another process on the file, the CLI, a second
//     node on a shared file): PRAGMA data_version of the writer
//     connection changes when any other connection commits;
//   - this process outside the committer (expired-binding sweeps, a user
//     deleted with its bindings by trigger, any other write on the writer
//     connection): total_changes() of the writer connection moved between
//     the end of one group and the start of the next.
//
// Both are read once per group. A group's updates are staged and join the
// mirror only when the group commits; a failed commit empties it.
type bindingMirror struct {
	max   int
	check *sql.Stmt // SELECT total_changes(), data_version on the writer

	rows   map[string][]sip.Binding // committed, by AoR
	staged map[string][]sip.Binding // this group's, by AoR

	// At the end of the last committed group: the writer's
	// total_changes() and data_version; known is false when they could
	// not be read (the mirror then starts empty at the next group).
	changes, version int64
	known            bool
	pendingChanges   int64
	pendingKnown     bool
	usable           bool // the mirror may be read in this group

	hits, misses int64 // for tests and benchmarks
}

// bindingMirrorMax bounds the AoRs mirrored: at about 400 bytes per
// binding, some 40 MB with one binding each.
const bindingMirrorMax = 100_000

func (m *bindingMirror) prepare(ctx context.Context, w *sql.DB) error {
	m.max = bindingMirrorMax
	m.rows = map[string][]sip.Binding{}
	m.staged = map[string][]sip.Binding{}
	var err error
	m.check, err = w.PrepareContext(ctx, `SELECT total_changes(), data_version FROM pragma_data_version()`)
	return err
}

func (m *bindingMirror) close() error {
	if m.check == nil {
		return nil
	}
	return m.check.Close()
}

// begin starts a group on tx: the mirror is emptied when anything but the
// committer wrote since the last group.
func (m *bindingMirror) begin(ctx context.Context, tx *sql.Tx) {
	clear(m.staged)
	m.usable = false
	m.pendingKnown = false
	if m.check == nil {
		return
	}
	var changes, version int64
	if err := tx.StmtContext(ctx, m.check).QueryRowContext(ctx).Scan(&changes, &version); err != nil {
		clear(m.rows)
		m.known = false
		return
	}
	if !m.known || changes != m.changes || version != m.version {
		clear(m.rows)
	}
	m.changes, m.version, m.known = changes, version, true
	m.usable = true
}

// get returns the rows of aor, sorted as the committer's SELECT sorts them
// (created_at, then id). The slice must not be changed.
func (m *bindingMirror) get(aor string) ([]sip.Binding, bool) {
	if !m.usable {
		return nil, false
	}
	if bs, ok := m.staged[aor]; ok {
		m.hits++
		return bs, true
	}
	if bs, ok := m.rows[aor]; ok {
		m.hits++
		return bs, true
	}
	m.misses++
	return nil, false
}

// stage records next, fn's result that an update of aor just wrote, as
// the rows aor now has in the transaction.
func (m *bindingMirror) stage(aor string, next []sip.Binding) {
	if !m.usable {
		return
	}
	rows, ok := asStored(next)
	if !ok {
		delete(m.rows, aor)
		delete(m.staged, aor)
		return
	}
	m.staged[aor] = rows
}

// end is called in the group's transaction after its last update, before
// COMMIT: it reads the writer's change count, which the group's own writes
// moved.
func (m *bindingMirror) end(ctx context.Context, tx *sql.Tx) {
	if !m.usable {
		return
	}
	var changes, version int64
	if err := tx.StmtContext(ctx, m.check).QueryRowContext(ctx).Scan(&changes, &version); err != nil {
		return
	}
	m.pendingChanges, m.pendingKnown = changes, true
}

// committed ends a group: ok tells whether its COMMIT succeeded.
func (m *bindingMirror) committed(ok bool) {
	if !ok || !m.usable || !m.pendingKnown {
		clear(m.rows)
		clear(m.staged)
		m.known = false
		m.usable = false
		return
	}
	for aor, rows := range m.staged {
		if _, have := m.rows[aor]; !have && len(m.rows) >= m.max {
			for k := range m.rows { // evict one, at random
				delete(m.rows, k)
				break
			}
		}
		m.rows[aor] = rows
	}
	clear(m.staged)
	m.changes = m.pendingChanges
	m.usable = false
}

// asStored returns bs as the table holds them after they are written:
// times at millisecond precision in UTC, Path as EncodePath and DecodePath
// leave it, sorted by CreatedAt, then ID. ok is false when a Path cannot
// be encoded (the write would have failed).
func asStored(bs []sip.Binding) ([]sip.Binding, bool) {
	out := make([]sip.Binding, len(bs))
	for i, b := range bs {
		b.ExpiresAt, b.CreatedAt, b.UpdatedAt = fromMillis(millis(b.ExpiresAt)), fromMillis(millis(b.CreatedAt)), fromMillis(millis(b.UpdatedAt))
		if len(b.Path) == 0 {
			b.Path = nil
		} else {
			enc, err := bindplan.EncodePath(b.Path)
			if err != nil {
				return nil, false
			}
			if b.Path, err = bindplan.DecodePath([]byte(enc)); err != nil {
				return nil, false
			}
		}
		out[i] = b
	}
	slices.SortFunc(out, func(a, b sip.Binding) int {
		if c := cmp.Compare(a.CreatedAt.UnixMilli(), b.CreatedAt.UnixMilli()); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, true
}
