package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rvoip/users-core/store"
)

func TestOpenSQLiteURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	for _, url := range []string{"sqlite://" + path, "sqlite:" + path, "sqlite://" + path + "?mode=rwc"} {
		st, err := store.Open(context.Background(), url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if err := st.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
}

func TestOpenRefusesUnknownSchemes(t *testing.T) {
	for url, want := range map[string]string{
		"mysql://u@h/db":                    `unsupported database scheme "mysql"`,
		"users.db":                          "has no scheme",
		"admin:s3cret@db.example.com/users": "has no scheme",
	} {
		_, err := store.Open(context.Background(), url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", url, err)
		}
	}
}
