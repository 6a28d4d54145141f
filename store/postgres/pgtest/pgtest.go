// Package pgtest gives tests a PostgreSQL database of their own: a fresh,
// empty, uniquely named database on a test server, dropped when the test
// ends. Tests of store/postgres use it, and so may tests elsewhere that
// need a real server (several users-core nodes on one database, say).
//
// The server comes from the environment variable named by EnvURL, a
// postgres:// URL whose role may CREATE DATABASE (for example
// postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable). Without
// it the test is skipped, except under CI=true, where a missing server
// fails the test: CI must not pass by skipping.
//
// It is for tests only: nothing outside _test.go files imports it. Reading
// the environment here is the point of the package.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that holds the test server's URL.
const EnvURL = "USERS_CORE_TEST_POSTGRES_URL"

// timeout bounds each statement this package sends to the server.
const timeout = 30 * time.Second

// NewDatabase creates a new, empty database on the test server and returns
// its URL: the server URL with the database name replaced, every other
// parameter kept. The database is dropped in t.Cleanup, after the cleanups
// the test registers later (such as closing its pools), and its remaining
// connections are terminated then. Without a server it skips t, or fails
// it when the environment has CI=true.
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvURL)
	if server == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %s is not set, and CI=true: PostgreSQL tests must run in CI (.ci/run starts a server)", EnvURL)
		}
		t.Skipf("pgtest: %s is not set: skipping the PostgreSQL tests (set it to a postgres:// URL of a role that may CREATE DATABASE)", EnvURL)
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvURL)
	}

	var b [8]byte
	rand.Read(b[:])
	name := "users_core_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()

	admin(t, server, `CREATE DATABASE `+ident)
	t.Cleanup(func() {
		// FORCE (PostgreSQL 13 and later) ends sessions a test left open.
		admin(t, server, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`)
	})

	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// admin runs one statement on the server's maintenance database over a
// connection of its own (CREATE and DROP DATABASE cannot run inside a
// transaction or on a connection to the database they name).
func admin(t testing.TB, server, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: connect to the test server (%s): %v", EnvURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("pgtest: %s: %v", stmt, err)
	}
}
