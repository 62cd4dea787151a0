package namespaces

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// buildRoot makes the sandbox's filesystem in the init's new mount
// namespace and moves the init into it:
//
//	/            overlay: the host's root filesystem as the read-only lower
//	             layer, a tmpfs as the upper one (the sandbox's writes)
//	/proc        a new proc, of the new PID namespace
//	/dev         tmpfs with null, zero, full, random, urandom, tty, a new
//	             devpts instance and /dev/shm
//	/sys         sysfs, read-only
//	/tmp, /var/tmp, HomeDir   empty tmpfs of their own
//	Spec.Hide    empty read-only tmpfs (directories) or an empty file
//	Spec.Mounts  bind mounts
//
// Only the root filesystem of the host is the lower layer, not the
// filesystems mounted below it (the host's /proc, /dev, /run/netns, ...).
// The host's mount tree is detached at the end: nothing of it is reachable.
// Every mount lives in the namespace and goes with its last process, so
// Delete has no mounts to undo.
func buildRoot(cfg *initConfig) error {
	// Nothing done here may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	scratch := cfg.Scratch
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mount scratch tmpfs on %q: %w", scratch, err)
	}
	upper, work, root := filepath.Join(scratch, "upper"), filepath.Join(scratch, "work"), filepath.Join(scratch, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("scratch: %w", err)
		}
	}
	empty := filepath.Join(scratch, "empty")
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	opts := "lowerdir=/,upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount overlay root: %w", err)
	}

	// Host files to bind, taken while the host's tree is still reachable:
	// open_tree makes detached copies of their mounts, attached inside
	// after the switch, where targets resolve within the sandbox.
	var binds []detached
	defer func() {
		for _, b := range binds {
			unix.Close(b.fd)
		}
	}()
	for _, h := range cfg.Hide {
		if h.File {
			b, err := detach(empty, h.Path, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC)
			if err != nil {
				return fmt.Errorf("hide %q: %w", h.Path, err)
			}
			binds = append(binds, b)
		}
	}
	for _, m := range cfg.Mounts {
		var ro uint64
		if !m.Writable {
			ro = unix.MOUNT_ATTR_RDONLY
		}
		b, err := detach(m.Source, m.Target, ro)
		if err != nil {
			return fmt.Errorf("mount %q: %w", m.Source, err)
		}
		binds = append(binds, b)
	}

	if err := pivot(root); err != nil {
		return err
	}

	const (
		fixed = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		user  = unix.MS_NOSUID | unix.MS_NODEV
	)
	mounts := []struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}{
		{"proc", "/proc", "proc", fixed, ""},
		// Device nodes are made below, so not nodev; the sandbox user
		// cannot make any (no CAP_MKNOD) nor write to the directory.
		{"tmpfs", "/dev", "tmpfs", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0755,size=64k"},
		{"sysfs", "/sys", "sysfs", fixed | unix.MS_RDONLY, ""},
		{"tmpfs", "/tmp", "tmpfs", user, "mode=1777"},
		{"tmpfs", "/var/tmp", "tmpfs", user, "mode=1777"},
		{"tmpfs", sandbox.HomeDir, "tmpfs", user, fmt.Sprintf("mode=0700,uid=%d,gid=%d", cfg.UID, cfg.GID)},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
		if m.target == "/dev" {
			if err := populateDev(); err != nil {
				return err
			}
		}
	}

	// Hide before Mounts, as the Spec says: a mount may go inside a hidden
	// directory, so those are made read-only only once the mounts are in.
	var hiddenDirs []int // mount descriptors
	defer func() {
		for _, fd := range hiddenDirs {
			unix.Close(fd)
		}
	}()
	seen := map[string]bool{} // a symlink and its target come to the same
	for _, h := range cfg.Hide {
		if h.File {
			continue // among binds
		}
		p, err := mountPoint(h.Path, true)
		if err != nil {
			return fmt.Errorf("hide %q: %w", h.Path, err)
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		fd, err := emptyDir(p)
		if err != nil {
			return fmt.Errorf("hide %q: %w", h.Path, err)
		}
		hiddenDirs = append(hiddenDirs, fd)
	}
	for _, b := range binds {
		p, err := mountPoint(b.target, b.dir)
		if err != nil {
			return fmt.Errorf("mount on %q: %w", b.target, err)
		}
		if err := unix.MoveMount(b.fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("mount on %q: %w", b.target, err)
		}
	}
	// By descriptor, not path: a mount may now sit on top of the path.
	for _, fd := range hiddenDirs {
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("hide: make read-only: %w", err)
		}
	}
	return nil
}

// emptyDir mounts an empty tmpfs on p and returns the mount's descriptor.
func emptyDir(p string) (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{{"mode", "0755"}, {"size", "4k"}} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return -1, err
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, err
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// detached is a bind mount not attached anywhere yet.
type detached struct {
	fd     int
	target string
	dir    bool
}

// detach makes a detached bind mount of source, always nosuid and nodev,
// with attr set too.
func detach(source, target string, attr uint64) (detached, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return detached{}, err
	}
	attrs := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | attr}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attrs); err != nil {
		unix.Close(fd)
		return detached{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return detached{}, err
	}
	return detached{fd: fd, target: target, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

// pivot makes root the root of the mount namespace and detaches the old
// one, as runc does: pivot_root(".", ".") stacks the old root on the new,
// and unmounting "." then takes it off.
func pivot(root string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("enter old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	return nil
}

// populateDev makes the usual device nodes in a fresh /dev.
func populateDev() error {
	nodes := []struct {
		name         string
		major, minor uint32
	}{
		{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	}
	for _, n := range nodes {
		if err := unix.Mknod("/dev/"+n.name, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("make /dev/%s: %w", n.name, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil {
			return fmt.Errorf("make %s: %w", l[1], err)
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	// A devpts of the sandbox's own: its terminals are not the host's.
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount devpts: %w", err)
	}
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return nil
}

// mountPoint returns where a mount on p lands, inside the new root,
// making it if missing: a directory, or an empty file if !dir. A symlink
// at p is followed, as mount(2) would, and a dangling one gets its target
// made (say /etc/resolv.conf pointing into a /run that is not the host's).
func mountPoint(p string, dir bool) (string, error) {
	for range 40 { // the kernel's own limit on symlinks followed
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(filepath.Dir(p), t)
			}
			p = filepath.Clean(t)
		case err == nil:
			return p, nil // of the wrong type, mount says so
		case errors.Is(err, fs.ErrNotExist):
			if dir {
				return p, os.MkdirAll(p, 0o755)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return "", err
			}
			return p, f.Close()
		default:
			return "", err
		}
	}
	return "", unix.ELOOP
}
