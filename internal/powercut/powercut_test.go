package powercut_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/qxd-io/qxd/internal/powercut"
)

// mount mounts a power-cut file system for t, or skips t saying why it cannot.
func mount(t *testing.T) *powercut.FS {
	t.Helper()
	if err := powercut.Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	f, err := powercut.Mount(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func write(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fd.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncPath(t *testing.T, path string) {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
}

// cut cuts the power and mounts the file system again.
func cut(t *testing.T, f *powercut.FS) {
	t.Helper()
	f.Cut()
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
}

// want checks a file's contents after a cut; nil means the file must not exist.
func want(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	switch {
	case data == nil && errors.Is(err, os.ErrNotExist):
	case data == nil && err == nil:
		t.Errorf("%s exists after the cut with %d bytes; want it gone", filepath.Base(path), len(got))
	case err != nil:
		t.Errorf("after the cut: %v; want %d bytes", err, len(data))
	case !bytes.Equal(got, data):
		t.Errorf("%s after the cut: %q; want %q", filepath.Base(path), trim(got), trim(data))
	}
}

func trim(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:40:40], "..."...)
	}
	return b
}

func TestCut(t *testing.T) {
	a, b := []byte("synced part;"), []byte("unsynced part")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // several blocks
	cases := []struct {
		name  string
		do    func(t *testing.T, dir string)
		check func(t *testing.T, dir string)
	}{
		{"write without fsync is gone", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "f"), a, false)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), nil)
		}},
		{"write with fsync stays", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "f"), a, true)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), a)
		}},
		{"append after fsync is gone", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "f"), a, true)
			write(t, filepath.Join(dir, "f"), b, false)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), a)
		}},
		{"named by a commit but never synced comes back empty", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "f"), a, false)
			write(t, filepath.Join(dir, "g"), b, true)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), []byte{})
			want(t, filepath.Join(dir, "g"), b)
		}},
		{"overwrite without fsync is undone", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "f")
			write(t, p, big, true)
			fd, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fd.WriteAt(bytes.Repeat([]byte("X"), 9000), 3000); err != nil {
				t.Fatal(err)
			}
			fd.Close()
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), big)
		}},
		{"truncate without fsync is undone", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "f")
			write(t, p, big, true)
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
			write(t, p, b, false)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), big)
		}},
		{"truncate with fsync stays", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "f")
			write(t, p, big, true)
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
			syncPath(t, p)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), big[:100])
		}},
		{"unlink without a commit is undone", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "f")
			write(t, p, a, true)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), a)
		}},
		{"unlink with a commit stays", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "f")
			write(t, p, a, true)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			syncPath(t, dir)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "f"), nil)
		}},
		{"rename over a file without a commit is undone", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "old"), a, true)
			write(t, filepath.Join(dir, "tmp"), b, true) // commits both names
			if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "old")); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "old"), a)
			want(t, filepath.Join(dir, "tmp"), b)
		}},
		{"synced temporary file renamed and committed stays", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "old"), a, true)
			write(t, filepath.Join(dir, "tmp"), b, true)
			if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "old")); err != nil {
				t.Fatal(err)
			}
			syncPath(t, dir)
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "old"), b)
			want(t, filepath.Join(dir, "tmp"), nil)
		}},
		{"directories follow the commits", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "d1", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "d1", "sub", "f"), a, true)
			if err := os.Mkdir(filepath.Join(dir, "d2"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, dir string) {
			want(t, filepath.Join(dir, "d1", "sub", "f"), a)
			if _, err := os.Stat(filepath.Join(dir, "d2")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("d2, made after the last commit, exists after the cut (%v)", err)
			}
		}},
	}
	f := mount(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(f.Path(), "case", string(rune('a'+i)))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			syncPath(t, dir)
			c.do(t, dir)
			cut(t, f)
			c.check(t, dir)
		})
	}
}

// TestCutFreezes checks that after a cut every operation fails, as on a machine
// without power, and nothing more becomes durable.
func TestCutFreezes(t *testing.T) {
	f := mount(t)
	p := filepath.Join(f.Path(), "f")
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Write([]byte("durable")); err != nil {
		t.Fatal(err)
	}
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
	s := f.Cut()
	if s.Syncs == 0 || s.Writes == 0 {
		t.Errorf("stats %+v count no write or sync", s)
	}
	if _, err := fd.Write([]byte(" and more")); !errors.Is(err, syscall.EIO) {
		t.Errorf("write after the cut: %v; want EIO", err)
	}
	if err := fd.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync after the cut: %v; want EIO", err)
	}
	fd.Close()
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	want(t, p, []byte("durable"))
}

// TestCutWriteback checks that a writeback makes everything written before it
// durable, names and contents, and nothing written after it.
func TestCutWriteback(t *testing.T) {
	f := mount(t)
	a, b := []byte("written back;"), []byte("written after")
	dir := filepath.Join(f.Path(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "f"), a, false)
	if err := f.Writeback(); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "f"), b, false)
	write(t, filepath.Join(dir, "g"), b, false)
	cut(t, f)
	want(t, filepath.Join(dir, "f"), a)
	want(t, filepath.Join(dir, "g"), nil)
	if err := f.Writeback(); err != nil {
		t.Errorf("writeback after the restart: %v", err)
	}
	f.Cut()
	if err := f.Writeback(); err == nil {
		t.Error("writeback after a cut succeeded; want an error")
	}
}
