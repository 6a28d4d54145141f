package identity_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rvoip/users-core/identity"
	"github.com/rvoip/users-core/store/sqlite"
)

// BenchmarkRegulatorSuccess is the Success every REGISTER and login makes,
// on the real SQLite store:
//   - failures=none: no failure recorded anywhere, the common case.
//   - failures=others: 1,000 other users have failures (scanners guessing
//     usernames), the users that succeed have none.
//   - failures=own: each round records a failure for the user and then
//     succeeds, so Success has something to clear; it times the pair.
func BenchmarkRegulatorSuccess(b *testing.B) {
	for _, failures := range []string{"none", "others", "own"} {
		b.Run("failures="+failures, func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "users.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			now := time.Now()
			if failures == "others" {
				for i := range 1000 {
					k := identity.AttemptKey{Kind: identity.AttemptUser, Value: fmt.Sprintf("guess%04d", i)}
					if _, err := db.RecordFailure(ctx, k, now, now.Add(-time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
			}
			r := identity.NewRegulator(db, identity.DefaultRegulatorConfig())
			names := make([]string, 1000)
			for i := range names {
				names[i] = fmt.Sprintf("user%05d", i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				name := names[i%len(names)]
				if failures == "own" {
					if _, err := r.Failure(ctx, name, ""); err != nil {
						b.Fatal(err)
					}
				}
				if err := r.Success(ctx, name); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
