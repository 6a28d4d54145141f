package schema

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadOrdersByVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_ten.sql":       {Data: []byte("SELECT 10;")},
		"m/0002_two.sql":       {Data: []byte("SELECT 2;")},
		"m/0001_first_one.sql": {Data: []byte("SELECT 1;")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.String()+":"+m.SQL)
	}
	if want := "0001_first_one:SELECT 1; 0002_two:SELECT 2; 0010_ten:SELECT 10;"; strings.Join(got, " ") != want {
		t.Errorf("Load = %v, want %s", got, want)
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"a name without a version is refused", []string{"init.sql"}, "want a name like 0001_name.sql"},
		{"a version of other than four digits is refused", []string{"001_init.sql"}, "want a name like"},
		{"version 0 is refused", []string{"0000_init.sql"}, "want a name like"},
		{"a version without a name is refused", []string{"0001_.sql"}, "want a name like"},
		{"two files with one version are refused", []string{"0001_a.sql", "0001_b.sql"}, "0001_a.sql and 0001_b.sql have the same version 1"},
		{"no files at all are refused", nil, "no migrations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m": {Mode: fs.ModeDir | 0o755}}
			for _, f := range tc.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			if _, err := Load(fsys, "m"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%v) = %v, want an error with %q", tc.files, err, tc.want)
			}
		})
	}
}
