package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit of binding updates and refresh-token writes.
//
// With synchronous=FULL every commit waits for an fsync of the WAL, which
// costs far more than the statements of one registrar update or one
// refresh-token rotation. The committer is one goroutine that owns these
// writes: it takes every update waiting in its queue (up to maxGroup),
// applies each in one write transaction under its own savepoint, commits
// once and then answers them all. While one group's fsync runs, the next
// group gathers, so the number of fsyncs per second stays near the disk's
// rate whatever the REGISTER or refresh rate, and an idle store still
// commits a lone update at once (no timer waits for company).
//
// Updates stay independent: one that fails (fn refuses, a rotation loses
// its compare-and-swap, a constraint is violated) changes nothing and
// returns its error; the others commit. An update that makes several
// statements asks for a savepoint first (protect) and a failure rolls back
// to it. One that makes a single statement needs none: SQLite backs out a
// statement that fails a constraint and keeps the transaction, and a
// refusal before the statement wrote nothing. A savepoint costs two
// statements and a copy of every page the update touches, about a tenth
// of a re-REGISTER's write. Any other failure of an unprotected statement
// may have rolled the whole transaction back (an I/O error, an interrupt),
// so its update reports errTxLost and the whole group fails. A failed
// COMMIT fails the whole group too, and nothing of it is stored. Updates of one group are applied in queue order, each seeing the
// writes of those before it, exactly as if they had committed one by one.

// maxGroup bounds the updates of one transaction, so a long queue is
// answered in several commits rather than waiting for one huge one.
const maxGroup = 256

// groupTimeout bounds one group's transaction: past it, database/sql rolls
// the transaction back between two statements. The statements themselves
// run under a context that is never done: each reads or writes a few rows
// by index, and busy_timeout bounds a wait for the write lock. With a
// context that can end, the driver starts a goroutine per statement to
// watch it, one or two per registration, which showed as scheduler work
// under load. Each caller's own context bounds only its wait in the queue.
const groupTimeout = 30 * time.Second

// errClosed answers updates submitted to, or still queued in, a closed DB.
var errClosed = errors.New("database is closed")

// errTxLost marks the failure of an update's unprotected statement that
// may have ended the group's transaction: the group fails with it.
var errTxLost = errors.New("the write transaction was lost")

// applyFunc makes an update's writes inside the group's transaction tx.
// Before its first write it calls protect when it will make more than one
// statement, or when a failure could leave a partial write; protect opens
// the update's savepoint (nothing when the update is alone in its
// transaction). An apply that did not call protect and whose statement
// failed other than on a constraint must wrap errTxLost in its error.
type applyFunc func(ctx context.Context, tx *sql.Tx, protect func() error) error

// update is one queued write: an UpdateBindings, RotateRefreshToken or
// CreateRefreshToken call.
type update struct {
	// op names the call in the errors the committer itself reports
	// (withdrawn, closed, a failed savepoint or commit).
	op string
	// apply makes the writes inside the group's transaction. Its error is
	// returned to the caller unchanged, after its writes were rolled back.
	// It runs on the committer goroutine and must not use db.w.
	apply applyFunc

	// state: 0 queued, 1 taken by the committer, 2 withdrawn by the
	// caller. Whoever moves it from 0 first decides whether it runs.
	state atomic.Int32
	err   error
	done  chan struct{}
}

// committer is the goroutine that group-commits updates.
type committer struct {
	db    *DB
	queue chan *update
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	// Prepared on the writer connection: savepoint statements are parsed
	// once, like the binding statements.
	savepoint, release, rollbackTo *sql.Stmt
	// The refresh-token writes, prepared on the writer (refresh.go).
	refresh refreshStmts
	// mirror spares binding updates their SELECT (bindmirror.go).
	mirror bindingMirror

	groups, updates atomic.Int64 // committed transactions, updates in them
}

// CommitStats counts the group commits of binding updates and
// refresh-token writes since Open: Groups transactions committed holding
// Updates updates in all (those that failed alone and rolled back to
// their savepoint included), so Updates/Groups is the mean group size.
type CommitStats struct {
	Groups, Updates int64
}

// CommitStats reports the group commits so far.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Groups: db.commits.groups.Load(), Updates: db.commits.updates.Load()}
}

// start prepares the writer's statements and starts the goroutine.
func (c *committer) start(ctx context.Context, db *DB) error {
	c.db = db
	c.queue = make(chan *update, 4*maxGroup)
	c.quit = make(chan struct{})
	var err error
	if c.savepoint, err = db.w.PrepareContext(ctx, `SAVEPOINT grouped_update`); err != nil {
		return err
	}
	if c.release, err = db.w.PrepareContext(ctx, `RELEASE grouped_update`); err != nil {
		return err
	}
	if c.rollbackTo, err = db.w.PrepareContext(ctx, `ROLLBACK TO grouped_update`); err != nil {
		return err
	}
	if err = c.refresh.prepare(ctx, db.w); err != nil {
		return err
	}
	if err = c.mirror.prepare(ctx, db.w); err != nil {
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
			c.finish(u, storeErr(u.op, errClosed))
		default:
			var errs []error
			for _, st := range []*sql.Stmt{c.savepoint, c.release, c.rollbackTo} {
				if st != nil {
					errs = append(errs, st.Close())
				}
			}
			errs = append(errs, c.refresh.close(), c.mirror.close())
			return errors.Join(errs...)
		}
	}
}

// submit queues apply as the update op and waits for its commit, or for
// ctx. A nil error means apply succeeded and its transaction is committed
// (and fsynced); when ctx ends while the update is still queued, it is
// withdrawn, apply never runs, and the error matches ctx.Err().
func (c *committer) submit(ctx context.Context, op string, apply applyFunc) error {
	u := &update{op: op, apply: apply, done: make(chan struct{})}
	select {
	case c.queue <- u:
	case <-c.quit:
		return storeErr(op, errClosed)
	case <-ctx.Done():
		return storeErr(op, ctx.Err())
	}
	var err error
	select {
	case <-u.done:
		return u.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.quit:
		err = errClosed
	}
	if u.state.CompareAndSwap(0, 2) {
		return storeErr(op, err) // withdrawn: never applied
	}
	// Taken: its fate is decided by the group's commit; wait for it.
	<-u.done
	return u.err
}

// finish answers u.
func (c *committer) finish(u *update, err error) {
	u.err = err
	close(u.done)
}

// run is the committer goroutine.
func (c *committer) run() {
	defer c.wg.Done()
	group := make([]*update, 0, maxGroup)
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
func (c *committer) commit(group []*update) {
	// Drop the updates whose callers gave up while queued.
	live := group[:0]
	for _, u := range group {
		if u.state.CompareAndSwap(0, 1) {
			live = append(live, u)
		} else {
			c.finish(u, storeErr(u.op, context.Canceled))
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	fail := func(err error) {
		for _, u := range live {
			c.finish(u, storeErr(u.op, err))
		}
	}
	tx, err := c.db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	ctx = context.WithoutCancel(ctx) // the statements' (see groupTimeout)
	c.mirror.begin(ctx, tx)
	committed := false
	defer func() { c.mirror.committed(committed) }()
	noSavepoint := func() error { return nil }
	if len(live) == 1 {
		// Alone: no savepoint needed, an error rolls the transaction back.
		u := live[0]
		if err := u.apply(ctx, tx, noSavepoint); err != nil {
			_ = tx.Rollback()
			c.finish(u, err)
			return
		}
		c.mirror.end(ctx, tx)
		if err := tx.Commit(); err != nil {
			c.finish(u, storeErr(u.op, err))
			return
		}
		committed = true
		c.groups.Add(1)
		c.updates.Add(1)
		c.finish(u, nil)
		return
	}
	savepoint, release, rollbackTo := tx.StmtContext(ctx, c.savepoint), tx.StmtContext(ctx, c.release), tx.StmtContext(ctx, c.rollbackTo)
	open := false
	protect := func() error {
		if open {
			return nil
		}
		if _, err := savepoint.ExecContext(ctx); err != nil {
			return errors.Join(errTxLost, err)
		}
		open = true
		return nil
	}
	errs := make([]error, len(live))
	for i, u := range live {
		open = false
		errs[i] = u.apply(ctx, tx, protect)
		if !open {
			if errors.Is(errs[i], errTxLost) {
				_ = tx.Rollback()
				fail(errs[i])
				return
			}
			continue
		}
		if errs[i] != nil {
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
	c.mirror.end(ctx, tx)
	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	committed = true
	c.groups.Add(1)
	c.updates.Add(int64(len(live)))
	for i, u := range live {
		c.finish(u, errs[i])
	}
}
