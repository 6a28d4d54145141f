package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rvoip/users-core/identity"
)

// benchUsers is the size of the benchmark database.
const benchUsers = 100_000

// bench is the benchmark database, built once per test process by
// benchStore and removed by cleanupBench from TestMain.
var bench struct {
	once  sync.Once
	dir   string
	db    *DB
	names []string
	err   error
}

// benchStore returns a database of benchUsers users and their usernames.
func benchStore(b *testing.B) (*DB, []string) {
	b.Helper()
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "users-core-bench-")
		if bench.err != nil {
			return
		}
		ctx := context.Background()
		bench.db, bench.err = Open(ctx, filepath.Join(bench.dir, "users.db"))
		if bench.err != nil {
			return
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		users := make([]*identity.User, benchUsers)
		bench.names = make([]string, benchUsers)
		for i := range users {
			name := fmt.Sprintf("user%06d", i)
			bench.names[i] = name
			users[i] = &identity.User{
				ID: uuid.NewString(), Username: name, Email: name + "@example.com",
				DisplayName: "User " + name, Roles: []identity.Role{identity.RoleUser},
				Active: true, CreatedAt: now, UpdatedAt: now,
			}
		}
		start := time.Now()
		bench.err = bench.db.CreateUsers(ctx, users, nil)
		fmt.Fprintf(os.Stderr, "CreateUsers(%d users): %v\n", benchUsers, time.Since(start).Round(time.Millisecond))
	})
	if bench.err != nil {
		b.Fatalf("benchmark database: %v", bench.err)
	}
	return bench.db, bench.names
}

func cleanupBench() {
	if bench.db != nil {
		bench.db.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

// BenchmarkUserByName looks up random existing users by name in a database
// of benchUsers users, one lookup at a time.
func BenchmarkUserByName(b *testing.B) {
	db, names := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.UserByName(ctx, names[rand.IntN(len(names))]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUserByNameParallel is BenchmarkUserByName from GOMAXPROCS
// goroutines at once, through the reader pool.
func BenchmarkUserByNameParallel(b *testing.B) {
	db, names := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.UserByName(ctx, names[rand.IntN(len(names))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
