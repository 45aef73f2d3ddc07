// Package powercut is a FUSE file system for tests that simulates a power failure:
// it passes every operation through to a backing directory, remembers what was not
// yet made durable, and when the test cuts the power it throws that away, so that
// the file system mounts again with only what fsync made durable.
//
// The model is that of a journalling file system such as ext4 with its data in
// ordered mode, at its least forgiving:
//
//   - A file's contents and size are durable as of its last fsync or fdatasync.
//     Writes, truncations and extensions since then are lost; close makes nothing
//     durable.
//   - The namespace (create, mkdir, unlink, rmdir, rename, link, symlink) is
//     durable as of the last fsync of any file or directory of the file system, as
//     a journal commit makes every earlier metadata change durable at once. A file
//     that was created and named durably but never synced comes back empty.
//   - Nothing is written back in the background: a cut loses everything the
//     kernel's writeback could have saved, as if the cut came just before it.
//     A test chooses when a writeback happens instead, with Writeback.
//
// Extended attributes, modes and times are passed through and kept.
//
// Only root can mount (it uses mount(2) directly when fusermount is missing) and
// only where /dev/fuse exists; Available says whether both hold.
package powercut

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// blockSize is the unit in which the old contents of overwritten durable data are
// kept for the next cut.
const blockSize = 4096

// Available reports whether this process can mount a powercut file system, and if
// not, why not.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("powercut: /dev/fuse is missing (%v): the power-cut file system needs the kernel's FUSE device", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("powercut: mounting a FUSE file system without fusermount needs root; run the tests as root")
	}
	return nil
}

// Stats counts what the file system saw since it was mounted.
type Stats struct {
	Writes int64 // write requests
	Syncs  int64 // fsync and fdatasync requests, files and directories
	// At the last cut: the files whose contents lost unsynced changes, and the bytes
	// of data those changes wrote (appended or overwritten) that are gone.
	CutFiles int
	CutBytes int64
}

// FS is a mounted power-cut file system. Its methods are safe for concurrent use.
type FS struct {
	dir   string // holds data/ (backing), trash/ (unlinked files kept for a cut), mnt/
	mnt   string
	data  string
	trash string

	mu      sync.Mutex
	server  *fuse.Server
	cut     bool
	pending map[uint64]*pending // inode (of the backing file) → changes since its last sync
	durable map[string]entry    // path below data/ → what a cut restores there
	nsDirty bool                // the namespace changed since the last commit
	seq     int
	stats   Stats
}

// pending is what a cut must undo in one file: its size as of its last sync, and
// the old contents of the durable blocks overwritten since.
type pending struct {
	size  int64
	saved map[int64][]byte // block index → contents as of the last sync
	wrote int64            // bytes written since the last sync
}

// entry is one name in the durable namespace.
type entry struct {
	mode   fs.FileMode // type and permission bits
	ino    uint64      // regular files
	target string      // symlinks
}

// Mount mounts a power-cut file system whose state lives in dir (created if need
// be; a directory that held one before mounts with its durable contents). Files
// appear under Path.
func Mount(dir string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	f := &FS{dir: dir, mnt: filepath.Join(dir, "mnt"), data: filepath.Join(dir, "data"), trash: filepath.Join(dir, "trash")}
	for _, d := range []string{f.mnt, f.data, f.trash} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("powercut: mount %s: %w", dir, err)
		}
	}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is where the file system is mounted.
func (f *FS) Path() string { return f.mnt }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *FS) mount() error {
	// Files unlinked before the last unmount are named by nothing any more.
	if err := os.RemoveAll(f.trash); err != nil {
		return fmt.Errorf("powercut: mount %s: %w", f.dir, err)
	}
	if err := os.Mkdir(f.trash, 0o755); err != nil {
		return fmt.Errorf("powercut: mount %s: %w", f.dir, err)
	}
	ns, err := walk(f.data)
	if err != nil {
		return fmt.Errorf("powercut: mount %s: %w", f.dir, err)
	}
	f.mu.Lock()
	f.cut, f.pending, f.durable, f.nsDirty = false, map[uint64]*pending{}, ns, false
	f.stats.Writes, f.stats.Syncs = 0, 0
	f.mu.Unlock()

	var st syscall.Stat_t
	if err := syscall.Stat(f.data, &st); err != nil {
		return fmt.Errorf("powercut: mount %s: %w", f.dir, err)
	}
	root := &fusefs.LoopbackRoot{Path: f.data, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fusefs.LoopbackRoot, _ *fusefs.Inode, _ string, _ *syscall.Stat_t) fusefs.InodeEmbedder {
		return &node{LoopbackNode: fusefs.LoopbackNode{RootData: r}, pc: f}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	short := time.Second
	server, err := fusefs.Mount(f.mnt, root.RootNode, &fusefs.Options{
		EntryTimeout: &short, AttrTimeout: &short,
		MountOptions: fuse.MountOptions{
			// mount(2) directly, as root, so fusermount need not be installed.
			FsName: "powercut", Name: "powercut", DirectMount: true,
		},
	})
	if err != nil {
		return fmt.Errorf("powercut: mount at %s: %w", f.mnt, err)
	}
	f.mu.Lock()
	f.server = server
	f.mu.Unlock()
	return nil
}

// Cut cuts the power: from now on every operation fails with EIO, and what was
// not durable at this moment is gone once Restart or Unmount runs. Stop the
// processes using the file system (SIGKILL) before either.
func (f *FS) Cut() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	f.stats.CutFiles, f.stats.CutBytes = 0, 0
	for _, p := range f.pending {
		if p.wrote > 0 || len(p.saved) > 0 {
			f.stats.CutFiles++
			f.stats.CutBytes += p.wrote
		}
	}
	return f.stats
}

// Restart unmounts the file system, and if the power was cut, rolls its backing
// directory back to what was durable; then mounts it again.
func (f *FS) Restart() error {
	if err := f.Unmount(); err != nil {
		return err
	}
	return f.mount()
}

// Unmount unmounts the file system (waiting up to 10 s for its users to go), and
// if the power was cut, rolls the backing directory back to what was durable. It
// is idempotent.
func (f *FS) Unmount() error {
	f.mu.Lock()
	server := f.server
	f.server = nil
	f.mu.Unlock()
	if server == nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err = server.Unmount(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		// Detach it lazily rather than leave a mount behind.
		if lerr := syscall.Unmount(f.mnt, syscall.MNT_DETACH); lerr != nil {
			return fmt.Errorf("powercut: unmount %s: %w (lazy unmount: %v)", f.mnt, err, lerr)
		}
	}
	server.Wait()
	f.mu.Lock()
	cut := f.cut
	f.mu.Unlock()
	if cut {
		if err := f.rollBack(); err != nil {
			return err
		}
	}
	return nil
}

// rollBack makes the backing directory hold only the durable state: each file's
// contents as of its last sync, under the names of the last namespace commit.
func (f *FS) rollBack() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	where := map[uint64]string{}
	for _, d := range []string{f.data, f.trash} {
		err := filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			where[info.Sys().(*syscall.Stat_t).Ino] = p
			return nil
		})
		if err != nil {
			return fmt.Errorf("powercut: roll back %s: %w", f.dir, err)
		}
	}
	for ino, p := range f.pending {
		path, ok := where[ino]
		if !ok {
			continue
		}
		if err := p.undo(path); err != nil {
			return fmt.Errorf("powercut: roll back %s: %w", path, err)
		}
	}
	f.seq++
	next := fmt.Sprintf("%s.%d", f.data, f.seq)
	if err := os.Mkdir(next, 0o755); err != nil {
		return fmt.Errorf("powercut: roll back %s: %w", f.dir, err)
	}
	names := make([]string, 0, len(f.durable))
	for name := range f.durable {
		names = append(names, name)
	}
	sort.Strings(names) // parents before children
	for _, name := range names {
		e, dst := f.durable[name], filepath.Join(next, name)
		var err error
		switch {
		case e.mode.IsDir():
			err = os.MkdirAll(dst, e.mode.Perm())
		case e.mode&fs.ModeSymlink != 0:
			err = os.Symlink(e.target, dst)
		case e.mode.IsRegular():
			src, ok := where[e.ino]
			if !ok {
				err = fmt.Errorf("inode %d is gone", e.ino)
				break
			}
			err = os.Link(src, dst)
		}
		if err != nil {
			return fmt.Errorf("powercut: roll back %s: %w", name, err)
		}
	}
	for _, d := range []string{f.data, f.trash} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("powercut: roll back %s: %w", f.dir, err)
		}
	}
	if err := os.Rename(next, f.data); err != nil {
		return fmt.Errorf("powercut: roll back %s: %w", f.dir, err)
	}
	if err := os.Mkdir(f.trash, 0o755); err != nil {
		return fmt.Errorf("powercut: roll back %s: %w", f.dir, err)
	}
	return nil
}

// undo restores the file at path to its last synced contents.
func (p *pending) undo(path string) error {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := fd.Truncate(p.size); err != nil {
		return err
	}
	for b, old := range p.saved {
		if _, err := fd.WriteAt(old, b*blockSize); err != nil {
			return err
		}
	}
	return nil
}

// walk lists the namespace below root.
func walk(root string) (map[string]entry, error) {
	ns := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		info, err := de.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode(), ino: info.Sys().(*syscall.Stat_t).Ino}
		if info.Mode()&fs.ModeSymlink != 0 {
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		ns[rel] = e
		return nil
	})
	return ns, err
}

// track returns the pending changes of the file with inode ino and the given
// current size, starting them if the file has none. f.mu is held.
func (f *FS) track(ino uint64, size int64) *pending {
	p := f.pending[ino]
	if p == nil {
		p = &pending{size: size, saved: map[int64][]byte{}}
		f.pending[ino] = p
	}
	return p
}

// save keeps the synced contents of the blocks of [from, to) that a change is
// about to overwrite, read from r. f.mu is held.
func (p *pending) save(r io.ReaderAt, from, to int64) error {
	to = min(to, p.size)
	for b := from / blockSize; b*blockSize < to; b++ {
		if _, ok := p.saved[b]; ok {
			continue
		}
		buf := make([]byte, min(blockSize, p.size-b*blockSize))
		if _, err := r.ReadAt(buf, b*blockSize); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		p.saved[b] = buf
	}
	return nil
}

// Writeback makes everything written so far durable at once, as the kernel's
// background writeback of dirty pages followed by a journal commit does: every
// file's contents and size as they are now, and the namespace. A cut after it
// loses only what changes after it. It fails once the power is cut.
func (f *FS) Writeback() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return errors.New("powercut: writeback after the power was cut")
	}
	clear(f.pending)
	f.nsDirty = true
	if err := f.commit(); err != nil {
		return fmt.Errorf("powercut: writeback %s: %w", f.dir, err)
	}
	return nil
}

// synced makes the file with inode ino durable as it is, and commits the
// namespace. f.mu is held.
func (f *FS) synced(ino uint64, file bool) error {
	f.stats.Syncs++
	if file {
		delete(f.pending, ino)
	}
	return f.commit()
}

// commit makes the namespace as it is now durable, if it changed since the last
// commit. f.mu is held.
func (f *FS) commit() error {
	if !f.nsDirty {
		return nil
	}
	ns, err := walk(f.data)
	if err != nil {
		return err
	}
	f.durable, f.nsDirty = ns, false
	// Unlinked files the durable namespace no longer names can go now.
	named := map[uint64]bool{}
	for _, e := range ns {
		if e.mode.IsRegular() {
			named[e.ino] = true
		}
	}
	des, err := os.ReadDir(f.trash)
	if err != nil {
		return err
	}
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			continue
		}
		ino := info.Sys().(*syscall.Stat_t).Ino
		if !named[ino] {
			_ = os.Remove(filepath.Join(f.trash, de.Name()))
			delete(f.pending, ino)
		}
	}
	return nil
}

// toTrash moves the file at path out of the namespace, keeping its inode for a
// cut that restores the name. f.mu is held.
func (f *FS) toTrash(path string) error {
	f.seq++
	return os.Rename(path, filepath.Join(f.trash, fmt.Sprintf("%s.%d", filepath.Base(path), f.seq)))
}

// errno is the errno of err, EIO if it has none.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// String describes the file system, for test logs.
func (f *FS) String() string {
	s := f.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "powercut fs at %s: %d writes, %d syncs", f.mnt, s.Writes, s.Syncs)
	if s.CutFiles > 0 {
		fmt.Fprintf(&b, "; the last cut lost %d bytes written to %d files", s.CutBytes, s.CutFiles)
	}
	return b.String()
}
