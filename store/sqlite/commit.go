package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rvoip/users-core/sip"
)

// Group commit of binding updates.
//
// With synchronous=FULL every commit waits for an fsync of the WAL, which
// costs far more than the statements of one registrar update. The
// committer is one goroutine that owns the binding writes: it takes every
// update waiting in its queue (up to maxGroup), applies each in one write
// transaction under its own savepoint, commits once and then answers them
// all. While one group's fsync runs, the next group gathers, so the number
// of fsyncs per second stays near the disk's rate whatever the REGISTER
// rate, and an idle store still commits a lone update at once (no timer
// waits for company).
//
// A savepoint per update keeps updates independent: one that fails (fn
// refuses, a constraint is violated) rolls back to its savepoint and
// returns its error; the others commit. A failed COMMIT fails the whole
// group, and nothing of it is stored.

// maxGroup bounds the updates of one transaction, so a long queue is
// answered in several commits rather than waiting for one huge one.
const maxGroup = 256

// groupTimeout bounds one group's transaction: its statements and commit.
// Each caller's own context bounds only its wait in the queue.
const groupTimeout = 30 * time.Second

// errClosed answers updates submitted to, or still queued in, a closed DB.
var errClosed = errors.New("database is closed")

// bindingUpdate is one queued UpdateBindings call.
type bindingUpdate struct {
	aor string
	now time.Time
	fn  func([]sip.Binding) ([]sip.Binding, error)

	// state: 0 queued, 1 taken by the committer, 2 withdrawn by the
	// caller. Whoever moves it from 0 first decides whether it runs.
	state atomic.Int32
	out   []sip.Binding
	err   error
	done  chan struct{}
}

// committer is the goroutine that group-commits binding updates.
type committer struct {
	db    *DB
	queue chan *bindingUpdate
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	// Prepared on the writer connection: savepoint statements are parsed
	// once, like the binding statements.
	savepoint, release, rollbackTo *sql.Stmt

	groups, updates atomic.Int64 // committed transactions, updates in them
}

// CommitStats counts the group commits of binding updates since Open:
// Groups transactions committed holding Updates updates in all (those
// that failed alone and rolled back to their savepoint included), so
// Updates/Groups is the mean group size.
type CommitStats struct {
	Groups, Updates int64
}

// CommitStats reports the group commits of binding updates so far.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Groups: db.commits.groups.Load(), Updates: db.commits.updates.Load()}
}

// start prepares the savepoint statements and starts the goroutine.
func (c *committer) start(ctx context.Context, db *DB) error {
	c.db = db
	c.queue = make(chan *bindingUpdate, 4*maxGroup)
	c.quit = make(chan struct{})
	var err error
	if c.savepoint, err = db.w.PrepareContext(ctx, `SAVEPOINT binding_update`); err != nil {
		return err
	}
	if c.release, err = db.w.PrepareContext(ctx, `RELEASE binding_update`); err != nil {
		return err
	}
	if c.rollbackTo, err = db.w.PrepareContext(ctx, `ROLLBACK TO binding_update`); err != nil {
		return err
	}
	c.wg.Add(1)
	go c.run()
	return nil
}

// stop ends the goroutine and fails what is still queued. Safe to call
// more than once and on a committer that never started.
func (c *committer) stop() error {
	if c.quit == nil {
		return nil
	}
	c.once.Do(func() { close(c.quit) })
	c.wg.Wait()
	for {
		select {
		case u := <-c.queue:
			c.finish(u, nil, storeErr("sqlite.UpdateBindings", errClosed))
		default:
			var errs []error
			for _, st := range []*sql.Stmt{c.savepoint, c.release, c.rollbackTo} {
				if st != nil {
					errs = append(errs, st.Close())
				}
			}
			return errors.Join(errs...)
		}
	}
}

// submit queues one update and waits for its commit, or for ctx.
func (c *committer) submit(ctx context.Context, aor string, now time.Time, fn func([]sip.Binding) ([]sip.Binding, error)) ([]sip.Binding, error) {
	const op = "sqlite.UpdateBindings"
	u := &bindingUpdate{aor: aor, now: now, fn: fn, done: make(chan struct{})}
	select {
	case c.queue <- u:
	case <-c.quit:
		return nil, storeErr(op, errClosed)
	case <-ctx.Done():
		return nil, storeErr(op, ctx.Err())
	}
	var err error
	select {
	case <-u.done:
		return u.out, u.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.quit:
		err = errClosed
	}
	if u.state.CompareAndSwap(0, 2) {
		return nil, storeErr(op, err) // withdrawn: never applied
	}
	// Taken: its fate is decided by the group's commit; wait for it.
	<-u.done
	return u.out, u.err
}

// finish answers u.
func (c *committer) finish(u *bindingUpdate, out []sip.Binding, err error) {
	u.out, u.err = out, err
	close(u.done)
}

// run is the committer goroutine.
func (c *committer) run() {
	defer c.wg.Done()
	group := make([]*bindingUpdate, 0, maxGroup)
	for {
		select {
		case <-c.quit: // first, so that Close stops it even with a full queue
			return
		default:
		}
		select {
		case <-c.quit:
			return
		case u := <-c.queue:
			group = append(group[:0], u)
		}
	gather:
		for len(group) < maxGroup {
			select {
			case u := <-c.queue:
				group = append(group, u)
			default:
				break gather
			}
		}
		c.commit(group)
		clear(group)
	}
}

// commit applies group in one transaction and answers every update in it.
func (c *committer) commit(group []*bindingUpdate) {
	const op = "sqlite.UpdateBindings"
	// Drop the updates whose callers gave up while queued.
	live := group[:0]
	for _, u := range group {
		if u.state.CompareAndSwap(0, 1) {
			live = append(live, u)
		} else {
			c.finish(u, nil, storeErr(op, context.Canceled))
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	fail := func(err error) {
		for _, u := range live {
			c.finish(u, nil, storeErr(op, err))
		}
	}
	tx, err := c.db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	if len(live) == 1 {
		// Alone: no savepoint needed, an error rolls the transaction back.
		u := live[0]
		out, err := c.db.applyBindings(ctx, tx, u.aor, u.now, u.fn)
		if err != nil {
			_ = tx.Rollback()
			c.finish(u, nil, err)
			return
		}
		if err := tx.Commit(); err != nil {
			c.finish(u, nil, storeErr(op, err))
			return
		}
		c.groups.Add(1)
		c.updates.Add(1)
		c.finish(u, out, nil)
		return
	}
	savepoint, release, rollbackTo := tx.StmtContext(ctx, c.savepoint), tx.StmtContext(ctx, c.release), tx.StmtContext(ctx, c.rollbackTo)
	outs := make([][]sip.Binding, len(live))
	errs := make([]error, len(live))
	for i, u := range live {
		if _, err := savepoint.ExecContext(ctx); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
		outs[i], errs[i] = c.db.applyBindings(ctx, tx, u.aor, u.now, u.fn)
		if errs[i] != nil {
			outs[i] = nil
			if _, err := rollbackTo.ExecContext(ctx); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
		}
		if _, err := release.ExecContext(ctx); err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	c.groups.Add(1)
	c.updates.Add(int64(len(live)))
	for i, u := range live {
		c.finish(u, outs[i], errs[i])
	}
}
