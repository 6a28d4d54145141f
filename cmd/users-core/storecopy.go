package main

// `users-core store copy`: moving a users-core database to another one,
// typically from the single node's SQLite file to the PostgreSQL database
// several nodes share (store.CopyURL does the work).

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rvoip/users-core/store"
)

// storeCmd runs `store SUB`; copy is the only subcommand.
func (c *cli) storeCmd(ctx context.Context, sub string, args []string) error {
	if sub != "copy" {
		return usagef("store: unknown subcommand %q (want copy)", sub)
	}
	f := newFlags("store copy")
	from := f.fs.String("from", "", "the database to copy (sqlite://PATH or postgres://...)")
	to := f.fs.String("to", "", "the database to copy into (sqlite://PATH or postgres://...)")
	force := f.fs.Bool("force", false, "delete everything in a non-empty target first")
	batch := f.fs.Int("batch", store.DefaultCopyBatch, "rows inserted at a time")
	rest, err := c.parse(f, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("store copy takes no arguments, got %q", rest[0])
	}
	if *from == "" || *to == "" {
		return usagef("store copy needs --from URL and --to URL")
	}
	if *batch < 1 {
		return usagef("store copy: --batch must be at least 1")
	}

	// Progress for tables of more than one batch, at most once a second
	// per table, and when each is done.
	var last time.Time
	progress := func(table string, done, total int64) {
		if total <= int64(*batch) || (done < total && time.Since(last) < time.Second) {
			return
		}
		last = time.Now()
		fmt.Fprintf(c.stderr, "store copy: %s: %d of %d rows\n", table, done, total)
	}
	start := time.Now()
	report, err := store.CopyURL(ctx, *from, *to, store.CopyOptions{Force: *force, BatchSize: *batch, Progress: progress})
	if err != nil {
		var ne *store.NotEmptyError
		if errors.As(err, &ne) {
			return fmt.Errorf("store copy: nothing was copied: %s is not empty (%s); --force deletes everything in it and copies the source in its place",
				redactURL(*to), heldRows(ne))
		}
		return fmt.Errorf("store copy: nothing was copied: %w", err)
	}

	fmt.Fprintf(c.stdout, "copied %s to %s (schema version %d) in %s\n",
		redactURL(*from), redactURL(*to), report.SchemaVersion, time.Since(start).Round(time.Millisecond))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	var total int64
	for _, t := range report.Tables {
		fmt.Fprintf(tw, "%s\t%d\n", t.Table, t.Rows)
		total += t.Rows
	}
	fmt.Fprintf(tw, "total\t%d\n", total)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "every table has as many rows in the target as in the source")
	return nil
}

// heldRows lists the tables of a NotEmptyError with their rows.
func heldRows(e *store.NotEmptyError) string {
	s := ""
	for i, t := range e.Tables {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s: %d", t.Table, t.Rows)
	}
	return s
}
