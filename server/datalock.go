package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the data dir that a running node holds locked, so
// that a second node on the same data dir refuses to start. It holds the PID of the
// process that locked it.
const lockFileName = ".qxd.lock"

// errLocked is returned by lockFile when another open file holds the lock.
var errLocked = errors.New("locked")

// dataDirLock is an exclusive lock on a data dir, held from Start until Close. The
// kernel drops it when the process ends, however it ends: a node killed with
// SIGKILL does not block the next start.
type dataDirLock struct {
	f *os.File
}

// lockDataDir takes the data dir's lock, or says which process holds it.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %q: open lock file: %w (fix its permissions or choose another with --data)", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data dir %q: lock %s: %w", dir, path, err)
		}
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = "process " + strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("data dir %q is in use by another qxd node (%s holds %s): stop that node or choose another --data", dir, holder, lockFileName)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// release drops the lock. The file stays: removing it would let a node that opened
// it just before lock a file no longer in the directory.
func (l *dataDirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unlockFile(l.f)
	l.f.Close()
	l.f = nil
}
