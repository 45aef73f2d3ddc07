package powercut

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node that tells its FS what becomes durable and what a cut
// must undo.
type node struct {
	fusefs.LoopbackNode
	pc *FS
}

var (
	_ fusefs.NodeCreater         = (*node)(nil)
	_ fusefs.NodeOpener          = (*node)(nil)
	_ fusefs.NodeSetattrer       = (*node)(nil)
	_ fusefs.NodeFsyncer         = (*node)(nil)
	_ fusefs.NodeUnlinker        = (*node)(nil)
	_ fusefs.NodeRenamer         = (*node)(nil)
	_ fusefs.NodeOpendirHandler  = (*node)(nil)
	_ fusefs.FileWriter          = (*file)(nil)
	_ fusefs.FileWritever        = (*file)(nil)
	_ fusefs.FileAllocater       = (*file)(nil)
	_ fusefs.FileFsyncdirer      = (*dir)(nil)
	_ fusefs.FilePassthroughFder = (*file)(nil)
)

// backing is the node's path in the backing directory.
func (n *node) backing() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// lock takes the FS's lock; it fails with EIO once the power is cut.
func (n *node) lock() syscall.Errno {
	n.pc.mu.Lock()
	if n.pc.cut {
		n.pc.mu.Unlock()
		return syscall.EIO
	}
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, nil, 0, e
	}
	defer n.pc.mu.Unlock()
	p := filepath.Join(n.backing(), name)
	var st syscall.Stat_t
	existed := syscall.Lstat(p, &st) == nil
	if existed && flags&syscall.O_TRUNC != 0 && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		if err := n.pc.saveAll(p, st.Ino, st.Size); err != nil {
			return nil, nil, 0, errno(err)
		}
	}
	ch, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if e != 0 {
		return ch, fh, fl, e
	}
	f, err := n.pc.wrap(fh)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	if !existed {
		n.pc.nsDirty = true
		n.pc.track(f.ino, 0)
	}
	return ch, f, fl, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, 0, e
	}
	defer n.pc.mu.Unlock()
	if flags&syscall.O_TRUNC != 0 {
		p := n.backing()
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			if err := n.pc.saveAll(p, st.Ino, st.Size); err != nil {
				return nil, 0, errno(err)
			}
		}
	}
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return fh, fl, e
	}
	f, err := n.pc.wrap(fh)
	if err != nil {
		return nil, 0, errno(err)
	}
	return f, fl, 0
}

// saveAll keeps the synced contents of the whole file at path, about to be
// truncated to nothing. f.mu is held.
func (f *FS) saveAll(path string, ino uint64, size int64) error {
	p := f.track(ino, size)
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	return p.save(r, 0, size)
}

// wrap wraps a loopback file handle into one that tracks writes.
func (f *FS) wrap(fh fusefs.FileHandle) (*file, error) {
	lf, ok := fh.(*fusefs.LoopbackFile)
	if !ok {
		return nil, fmt.Errorf("powercut: unexpected file handle %T", fh)
	}
	fd, _ := lf.PassthroughFd()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	return &file{LoopbackFile: lf, pc: f, ino: st.Ino, fd: fd}, nil
}

func (n *node) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.pc.mu.Unlock()
	if size, ok := in.GetSize(); ok {
		var r io.ReaderAt
		var ino uint64
		var cur int64
		if f, ok := fh.(*file); ok {
			var st syscall.Stat_t
			if err := syscall.Fstat(f.fd, &st); err != nil {
				return errno(err)
			}
			r, ino, cur = f.reader(), f.ino, st.Size
			defer f.closeReader()
		} else {
			o, err := os.Open(n.backing())
			if err != nil {
				return errno(err)
			}
			defer o.Close()
			info, err := o.Stat()
			if err != nil {
				return errno(err)
			}
			r, ino, cur = o, info.Sys().(*syscall.Stat_t).Ino, info.Size()
		}
		p := n.pc.track(ino, cur)
		if err := p.save(r, int64(size), cur); err != nil {
			return errno(err)
		}
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

func (n *node) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.pc.mu.Unlock()
	if f, ok := fh.(*file); ok {
		return errno(n.pc.synced(f.ino, true))
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(n.backing(), &st); err != nil {
		return errno(err)
	}
	return errno(n.pc.synced(st.Ino, st.Mode&syscall.S_IFMT == syscall.S_IFREG))
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.pc.mu.Unlock()
	n.pc.nsDirty = true
	return errno(n.pc.toTrash(filepath.Join(n.backing(), name)))
}

func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.pc.mu.Unlock()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags == 0 {
		// A file the rename replaces keeps its inode for a cut.
		var src, dst syscall.Stat_t
		from, to := filepath.Join(n.backing(), name), filepath.Join(np.backing(), newName)
		if syscall.Lstat(from, &src) == nil && syscall.Lstat(to, &dst) == nil &&
			dst.Mode&syscall.S_IFMT != syscall.S_IFDIR && src.Ino != dst.Ino {
			if err := n.pc.toTrash(to); err != nil {
				return errno(err)
			}
		}
	}
	n.pc.nsDirty = true
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.pc.mu.Unlock()
	n.pc.nsDirty = true
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.pc.mu.Unlock()
	n.pc.nsDirty = true
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.pc.mu.Unlock()
	n.pc.nsDirty = true
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.pc.mu.Unlock()
	n.pc.nsDirty = true
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EPERM // not modelled
}

// dirStream is what a loopback directory handle does.
type dirStream interface {
	fusefs.FileReaddirenter
	fusefs.FileReleasedirer
	fusefs.FileSeekdirer
	fusefs.FileFsyncdirer
}

// dir is a directory handle whose fsync commits the namespace.
type dir struct {
	dirStream
	pc *FS
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	fh, fl, e := n.LoopbackNode.OpendirHandle(ctx, flags)
	if e != 0 {
		return fh, fl, e
	}
	ds, ok := fh.(dirStream)
	if !ok {
		return fh, fl, 0
	}
	return &dir{dirStream: ds, pc: n.pc}, fl, 0
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	d.pc.mu.Lock()
	defer d.pc.mu.Unlock()
	if d.pc.cut {
		return syscall.EIO
	}
	return errno(d.pc.synced(0, false))
}

// file is an open file whose writes are kept for a cut to undo.
type file struct {
	*fusefs.LoopbackFile
	pc  *FS
	ino uint64
	fd  int
	rd  *os.File // a readable descriptor of the same file, while saving
}

// reader returns a reader of the file's current contents, also when it was opened
// write-only; closeReader releases it.
func (f *file) reader() io.ReaderAt {
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.fd))
	if err != nil {
		return errReader{err}
	}
	f.rd = r
	return r
}

func (f *file) closeReader() {
	if f.rd != nil {
		f.rd.Close()
		f.rd = nil
	}
}

type errReader struct{ err error }

func (r errReader) ReadAt([]byte, int64) (int, error) { return 0, r.err }

// prepare records what a change of [from, to) must be able to undo. f.pc.mu is
// held.
func (f *file) prepare(from, to int64) error {
	p := f.pc.pending[f.ino]
	if p == nil {
		var st syscall.Stat_t
		if err := syscall.Fstat(f.fd, &st); err != nil {
			return err
		}
		p = f.pc.track(f.ino, st.Size)
	}
	p.wrote += max(0, to-from)
	if from >= p.size {
		return nil // an append: the cut truncates it away
	}
	defer f.closeReader()
	return p.save(f.reader(), from, to)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.pc.mu.Lock()
	defer f.pc.mu.Unlock()
	if f.pc.cut {
		return 0, syscall.EIO
	}
	f.pc.stats.Writes++
	if err := f.prepare(off, off+int64(len(data))); err != nil {
		return 0, errno(err)
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return f.Write(ctx, all, off)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	f.pc.mu.Lock()
	defer f.pc.mu.Unlock()
	if f.pc.cut {
		return syscall.EIO
	}
	if err := f.prepare(int64(off), int64(off+size)); err != nil {
		return errno(err)
	}
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}

// PassthroughFd refuses the kernel's FUSE passthrough, which would send writes
// straight to the backing file, past the tracking.
func (f *file) PassthroughFd() (int, bool) { return 0, false }
