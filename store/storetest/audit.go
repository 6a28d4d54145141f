package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
)

// auditEvent returns the i-th event of a test trail: at base+i seconds,
// with fields that vary with i so that every filter selects a known subset.
func auditEvent(i int) identity.Event {
	actions := []string{identity.ActionLoginSucceeded, identity.ActionLoginFailed, identity.ActionPasswordChanged}
	outcome := identity.OutcomeSuccess
	if i%2 == 1 {
		outcome = identity.OutcomeFailure
	}
	return identity.Event{
		Time:    base.Add(time.Duration(i) * time.Second),
		Action:  actions[i%3],
		Actor:   fmt.Sprintf("actor%d", i%4),
		Subject: fmt.Sprintf("subject%d", i%5),
		Source:  fmt.Sprintf("192.0.2.%d", i%2),
		Outcome: outcome,
		Detail:  fmt.Sprintf("event %d", i),
	}
}

// mustAppendTrail appends events 0..n-1 of the test trail, in batches of 7
// (so that ids span several transactions), and returns them.
func mustAppendTrail(t testing.TB, s Store, n int) []identity.Event {
	t.Helper()
	var all []identity.Event
	for i := 0; i < n; i += 7 {
		var batch []identity.Event
		for j := i; j < min(i+7, n); j++ {
			batch = append(batch, auditEvent(j))
		}
		if err := s.AppendAudit(context.Background(), batch); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		all = append(all, batch...)
	}
	return all
}

// mustListAudit lists every page of f and returns the records in order.
func mustListAudit(t testing.TB, s Store, f identity.AuditFilter) []identity.AuditRecord {
	t.Helper()
	var out []identity.AuditRecord
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("ListAudit(%+v): more than 1000 pages", f)
		}
		p, err := s.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		out = append(out, p.Records...)
		if p.Next == "" {
			return out
		}
		if len(p.Records) == 0 {
			t.Fatalf("ListAudit(%+v): an empty page with a next cursor", f)
		}
		f.After = p.Next
	}
}

// wantTrail fails t unless got holds exactly the events of all for which
// keep is true, newest (last appended) first, with every field intact and
// ids descending.
func wantTrail(t testing.TB, what string, got []identity.AuditRecord, all []identity.Event, keep func(identity.Event) bool) {
	t.Helper()
	var want []identity.Event
	for i := len(all) - 1; i >= 0; i-- {
		if keep(all[i]) {
			want = append(want, all[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Action != w.Action || g.Actor != w.Actor || g.Subject != w.Subject ||
			g.Source != w.Source || g.Outcome != w.Outcome || g.Detail != w.Detail {
			t.Fatalf("%s: record %d = %+v, want %+v", what, i, g.Event, w)
		}
		if i > 0 && g.ID >= got[i-1].ID {
			t.Fatalf("%s: record %d has id %d after id %d: not newest first", what, i, g.ID, got[i-1].ID)
		}
	}
}

var auditTests = []subtest{
	{"an empty trail lists no records and no cursor", func(t *testing.T, s Store) {
		p, err := s.ListAudit(context.Background(), identity.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != 0 || p.Next != "" {
			t.Fatalf("ListAudit = %+v, want nothing", p)
		}
		if err := s.AppendAudit(context.Background(), nil); err != nil {
			t.Fatalf("AppendAudit(nil): %v", err)
		}
	}},
	{"appended events list newest first with every field and a UTC millisecond time", func(t *testing.T, s Store) {
		all := mustAppendTrail(t, s, 10)
		got := mustListAudit(t, s, identity.AuditFilter{})
		wantTrail(t, "all", got, all, func(identity.Event) bool { return true })
		for _, r := range got {
			if r.ID <= 0 || r.Time.Location() != time.UTC {
				t.Fatalf("record %+v: want a positive id and a UTC time", r)
			}
		}
	}},
	{"times keep millisecond precision and empty fields stay empty", func(t *testing.T, s Store) {
		e := identity.Event{Time: base.Add(987 * time.Millisecond), Action: identity.ActionLogout}
		if err := s.AppendAudit(context.Background(), []identity.Event{e}); err != nil {
			t.Fatal(err)
		}
		got := mustListAudit(t, s, identity.AuditFilter{})
		wantTrail(t, "one", got, []identity.Event{e}, func(identity.Event) bool { return true })
	}},
	{"every filter selects exactly its records", func(t *testing.T, s Store) {
		all := mustAppendTrail(t, s, 60)
		since, until := base.Add(10*time.Second), base.Add(40*time.Second)
		for _, c := range []struct {
			name string
			f    identity.AuditFilter
			keep func(identity.Event) bool
		}{
			{"action", identity.AuditFilter{Action: identity.ActionLoginFailed},
				func(e identity.Event) bool { return e.Action == identity.ActionLoginFailed }},
			{"actor", identity.AuditFilter{Actor: "actor2"},
				func(e identity.Event) bool { return e.Actor == "actor2" }},
			{"subject", identity.AuditFilter{Subject: "subject3"},
				func(e identity.Event) bool { return e.Subject == "subject3" }},
			{"source", identity.AuditFilter{Source: "192.0.2.1"},
				func(e identity.Event) bool { return e.Source == "192.0.2.1" }},
			{"outcome", identity.AuditFilter{Outcome: identity.OutcomeFailure},
				func(e identity.Event) bool { return e.Outcome == identity.OutcomeFailure }},
			{"since is inclusive", identity.AuditFilter{Since: since},
				func(e identity.Event) bool { return !e.Time.Before(since) }},
			{"until is exclusive", identity.AuditFilter{Until: until},
				func(e identity.Event) bool { return e.Time.Before(until) }},
			{"all together", identity.AuditFilter{Action: identity.ActionLoginSucceeded, Actor: "actor0", Since: since, Until: until},
				func(e identity.Event) bool {
					return e.Action == identity.ActionLoginSucceeded && e.Actor == "actor0" && !e.Time.Before(since) && e.Time.Before(until)
				}},
			{"a value nobody has", identity.AuditFilter{Subject: "nobody"},
				func(identity.Event) bool { return false }},
			{"until before since", identity.AuditFilter{Since: until, Until: since},
				func(identity.Event) bool { return false }},
		} {
			got := mustListAudit(t, s, c.f)
			wantTrail(t, c.name, got, all, c.keep)
			// The same filter in small pages gives the same records.
			c.f.Limit = 3
			wantTrail(t, c.name+" in pages of 3", mustListAudit(t, s, c.f), all, c.keep)
		}
	}},
	{"pages neither overlap nor skip records while more are appended", func(t *testing.T, s Store) {
		all := mustAppendTrail(t, s, 25)
		p1, err := s.ListAudit(context.Background(), identity.AuditFilter{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(p1.Records) != 10 || p1.Next == "" {
			t.Fatalf("first page: %d records, next %q; want 10 and a cursor", len(p1.Records), p1.Next)
		}
		// Newer records appended between pages belong before page one:
		// they must not shift the later pages.
		later := auditEvent(100)
		if err := s.AppendAudit(context.Background(), []identity.Event{later}); err != nil {
			t.Fatal(err)
		}
		got := append([]identity.AuditRecord(nil), p1.Records...)
		got = append(got, mustListAudit(t, s, identity.AuditFilter{Limit: 10, After: p1.Next})...)
		wantTrail(t, "pages", got, all, func(identity.Event) bool { return true })
	}},
	{"the last page has no cursor, even when it is full", func(t *testing.T, s Store) {
		mustAppendTrail(t, s, 6)
		p, err := s.ListAudit(context.Background(), identity.AuditFilter{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		p, err = s.ListAudit(context.Background(), identity.AuditFilter{Limit: 3, After: p.Next})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != 3 || p.Next != "" {
			t.Fatalf("second page: %d records, next %q; want 3 and no cursor", len(p.Records), p.Next)
		}
	}},
	{"the page size defaults to 100 and is capped at 1000", func(t *testing.T, s Store) {
		var batch []identity.Event
		for i := 0; i < 1001; i++ {
			batch = append(batch, auditEvent(i))
		}
		if err := s.AppendAudit(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ limit, want int }{{0, 100}, {-5, 100}, {5000, 1000}} {
			p, err := s.ListAudit(context.Background(), identity.AuditFilter{Limit: c.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) != c.want || p.Next == "" {
				t.Errorf("limit %d: %d records, next %q; want %d and a cursor", c.limit, len(p.Records), p.Next, c.want)
			}
		}
	}},
	{"a malformed cursor is invalid", func(t *testing.T, s Store) {
		mustAppendTrail(t, s, 3)
		for _, after := range []string{"!!not a cursor!!", "x", "%%%"} {
			_, err := s.ListAudit(context.Background(), identity.AuditFilter{After: after})
			if !errors.Is(err, identity.ErrInvalid) {
				t.Errorf("After %q: error %v, want one matching ErrInvalid", after, err)
			}
		}
	}},
	{"prune deletes the records before the time and counts them", func(t *testing.T, s Store) {
		all := mustAppendTrail(t, s, 20)
		cut := base.Add(12 * time.Second)
		n, err := s.PruneAudit(context.Background(), cut)
		if err != nil {
			t.Fatal(err)
		}
		if n != 12 {
			t.Errorf("PruneAudit deleted %d, want 12", n)
		}
		keep := func(e identity.Event) bool { return !e.Time.Before(cut) }
		wantTrail(t, "after prune", mustListAudit(t, s, identity.AuditFilter{}), all, keep)
		if n, err := s.PruneAudit(context.Background(), cut); err != nil || n != 0 {
			t.Errorf("pruning again: %d, %v; want 0, nil", n, err)
		}
	}},
	{"prune removes a backlog larger than one transaction", func(t *testing.T, s Store) {
		var batch []identity.Event
		for i := 0; i < 12001; i++ {
			e := auditEvent(i)
			e.Time = base.Add(time.Duration(i) * time.Millisecond)
			batch = append(batch, e)
		}
		if err := s.AppendAudit(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneAudit(context.Background(), base.Add(12000*time.Millisecond))
		if err != nil || n != 12000 {
			t.Fatalf("PruneAudit = %d, %v; want 12000", n, err)
		}
		got := mustListAudit(t, s, identity.AuditFilter{})
		if len(got) != 1 || got[0].Detail != "event 12000" {
			t.Fatalf("left %d records (%+v), want only event 12000", len(got), got)
		}
	}},
	{"ids keep growing after the newest records are pruned", func(t *testing.T, s Store) {
		mustAppendTrail(t, s, 3)
		first := mustListAudit(t, s, identity.AuditFilter{})
		if _, err := s.PruneAudit(context.Background(), base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustAppendTrail(t, s, 1)
		got := mustListAudit(t, s, identity.AuditFilter{})
		if len(got) != 1 || got[0].ID <= first[0].ID {
			t.Fatalf("after pruning everything, new id %v, want above %d", got, first[0].ID)
		}
	}},
}
