package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rvoip/users-core/sip"
)

// seen runs an update of aor at now that changes nothing and returns the
// bindings its fn was given.
func seen(t *testing.T, db *DB, aor string, now time.Time) []sip.Binding {
	t.Helper()
	var got []sip.Binding
	if _, err := db.UpdateBindings(context.Background(), aor, now, func(cur []sip.Binding) ([]sip.Binding, error) {
		got = cur
		return cur, nil
	}); err != nil {
		t.Fatalf("UpdateBindings(%s): %v", aor, err)
	}
	return got
}

// sameAsTable fails unless an update of aor at now is handed exactly the
// bindings the table holds (read on the reader pool).
func sameAsTable(t *testing.T, db *DB, aor string, now time.Time, step string) {
	t.Helper()
	want, err := db.Bindings(context.Background(), aor, now)
	if err != nil {
		t.Fatal(err)
	}
	got := seen(t, db, aor, now)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the update of %s was given\n%+v\nthe table holds\n%+v", step, aor, got, want)
	}
}

func TestBindingMirrorFollowsEveryWriter(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	const aor = "sip:mirror@example.com"
	now := time.Date(2026, 12, 5, 1, 0, 0, 123_456_789, time.UTC) // not a whole millisecond

	// Two bindings, one with a Path, times finer than the table keeps.
	b1, b2 := binding(aor, 1, now, now.Add(time.Hour)), binding(aor, 2, now.Add(-time.Second), now.Add(2*time.Hour))
	b2.Path = nil
	set(t, db, aor, now, b1, b2)
	sameAsTable(t, db, aor, now, "after the first update")
	hits := db.commits.mirror.hits
	sameAsTable(t, db, aor, now, "again")
	if db.commits.mirror.hits <= hits {
		t.Fatal("a second update of the same AoR did not use the mirror")
	}

	// A refused update changes neither the table nor the mirror.
	refused := errors.New("refused")
	if _, err := db.UpdateBindings(ctx, aor, now, func(cur []sip.Binding) ([]sip.Binding, error) {
		return nil, refused
	}); !errors.Is(err, refused) {
		t.Fatalf("refused update: %v", err)
	}
	sameAsTable(t, db, aor, now, "after a refused update")

	// A write on the writer connection outside the committer.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM bindings WHERE id = ?`, b1.ID); err != nil {
		t.Fatal(err)
	}
	sameAsTable(t, db, aor, now, "after a delete on the writer connection")

	// The expired-binding sweep.
	later := now.Add(90 * time.Minute) // b2 still live, a new short one expired
	b3 := binding(aor, 3, now, now.Add(time.Minute))
	if _, err := db.UpdateBindings(ctx, aor, now, func(cur []sip.Binding) ([]sip.Binding, error) {
		return append(cur, b3), nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DeleteExpiredBindings(ctx, later); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredBindings: %d, %v", n, err)
	}
	sameAsTable(t, db, aor, now, "after the sweep") // at now, b3 would be live had it stayed

	// Another handle on the file (another process, the CLI).
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	b4 := binding(aor, 4, now, now.Add(time.Hour))
	if _, err := other.UpdateBindings(ctx, aor, now, func(cur []sip.Binding) ([]sip.Binding, error) {
		return append(cur, b4), nil
	}); err != nil {
		t.Fatal(err)
	}
	sameAsTable(t, db, aor, now, "after another connection's update")
	if got := seen(t, db, aor, now); len(got) != 2 {
		t.Fatalf("%d bindings after the other connection's update, want 2 (b2, b4)", len(got))
	}
}

// TestBindingMirrorUnderRandomUpdates mixes grouped updates of a few AoRs
// (concurrent, so they share commits), refusals and outside writes, and
// checks after each round that every update is handed the table's rows.
func TestBindingMirrorUnderRandomUpdates(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	aors := []string{"sip:a@example.com", "sip:b@example.com", "sip:c@example.com"}
	for round := range 40 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		type job struct {
			aor string
			fn  func([]sip.Binding) ([]sip.Binding, error)
		}
		var jobs []job
		for range 12 {
			aor := aors[rng.IntN(len(aors))]
			n, kind, life := rng.IntN(1000), rng.IntN(4), time.Duration(1+rng.IntN(300))*time.Second
			at := now
			jobs = append(jobs, job{aor, func(cur []sip.Binding) ([]sip.Binding, error) {
				switch kind {
				case 0: // add
					return append(cur, binding(aor, n, at, at.Add(life))), nil
				case 1: // refresh the first
					if len(cur) > 0 {
						cur[0].ExpiresAt, cur[0].UpdatedAt, cur[0].CSeq = at.Add(life), at, cur[0].CSeq+1
					}
					return cur, nil
				case 2: // remove the last
					if len(cur) > 0 {
						cur = cur[:len(cur)-1]
					}
					return cur, nil
				default: // refuse
					return nil, fmt.Errorf("refused")
				}
			}})
		}
		done := make(chan struct{}, len(jobs))
		for _, j := range jobs {
			go func() {
				db.UpdateBindings(ctx, j.aor, now, j.fn)
				done <- struct{}{}
			}()
		}
		for range jobs {
			<-done
		}
		if round%7 == 3 {
			if _, err := db.DeleteExpiredBindings(ctx, now); err != nil {
				t.Fatal(err)
			}
		}
		for _, aor := range aors {
			sameAsTable(t, db, aor, now, fmt.Sprintf("round %d", round))
		}
	}
	if db.commits.mirror.hits == 0 {
		t.Fatal("the mirror was never used")
	}
}
