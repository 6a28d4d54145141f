// Package schema reads the numbered SQL migrations that a store backend
// embeds: it checks their names and puts them in version order. Applying
// them (the transactions, the locks, the schema_migrations table) is each
// backend's own, in its migrate.go.
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one migration file, named NNNN_name.sql: NNNN is the schema
// version the file brings the database to.
type Migration struct {
	Version int
	Name    string // the name after NNNN_, without .sql
	SQL     string // the file's contents
}

// String returns the file's name without .sql, "0003_bindings".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// Load reads every file of dir in fsys as a migration and returns them in
// version order. A name not of the form NNNN_name.sql (four digits, a
// version above 0, a name after the underscore), two files with one
// version, or an empty dir is an error. Versions may have gaps; a backend
// that wants none checks in its tests.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		base := e.Name()
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 || name == "" {
			return nil, fmt.Errorf("%s: want a name like 0001_name.sql", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("%s and %s have the same version %d", prev, base, v)
		}
		seen[v] = base
		b, err := fs.ReadFile(fsys, path.Join(dir, base))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// MustLoad is Load for the migrations embedded in package pkg, which can
// fail only by a broken build (the package's tests catch it): it panics
// with an error that names pkg.
func MustLoad(pkg string, fsys fs.FS, dir string) []Migration {
	ms, err := Load(fsys, dir)
	if err != nil {
		panic(pkg + ": embedded migrations: " + err.Error())
	}
	return ms
}
