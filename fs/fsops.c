/* fsops.c: FUSE low-level operations on inodes (lookup, forget, attributes,
 * statfs) and the operations table.  Directory operations are in
 * fsops-dir.c, file operations in fsops-file.c.
 *
 * Each operation replies exactly once; errors are the errno of the failing
 * metacache call, saved before any cleanup.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* seconds the kernel may remember that a user does not exist */
#define OBOXFS_ROOT_NEGATIVE_TIMEOUT 1.0

/* init: called once before any other request; no reply. */
static void fsop_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* locks stay local: the kernel handles flock/fcntl itself when we
	   do not ask for them (correct for the single mount of a cache) */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS |
			FUSE_CAP_WRITEBACK_CACHE);
}

/* lookup: resolve name in parent; replies with a referenced entry. */
static void fsop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);
	struct fuse_entry_param e;
	int err = inode_lookup(fs, dir, name, true, &e);

	/* a stub of a lazy directory not made yet (engine/lazydir.h) */
	if (err == ENOENT && dir != &fs->root && dir->is_dir &&
	    dir->user != NULL) {
		int ret = obox_lazy_lookup(fs->obox, dir->user, dir->fd, name);

		if (ret > 0)
			err = inode_lookup(fs, dir, name, true, &e);
		else if (ret < 0)
			err = errno;
	}
	if (err == 0)
		fuse_reply_entry(req, &e);
	else if (err == ENOENT) {
		/* negative entries are cached too: all changes go through
		   this mount; but a user may appear in the store (another
		   machine), so the root's are asked again soon */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = parent == FUSE_ROOT_ID ?
			OBOXFS_ROOT_NEGATIVE_TIMEOUT : fs->timeout;
		fuse_reply_entry(req, &e);
	} else
		fuse_reply_err(req, err);
}

/* forget: drop nlookup references; no reply but fuse_reply_none(). */
static void fsop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_unref(fs_get(req), inode_get(req, ino), nlookup);
	fuse_reply_none(req);
}

static void fsop_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++) {
		inode_unref(fs_get(req), inode_get(req, forgets[i].ino),
			    forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

/* The fd setattr/getattr work on: the open file's when the kernel names
   it (fstat(), ftruncate() of a file that may be unlinked), else one of
   the inode's (inode_fd_get()). */
static int attr_fd(struct oboxfs *fs, struct oinode *inode,
		   struct fuse_file_info *fi)
{
	if (fi != NULL && !inode->is_dir && !inode->is_stats &&
	    fs_file_fd(fi) >= 0)
		return fs_file_fd(fi);
	return inode_fd_get(fs, inode);
}

static void attr_fd_put(struct oinode *inode, struct fuse_file_info *fi,
			int fd)
{
	if (fi == NULL || inode->is_dir || fd != fs_file_fd(fi))
		inode_fd_put(inode, fd);
}

/* getattr: the metacache file's attributes, with a stub's mail size.  A
   file is measured with no growth of it pending: never ahead of the kernel's
   own size after a write grew it (obox_size_grow_begin(), kernelsize.c). */
static void fsop_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	bool measured = !inode->is_dir && !inode->is_stats &&
		inode != &fs->root;
	struct stat st;
	int fd, ret;

	if (measured)
		kernel_size_measure_begin(fs, inode->ino);
	if (fi != NULL && !inode->is_stats) {
		fd = attr_fd(fs, inode, fi);
		ret = fd < 0 ? -1 : obox_stat(fd, &st);
		int saved = errno;

		attr_fd_put(inode, fi, fd);
		errno = saved;
	} else {
		ret = inode_stat(fs, inode, &st);
	}
	if (measured) {
		int saved = errno;

		obox_size_measure_end(fs->obox, inode->ino);
		errno = saved;
	}
	if (ret < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, inode->is_stats ? 0 : fs->timeout);
}

/* setattr's changes on fd, inode's file.  Returns 0 or an errno. */
static int setattr_fd(struct oboxfs *fs, struct oinode *inode, int fd,
		      const struct stat *attr, int valid)
{
	char proc[40];
	int err;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((valid & FUSE_SET_ATTR_MODE) != 0 && chmod(proc, attr->st_mode) < 0)
		return errno;
	if ((valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) != 0 ?
			attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) != 0 ?
			attr->st_gid : (gid_t)-1;

		if (fchownat(fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return errno;
	}
	if ((valid & FUSE_SET_ATTR_SIZE) != 0) {
		char dir[PATH_MAX];
		const char *name = NULL;
		bool named = inode_dir_name(fs, inode, dir, sizeof(dir),
					    &name) == 0;

		err = obox_truncate(fs->obox, fd, named ? dir : NULL,
				    name, attr->st_size);
		if (err != 0)
			return err;
	}
	if ((valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) != 0) {
		struct timespec tv[2] = {
			{ .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT },
		};

		if ((valid & FUSE_SET_ATTR_ATIME_NOW) != 0)
			tv[0].tv_nsec = UTIME_NOW;
		else if ((valid & FUSE_SET_ATTR_ATIME) != 0)
			tv[0] = attr->st_atim;
		if ((valid & FUSE_SET_ATTR_MTIME_NOW) != 0)
			tv[1].tv_nsec = UTIME_NOW;
		else if ((valid & FUSE_SET_ATTR_MTIME) != 0)
			tv[1] = attr->st_mtim;
		if (utimensat(AT_FDCWD, proc, tv, 0) < 0)
			return errno;
	}
	return 0;
}

/* setattr: chmod/chown/truncate/utimens on the metacache file (the open
   file's fd when the kernel gives it); truncating a stub turns it back
   into a plain file first (obox_truncate()). */
void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int valid, struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	int fd, err;

	if (inode->is_stats) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fd = attr_fd(fs, inode, fi);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	err = setattr_fd(fs, inode, fd, attr, valid);
	attr_fd_put(inode, fi, fd);
	/* the root's owner and mode are kept in the store for every
	   machine (a failure is logged; the change holds here) */
	if (err == 0 && inode == &fs->root &&
	    (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		      FUSE_SET_ATTR_GID)) != 0)
		(void)obox_root_attr_changed(fs->obox);
	if (err != 0)
		fuse_reply_err(req, err);
	else
		fsop_getattr(req, ino, fi);
}

/* readlink: symlinks are plain metacache symlinks. */
static void fsop_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct oinode *inode = inode_get(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t len;

	if (inode->is_stats) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int fd = inode_fd_get(fs_get(req), inode);

	len = fd < 0 ? -1 : readlinkat(fd, "", buf, sizeof(buf));
	int saved = errno;

	inode_fd_put(inode, fd);
	if (len < 0) {
		fuse_reply_err(req, saved);
		return;
	}
	if ((size_t)len == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* statfs: the metacache filesystem's figures (mail objects live in the
   store and have no meaningful capacity). */
static void fsop_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	(void)ino;
	if (fstatvfs(fs_get(req)->meta_fd, &st) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}

const struct fuse_lowlevel_ops oboxfs_ops = {
	.init = fsop_init,
	.lookup = fsop_lookup,
	.forget = fsop_forget,
	.forget_multi = fsop_forget_multi,
	.getattr = fsop_getattr,
	.setattr = track_setattr,
	.readlink = fsop_readlink,
	.statfs = fsop_statfs,
	.mknod = track_mknod,
	.mkdir = track_mkdir,
	.symlink = track_symlink,
	.link = track_link,
	.unlink = track_unlink,
	.rmdir = track_rmdir,
	.rename = track_rename,
	.opendir = fsop_opendir,
	.readdir = fsop_readdir,
	.readdirplus = fsop_readdirplus,
	.releasedir = fsop_releasedir,
	.fsyncdir = fsop_fsyncdir,
	.create = track_create,
	.open = track_open,
	.read = fsop_read,
	.write_buf = track_write_buf,
	.flush = fsop_flush,
	.release = track_release,
	.fsync = track_fsync,
	.fallocate = track_fallocate,
	.lseek = fsop_lseek,
};
