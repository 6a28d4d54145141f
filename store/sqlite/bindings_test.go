package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/sip"
)

// binding returns a binding of aor for contact number n, expiring at
// expires, every field set.
func binding(aor string, n int, created, expires time.Time) sip.Binding {
	contact := fmt.Sprintf("sip:ua%d@192.0.2.%d:5060;transport=tls;ob", n, n%250+1)
	return sip.Binding{
		ID: uuid.NewString(), AoR: aor, UserID: "user-" + aor,
		Contact: contact, ContactKey: strings.ToLower(contact), Q: -1,
		Instance: "<urn:uuid:" + uuid.NewString() + ">", RegID: 1,
		CallID: uuid.NewString() + "@192.0.2.1", CSeq: 1,
		Path:      []string{"<sip:edge1.example.com;lr;ob>"},
		ExpiresAt: expires, CreatedAt: created, UpdatedAt: created,
		Source: "198.51.100.7:41234", Transport: "TLS", LocalAddr: "203.0.113.10:5061",
		UserAgent: "Bench UA/1.0", Node: "node-a",
	}
}

// set makes bs the bindings of aor at now.
func set(t testing.TB, db *DB, aor string, now time.Time, bs ...sip.Binding) {
	t.Helper()
	if _, err := db.UpdateBindings(context.Background(), aor, now, func([]sip.Binding) ([]sip.Binding, error) {
		return bs, nil
	}); err != nil {
		t.Fatalf("UpdateBindings(%s): %v", aor, err)
	}
}

// bindingIDs returns the IDs of aor's bindings at now, in order.
func bindingIDs(t testing.TB, db *DB, aor string, now time.Time) []string {
	t.Helper()
	bs, err := db.Bindings(context.Background(), aor, now)
	if err != nil {
		t.Fatalf("Bindings(%s): %v", aor, err)
	}
	var ids []string
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

// TestAVersion2DatabaseIsUpgradedKeepingItsData builds a database as the
// previous release left it (migrations 0001 and 0002), opens it, and checks
// that migration 0003 adds bindings without touching users or tokens, and
// that its trigger covers users created before it.
func TestAVersion2DatabaseIsUpgradedKeepingItsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	raw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		migrations[0].SQL,
		migrations[1].SQL,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'init', 0), (2, 'tokens', 0)`,
		`INSERT INTO users (id, username, username_key, created_at, updated_at) VALUES ('id-1', 'Old', 'old', 0, 0)`,
		`INSERT INTO refresh_tokens (id, hash, family_id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at)
		 VALUES ('t1', x'01', 'f1', 'id-1', 0, 0, 0, 0)`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("building a version 2 database: %v", err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	rows := migrationRows(t, db.r)
	if len(rows) < 3 || rows[2].version != 3 || rows[2].name != "bindings" {
		t.Errorf("schema_migrations = %v, want versions 1 to 3 (bindings)", rows)
	}
	if _, err := db.UserByName(ctx, "old"); err != nil {
		t.Errorf("user of the version 2 database: %v", err)
	}
	if _, err := db.RefreshTokenByHash(ctx, []byte{1}); err != nil {
		t.Errorf("refresh token of the version 2 database: %v", err)
	}
	b := binding("sip:old@example.com", 1, time.UnixMilli(0), time.UnixMilli(0).Add(time.Hour))
	b.UserID = "id-1"
	set(t, db, b.AoR, time.UnixMilli(0), b)
	if err := db.DeleteUser(ctx, "id-1"); err != nil {
		t.Fatal(err)
	}
	if ids := bindingIDs(t, db, b.AoR, time.UnixMilli(0)); len(ids) != 0 {
		t.Errorf("bindings of the deleted user: %v", ids)
	}
}

// TestBindingQueriesUseTheirIndexes guards the indexes of migrations 0003
// and 0010: per-REGISTER statements and the per-user trigger look rows up,
// and the sweeps range over the sweep_at index instead of scanning the
// table (CountBindings counts all rows on an index, not on the table).
func TestBindingQueriesUseTheirIndexes(t *testing.T) {
	db, _ := openTemp(t)
	for _, c := range []struct {
		query string
		want  string // in the plan
	}{
		{`SELECT ` + bindingColumns + ` FROM bindings WHERE aor = ? ORDER BY created_at, id`,
			"SEARCH bindings USING INDEX sqlite_autoindex_bindings_2 (aor=?)"},
		{`SELECT ` + bindingColumns + ` FROM bindings WHERE aor = ? AND expires_at > ? ORDER BY created_at, id`,
			"SEARCH bindings USING INDEX sqlite_autoindex_bindings_2 (aor=?)"},
		{`DELETE FROM bindings WHERE id = ?`,
			"SEARCH bindings USING INDEX sqlite_autoindex_bindings_1 (id=?)"},
		{`UPDATE bindings SET cseq = ? WHERE id = ? AND aor = ?`,
			"SEARCH bindings USING INDEX sqlite_autoindex_bindings_1 (id=?)"},
		{`DELETE FROM bindings WHERE user_id = ?`,
			"SEARCH bindings USING INDEX bindings_user (user_id=?)"},
		{countBindingsSQL, "SEARCH bindings USING INDEX bindings_sweep_at (sweep_at<?)"},
		{rehintBindingsSQL, "SEARCH bindings USING INDEX bindings_sweep_at (sweep_at<?)"},
		{deleteExpiredBindingsSQL, "SEARCH bindings USING INDEX bindings_sweep_at (sweep_at<?)"},
		{countBindingsSQL, "SCAN bindings USING COVERING INDEX"},
	} {
		plan := queryPlan(t, db, c.query)
		if !strings.Contains(plan, c.want) {
			t.Errorf("plan of %s:\n%s\nwant it to contain %q", c.query, plan, c.want)
		}
	}
}

// TestBindingResultsThatBreakTheConstraintsChangeNothing checks the results
// of an UpdateBindings fn that the store refuses, beyond the conformance
// suite: each fails with its error and leaves both AoRs as they were.
func TestBindingResultsThatBreakTheConstraintsChangeNothing(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	now := time.UnixMilli(1_700_000_000_000).UTC()
	const alice, bob = "sip:alice@example.com", "sip:bob@example.com"
	a1, a2 := binding(alice, 1, now, now.Add(time.Hour)), binding(alice, 2, now.Add(time.Second), now.Add(time.Hour))
	b1 := binding(bob, 1, now, now.Add(time.Hour))
	set(t, db, alice, now, a1, a2)
	set(t, db, bob, now, b1)

	for _, c := range []struct {
		name string
		fn   func(cur []sip.Binding) []sip.Binding
		want error
	}{
		{"two bindings with one contact key", func(cur []sip.Binding) []sip.Binding {
			n := binding(alice, 3, now, now.Add(time.Hour))
			n.ContactKey = cur[1].ContactKey
			return append(cur, n)
		}, identity.ErrConflict},
		{"an existing binding taking another's contact key", func(cur []sip.Binding) []sip.Binding {
			cur[0].ContactKey = cur[1].ContactKey
			return cur
		}, identity.ErrConflict},
		{"the id of another AoR's binding", func(cur []sip.Binding) []sip.Binding {
			n := binding(alice, 3, now, now.Add(time.Hour))
			n.ID = b1.ID
			return append(cur, n)
		}, identity.ErrConflict},
		{"two bindings with one id", func(cur []sip.Binding) []sip.Binding {
			n := binding(alice, 3, now, now.Add(time.Hour))
			n.ID = cur[0].ID
			return append(cur, n)
		}, identity.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := db.UpdateBindings(ctx, alice, now, func(cur []sip.Binding) ([]sip.Binding, error) {
				cur[0].CSeq++ // a change that must be undone too
				return c.fn(cur), nil
			})
			if !errors.Is(err, c.want) {
				t.Fatalf("UpdateBindings = %v, want an error matching %v", err, c.want)
			}
			t.Logf("UpdateBindings: %v", err)
			if got := bindingIDs(t, db, alice, now); fmt.Sprint(got) != fmt.Sprint([]string{a1.ID, a2.ID}) {
				t.Errorf("alice's bindings = %v, want %v", got, []string{a1.ID, a2.ID})
			}
			bs, err := db.Bindings(ctx, alice, now)
			if err != nil || bs[0].CSeq != a1.CSeq {
				t.Errorf("alice's first binding = %+v, %v; want CSeq %d", bs, err, a1.CSeq)
			}
			bs, err = db.Bindings(ctx, bob, now)
			if err != nil || len(bs) != 1 || bs[0].AoR != bob || bs[0].Contact != b1.Contact {
				t.Errorf("bob's bindings = %+v, %v; want %s unchanged", bs, err, b1.ID)
			}
		})
	}
}

// TestPathIsStoredAsAJSONArray pins the stored form of Path, which operators
// read with the sqlite3 shell and json_each.
func TestPathIsStoredAsAJSONArray(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	now := time.UnixMilli(1_700_000_000_000)
	with := binding("sip:a@example.com", 1, now, now.Add(time.Hour))
	with.Path = []string{`<sip:p2.example.com;lr>`, `<sip:"q"@p1.example.com;lr>`}
	without := binding("sip:a@example.com", 2, now.Add(time.Second), now.Add(time.Hour))
	without.Path = nil
	set(t, db, with.AoR, now, with, without)
	for id, want := range map[string]string{
		with.ID:    `["<sip:p2.example.com;lr>","<sip:\"q\"@p1.example.com;lr>"]`,
		without.ID: `[]`,
	} {
		var path string
		var n int
		if err := db.r.QueryRowContext(ctx, `SELECT path, json_array_length(path) FROM bindings WHERE id = ?`, id).Scan(&path, &n); err != nil {
			t.Fatal(err)
		}
		if path != want {
			t.Errorf("stored path = %s, want %s", path, want)
		}
		if strings.Count(want, "<") != n {
			t.Errorf("json_array_length(%s) = %d", path, n)
		}
	}
}

// TestDeleteExpiredBindingsDeletesMoreThanABatch checks that the batched
// sweep keeps going until nothing expired is left, and counts every row.
func TestDeleteExpiredBindingsDeletesMoreThanABatch(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	now := time.UnixMilli(1_700_000_000_000)
	const expired, live = 2*expiredBatch + 17, 5
	fill(t, db, func(yield func(sip.Binding) bool) {
		for i := range expired + live {
			exp := now.Add(-time.Minute)
			if i >= expired {
				exp = now.Add(time.Minute)
			}
			if !yield(binding(fmt.Sprintf("sip:u%d@example.com", i), i, now.Add(-time.Hour), exp)) {
				return
			}
		}
	})
	n, err := db.DeleteExpiredBindings(ctx, now)
	if err != nil || n != expired {
		t.Errorf("DeleteExpiredBindings = %d, %v; want %d", n, err, expired)
	}
	if c, err := db.CountBindings(ctx, time.UnixMilli(0)); err != nil || c != live {
		t.Errorf("CountBindings of what is left = %d, %v; want %d", c, err, live)
	}
}

// TestUpdatesThroughTwoHandlesOnOneFileLoseNone runs concurrent
// read-modify-write updates of one AoR through two DBs open on one file, as
// two processes would: BEGIN IMMEDIATE and the busy timeout serialize them.
func TestUpdatesThroughTwoHandlesOnOneFileLoseNone(t *testing.T) {
	ctx := context.Background()
	db1, path := openTemp(t)
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	const aor, n = "sip:shared@example.com", 20
	now := time.UnixMilli(1_700_000_000_000)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		db := db1
		if i%2 == 1 {
			db = db2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := binding(aor, i, now.Add(time.Duration(i)*time.Millisecond), now.Add(time.Hour))
			_, errs[i] = db.UpdateBindings(ctx, aor, now, func(cur []sip.Binding) ([]sip.Binding, error) {
				return append(cur, b), nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	for _, db := range []*DB{db1, db2} {
		if ids := bindingIDs(t, db, aor, now); len(ids) != n {
			t.Errorf("%d bindings, want %d", len(ids), n)
		}
	}
}

// fill inserts the bindings of seq in one write transaction, bypassing
// UpdateBindings to build large databases fast.
func fill(tb testing.TB, db *DB, seq func(yield func(sip.Binding) bool)) {
	tb.Helper()
	ctx := context.Background()
	err := db.inWriteTx(ctx, "fill", func(tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, db.bindings.insert)
		for b := range seq {
			if err := writeBinding(ctx, ins, "fill", &b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("filling bindings: %v", err)
	}
}

// benchAoRs is how many AoRs the binding benchmarks fill, three bindings
// each.
const benchAoRs = 10_000

// bindingBench opens a database in a temporary directory (set TMPDIR to
// measure another disk) with benchAoRs AoRs of three bindings, sets the
// writer's synchronous mode (FULL in production), and returns the database
// and the AoRs. Bindings expire a year after start.
func bindingBench(b *testing.B, synchronous string, start time.Time) (*DB, []string) {
	b.Helper()
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "users.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	aors := make([]string, benchAoRs)
	for i := range aors {
		aors[i] = fmt.Sprintf("sip:user%05d@example.com", i)
	}
	fill(b, db, func(yield func(sip.Binding) bool) {
		for i, aor := range aors {
			for j := range 3 {
				if !yield(binding(aor, 3*i+j, start.Add(time.Duration(j)*time.Second), start.Add(365*24*time.Hour))) {
					return
				}
			}
		}
	})
	// The writer pool has one connection that is never closed, so the
	// pragma holds for every later write.
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `PRAGMA synchronous = `+synchronous); err != nil {
		b.Fatal(err)
	}
	var mode int
	if err := db.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&mode); err != nil {
		b.Fatal(err)
	}
	if want := map[string]int{"OFF": 0, "NORMAL": 1, "FULL": 2}[synchronous]; mode != want {
		b.Fatalf("synchronous = %d, want %d (%s)", mode, want, synchronous)
	}
	return db, aors
}

// refresh is the UpdateBindings fn of a re-REGISTER: it renews the binding
// of one contact, as the registrar does, and keeps the other two.
func refresh(now time.Time, which int) func([]sip.Binding) ([]sip.Binding, error) {
	return func(cur []sip.Binding) ([]sip.Binding, error) {
		if len(cur) != 3 {
			return nil, fmt.Errorf("%d bindings, want 3", len(cur))
		}
		b := &cur[which%3]
		b.CSeq++
		b.ExpiresAt = now.Add(365 * 24 * time.Hour)
		b.UpdatedAt = now
		return cur, nil
	}
}

// BenchmarkUpdateBindings measures the store's part of a re-REGISTER: one
// UpdateBindings that refreshes one of the three bindings of a random AoR
// among benchAoRs, under each synchronous mode. FULL is the production
// setting: every commit waits for an fsync of the WAL. NORMAL and OFF show
// what the transaction costs without it.
func BenchmarkUpdateBindings(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL", "OFF"} {
		b.Run("synchronous="+mode, func(b *testing.B) {
			start := time.UnixMilli(1_700_000_000_000).UTC()
			db, aors := bindingBench(b, mode, start)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				now := start.Add(time.Duration(i) * time.Millisecond)
				if _, err := db.UpdateBindings(ctx, aors[rand.IntN(len(aors))], now, refresh(now, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdateBindingsParallel is BenchmarkUpdateBindings from
// GOMAXPROCS*4 goroutines at once (registrations arrive concurrently): the
// single writer serializes them, so this is the throughput ceiling of one
// database file.
func BenchmarkUpdateBindingsParallel(b *testing.B) {
	for _, c := range []struct {
		mode string
		par  int
	}{{"FULL", 4}, {"NORMAL", 4}, {"FULL", 64}} {
		mode := c.mode
		b.Run(fmt.Sprintf("synchronous=%s/goroutines=%dxCPU", mode, c.par), func(b *testing.B) {
			start := time.UnixMilli(1_700_000_000_000).UTC()
			db, aors := bindingBench(b, mode, start)
			ctx := context.Background()
			var mu sync.Mutex
			i := 0
			b.ReportAllocs()
			b.SetParallelism(c.par)
			before := db.CommitStats()
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mu.Lock()
					i++
					k := i
					mu.Unlock()
					now := start.Add(time.Duration(k) * time.Millisecond)
					if _, err := db.UpdateBindings(ctx, aors[rand.IntN(len(aors))], now, refresh(now, k)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			after := db.CommitStats()
			if g := after.Groups - before.Groups; g > 0 {
				b.ReportMetric(float64(after.Updates-before.Updates)/float64(g), "updates/commit")
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used so
// far: the committer's cost per update, apart from the time spent waiting
// for fsync, is the difference over a run divided by the updates.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBindings reads the three bindings of a random AoR among
// benchAoRs through the reader pool, as a lookup for an INVITE would.
func BenchmarkBindings(b *testing.B) {
	start := time.UnixMilli(1_700_000_000_000).UTC()
	db, aors := bindingBench(b, "FULL", start)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		bs, err := db.Bindings(ctx, aors[rand.IntN(len(aors))], start)
		if err != nil || len(bs) != 3 {
			b.Fatalf("Bindings = %d, %v", len(bs), err)
		}
	}
}
