/* fsops-track.c: the operations that change a user's tree, wrapped so
 * that each runs under its user's tree lock (shared) and marks the user
 * changed (users.h): the index uploader's snapshots then never see half
 * an operation, and an unclean shutdown knows whose tree changed.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* the user a name in parent belongs to (at the root: the name's) */
static struct ouser *user_at(fuse_req_t req, fuse_ino_t parent,
			     const char *name)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);

	const char *error;

	if (dir == &fs->root) {
		/* an invalid user name is refused by the operation */
		if (name == NULL || obox_user_name_check(name, &error) < 0)
			return NULL;
		return obox_user_get(fs->obox, name);
	}
	return dir->user;
}

#define TRACKED(user, call) do { \
	struct ouser *tracked_user = (user); \
	obox_change_begin(fs_get(req)->obox, tracked_user); \
	call; \
	obox_change_end(tracked_user); \
} while (0)

/* name in parent is added or replaced (removes false) or removed
   (removes true); dir_gone: it may be a directory the operation removes
   or replaces.  A lazy directory (engine/lazydir.h) gets the name's stub
   first, or is materialized whole before a name of its table goes (so
   that it cannot come back); a lazy directory removed or replaced is
   materialized (rmdir must see it is not empty).  Returns 0 or an errno. */
static int lazy_prepare(fuse_req_t req, fuse_ino_t parent, const char *name,
			bool removes, bool dir_gone)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);
	int err;

	if (dir == &fs->root || !dir->is_dir || dir->fd < 0)
		return 0;
	err = obox_lazy_prepare(fs->obox, dir->fd, name, removes);
	if (err == 0 && dir_gone)
		err = obox_lazy_expand_at(fs->obox, dir->fd, name);
	return err;
}

/* TRACKED() of an operation on name in parent (lazy_prepare()) */
#define TRACKED_IN(user, parent, name, removes, dir_gone, call) do { \
	struct ouser *tracked_user = (user); \
	int tracked_err; \
	obox_change_begin(fs_get(req)->obox, tracked_user); \
	tracked_err = lazy_prepare(req, parent, name, removes, dir_gone); \
	if (tracked_err != 0) \
		fuse_reply_err(req, tracked_err); \
	else \
		call; \
	obox_change_end(tracked_user); \
} while (0)

/* an operation on the file inode: its user changes, and the file (the
   inode may be gone once the call replied: nothing of it is used after) */
#define TRACKED_FILE(inode, call) do { \
	struct oinode *tracked_inode = (inode); \
	struct ouser *tracked_user = tracked_inode->user; \
	obox_change_begin(fs_get(req)->obox, tracked_user); \
	obox_touched(tracked_user, tracked_inode->ino); \
	call; \
	obox_change_end(tracked_user); \
} while (0)

void track_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int valid, struct fuse_file_info *fi)
{
	TRACKED_FILE(inode_get(req, ino),
		     fsop_setattr(req, ino, attr, valid, fi));
}

void track_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev)
{
	TRACKED_IN(user_at(req, parent, name), parent, name, false, false,
		   fsop_mknod(req, parent, name, mode, rdev));
}

void track_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode)
{
	struct oboxfs *fs = fs_get(req);
	const char *error;

	if (parent == FUSE_ROOT_ID && obox_user_name_check(name, &error) == 0 &&
	    faccessat(fs->meta_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		/* a user this machine does not have may be in the store:
		   creating it empty here would hide it.  Asked before the
		   user's tree lock is taken: a load takes the user's
		   upload lock, which comes first (engine/obox-private.h) */
		int err = obox_user_load(fs->obox, name);

		if (err != ENOENT) {
			fuse_reply_err(req, err == 0 ? EEXIST : err);
			return;
		}
	}
	TRACKED_IN(user_at(req, parent, name), parent, name, false, false,
		   fsop_mkdir(req, parent, name, mode));
}

void track_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		   const char *name)
{
	TRACKED_IN(user_at(req, parent, name), parent, name, false, false,
		   fsop_symlink(req, link, parent, name));
}

void track_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname)
{
	struct ouser *user = user_at(req, newparent, newname);

	/* the source's link count changes */
	TRACKED_IN(user, newparent, newname, false, false,
		   obox_touched(user, inode_get(req, ino)->ino);
		   fsop_link(req, ino, newparent, newname));
}

void track_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	TRACKED_IN(user_at(req, parent, name), parent, name, true, false,
		   fsop_unlink(req, parent, name));
}

void track_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	TRACKED_IN(user_at(req, parent, name), parent, name, true, true,
		   fsop_rmdir(req, parent, name));
}

/* fsop_rename() once both names are ready (lazy_prepare()) */
static void rename_lazy(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	bool exchange = (flags & RENAME_EXCHANGE) != 0;
	int err = lazy_prepare(req, parent, name, true, false);

	/* the target is replaced (its table name made first), or with
	   RENAME_EXCHANGE goes to the source's place (removed here) */
	if (err == 0)
		err = lazy_prepare(req, newparent, newname, exchange,
				   !exchange);
	if (err != 0)
		fuse_reply_err(req, err);
	else
		fsop_rename(req, parent, name, newparent, newname, flags);
}

void track_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname,
		  unsigned int flags)
{
	struct oboxfs *fs = fs_get(req);
	struct ouser *a = user_at(req, parent, name);
	struct ouser *b = user_at(req, newparent, newname);

	if (a == b || a == NULL || b == NULL) {
		obox_change_begin(fs->obox, a != NULL ? a : b);
		rename_lazy(req, parent, name, newparent, newname, flags);
		obox_change_end(a != NULL ? a : b);
		return;
	}
	/* between two users (rare): both, in a fixed order */
	if (a > b) {
		struct ouser *t = a;

		a = b;
		b = t;
	}
	obox_change_begin(fs->obox, a);
	obox_change_begin(fs->obox, b);
	rename_lazy(req, parent, name, newparent, newname, flags);
	obox_change_end(b);
	obox_change_end(a);
}

void track_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi)
{
	TRACKED_IN(user_at(req, parent, name), parent, name, false, false,
		   fsop_create(req, parent, name, mode, fi));
}

void track_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		     off_t off, struct fuse_file_info *fi)
{
	TRACKED_FILE(inode_get(req, ino),
		     fsop_write_buf(req, ino, bufv, off, fi));
}

void track_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* closing a file only read changes nothing (a login is free) */
	if (!fs_file_written(fi)) {
		fsop_release(req, ino, fi);
		return;
	}
	TRACKED_FILE(inode_get(req, ino), fsop_release(req, ino, fi));
}

void track_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	TRACKED_FILE(inode_get(req, ino),
		     fsop_fsync(req, ino, datasync, fi));
}

void track_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		     off_t length, struct fuse_file_info *fi)
{
	TRACKED_FILE(inode_get(req, ino),
		     fsop_fallocate(req, ino, mode, offset, length, fi));
}

void track_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* only an open that truncates changes the file */
	if ((fi->flags & O_TRUNC) == 0) {
		fsop_open(req, ino, fi);
		return;
	}
	TRACKED_FILE(inode_get(req, ino), fsop_open(req, ino, fi));
}
