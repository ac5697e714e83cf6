/* fsops-dir.c: FUSE low-level operations on directories and names: mkdir,
 * mknod, symlink, link, unlink, rmdir, rename, readdir.
 *
 * Name operations are passed through to the metacache, so POSIX semantics
 * (O_EXCL, RENAME_NOREPLACE, rename onto an existing name, hard links) come
 * from the local filesystem.  Two things are added:
 *  - a plain regular file that gets a name in a mail location (rename or
 *    link into cur/, new/, dbox-Mails/u.N) is stored in the object store
 *    first (mailstore_store()); the operation fails with EIO and changes
 *    nothing if that fails,
 *  - when a stub's last name goes (unlink, rename onto it) its object is
 *    released (objgc_release()).
 * Renames and links of stubs are pure namespace operations.
 * The root holds only user directories (valid user names, see
 * mailpath_user_name_check()); they cannot be renamed, since the store keys
 * of their mails carry the name.
 */
#include "fs.h"
#include "users.h"
#include "mailpath.h"
#include "mailstore.h"
#include "objgc.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fs_check_new_name(struct oboxfs *fs, struct oinode *parent,
		      const char *name, bool is_dir)
{
	const char *error;

	if (parent->is_stats)
		return ENOTDIR;
	if (parent != &fs->root)
		return 0;
	if (!is_dir)
		return EPERM;
	if (mailpath_user_name_check(name, &error) < 0)
		return EINVAL;
	return 0;
}

int fs_set_owner(fuse_req_t req, int dir_fd, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat dir_st;
	gid_t gid = ctx->gid;

	if (ctx->uid == 0 && ctx->gid == 0)
		return 0;
	if (fstatat(dir_fd, "", &dir_st, AT_EMPTY_PATH) < 0)
		return -1;
	if ((dir_st.st_mode & S_ISGID) != 0)
		gid = (gid_t)-1;	/* inherited from the directory */
	return fchownat(dir_fd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
}

/* reply with the entry just created as name in parent, or undo it */
static void reply_created(fuse_req_t req, struct oinode *parent,
			  const char *name, bool is_dir)
{
	struct fuse_entry_param e;
	int err = 0;

	if (fs_set_owner(req, parent->fd, name) < 0)
		err = errno;
	else
		err = inode_lookup(fs_get(req), parent, name, &e);
	if (err != 0) {
		(void)unlinkat(parent->fd, name, is_dir ? AT_REMOVEDIR : 0);
		fuse_reply_err(req, err);
		return;
	}
	fuse_reply_entry(req, &e);
}

/* mkdir: a directory in the metacache, owned by the caller. */
void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode)
{
	struct oinode *dir = inode_get(req, parent);
	int err = fs_check_new_name(fs_get(req), dir, name, true);

	if (err == 0 && dir == &fs_get(req)->root &&
	    faccessat(dir->fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		/* a user this machine does not have may be in the store:
		   creating it empty here would hide it */
		err = fs_user_load(fs_get(req), name);
		err = err == 0 ? EEXIST : err == ENOENT ? 0 : err;
	}
	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	unsigned int tries = 0;
	int ret;

	do {
		ret = mkdirat(dir->fd, name, mode);
	} while (ret < 0 &&
		 fs_retry_full(fs_get(req), errno, &tries, 0, "a mkdir"));
	if (ret < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	reply_created(req, dir, name, true);
}

/* mknod: regular files, FIFOs and sockets only (no device nodes). */
void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, dev_t rdev)
{
	struct oinode *dir = inode_get(req, parent);
	int err = fs_check_new_name(fs_get(req), dir, name, false);

	if (err == 0 && !S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		err = EPERM;
	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	if (mknodat(dir->fd, name, mode, rdev) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	reply_created(req, dir, name, false);
}

/* symlink: a metacache symlink (index tree only; never a mail). */
void fsop_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		  const char *name)
{
	struct oinode *dir = inode_get(req, parent);
	int err = fs_check_new_name(fs_get(req), dir, name, false);

	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	if (symlinkat(link, dir->fd, name) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	reply_created(req, dir, name, false);
}

/* link: a new name for an inode.  Into a mail location a plain file is
   stored first; a stub of another folder gets a stub file of its own for
   the new name (see fsops-mail.c). */
void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	       const char *newname)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	struct oinode *dir = inode_get(req, newparent);
	struct fs_mail_move mv;
	struct fuse_entry_param e;
	struct stat st;
	char proc[40], staged[FS_STAGE_NAME_MAX];
	int err = fs_check_new_name(fs, dir, newname, false);

	if (err == 0 && inode->is_stats)
		err = EPERM;
	/* an existing name fails before anything is stored (rechecked by
	   the link itself) */
	if (err == 0 && fstatat(dir->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		err = EEXIST;
	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	if (fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	    fs_mail_prepare(fs, inode->fd, &st, dir, newname, &mv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (mv.relocated) {
		if (fs_stage_stub(fs, &st, &mv.new, staged) < 0)
			err = errno;
		else {
			err = fs_rename_at(fs, fs->staging_fd, staged, dir->fd,
					   newname, RENAME_NOREPLACE);
			if (err != 0)
				fs_unstage(fs, staged);
		}
		if (err != 0) {
			(void)objgc_release(fs->gc, mv.new.key);
			fuse_reply_err(req, err);
			return;
		}
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->fd);
		if (linkat(AT_FDCWD, proc, dir->fd, newname,
			   AT_SYMLINK_FOLLOW) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
	}
	err = inode_lookup(fs, dir, newname, &e);
	if (err != 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* unlink: remove a name; a stub's last name releases its object. */
void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);

	if (dir == &fs->root && strcmp(name, MAILPATH_STATS_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, fs_unlink_at(fs, dir->fd, name));
}

/* rmdir: remove an empty directory. */
void fsop_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct oinode *dir = inode_get(req, parent);

	if (unlinkat(dir->fd, name, AT_REMOVEDIR) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

/* rename: renameat2() in the metacache, flags RENAME_NOREPLACE and
   RENAME_EXCHANGE supported.  A plain file moving into a mail location is
   stored first, a stub moving to another folder relocated (fsops-mail.c);
   a stub whose last name is replaced is released after. */
void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		 fuse_ino_t newparent, const char *newname,
		 unsigned int flags)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);
	struct oinode *newdir = inode_get(req, newparent);
	struct fs_mail_move mv = { .relocated = false };
	struct stat st;
	char staged[FS_STAGE_NAME_MAX];
	int fd, err = 0;

	if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (dir == &fs->root || newdir == &fs->root) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (dir->is_stats || newdir->is_stats) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}

	if ((flags & RENAME_NOREPLACE) != 0 &&
	    fstatat(newdir->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	/* the source (and with RENAME_EXCHANGE the destination) may get a
	   mail name: store or relocate it first */
	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 ||
	    fs_mail_prepare(fs, fd, &st, newdir, newname, &mv) < 0)
		err = errno;
	if (err == 0 && (flags & RENAME_EXCHANGE) != 0) {
		/* the destination moves into the source's place: store a
		   plain file; stubs are not relocated in an exchange */
		struct fs_mail_move xmv;
		struct stat xst;
		int xfd = openat(newdir->fd, newname,
				 O_PATH | O_NOFOLLOW | O_CLOEXEC);

		if (mv.relocated)
			(void)objgc_release(fs->gc, mv.new.key);
		mv.relocated = false;
		if (xfd < 0 || fstatat(xfd, "", &xst, AT_EMPTY_PATH) < 0 ||
		    fs_mail_prepare(fs, xfd, &xst, dir, name, &xmv) < 0)
			err = errno;
		else if (xmv.relocated)
			(void)objgc_release(fs->gc, xmv.new.key);
		if (xfd >= 0)
			close(xfd);
	}
	if (err != 0) {
		if (fd >= 0)
			close(fd);
		fuse_reply_err(req, err);
		return;
	}

	if (!mv.relocated) {
		err = fs_rename_at(fs, dir->fd, name, newdir->fd, newname, flags);
		/* the source was opened, stored and renamed by name: make
		   sure what landed is what was stored */
		if (err == 0 && (flags & RENAME_EXCHANGE) == 0 &&
		    S_ISREG(st.st_mode))
			err = fs_mail_recheck(fs, newdir, newname, &st);
	} else if (st.st_nlink == 1) {
		/* the only name: the inode itself becomes the new stub */
		mailstore_lock_inode(fs->ms, st.st_ino);
		if (stub_write(fd, &mv.new) < 0)
			err = errno;
		else {
			err = fs_rename_at(fs, dir->fd, name, newdir->fd,
					   newname, flags);
			if (err != 0)
				(void)stub_write(fd, &mv.old);
		}
		mailstore_unlock_inode(fs->ms, st.st_ino);
		(void)objgc_release(fs->gc, err == 0 ? mv.old.key : mv.new.key);
	} else {
		/* other names keep the inode and its object: the new name
		   gets a stub file of its own, the old name goes */
		if (fs_stage_stub(fs, &st, &mv.new, staged) < 0)
			err = errno;
		else {
			err = fs_rename_at(fs, fs->staging_fd, staged,
					   newdir->fd, newname, flags);
			if (err != 0)
				fs_unstage(fs, staged);
		}
		if (err != 0)
			(void)objgc_release(fs->gc, mv.new.key);
		else {
			int uerr = fs_unlink_at(fs, dir->fd, name);

			if (uerr != 0) {
				fuse_log(FUSE_LOG_ERR, "rename: unlink of the "
					 "old name failed: %s\n",
					 strerror(uerr));
			}
		}
	}
	close(fd);
	fuse_reply_err(req, err);
}

struct odir {
	struct ouser *user;	/* counted in its open_count, or NULL */
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

/* opendir: a DIR stream on the metacache directory. */
void fsop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct oinode *inode = inode_get(req, ino);
	struct odir *d;
	int fd;

	if (inode->is_stats) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d->dp = fdopendir(fd)) == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, saved);
		return;
	}
	fi->fh = (uintptr_t)d;
	d->user = inode->user;
	users_opened(d->user);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* interrupted: no releasedir will come */
		users_closed(d->user);
		closedir(d->dp);
		free(d);
	}
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' &&
		(name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi, bool plus)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	struct odir *d = (struct odir *)(uintptr_t)fi->fh;
	const char *error;
	size_t rem = size;
	char *buf, *p;
	int err = 0;

	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct fuse_entry_param e;
		fuse_ino_t entry_ino = 0;
		size_t entsize;
		const char *name;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno;
				break;
			}
		}
		name = d->entry->d_name;
		off_t nextoff = d->entry->d_off;

		if (inode == &fs->root && !is_dot_or_dotdot(name) &&
		    mailpath_user_name_check(name, &error) < 0) {
			/* not part of the tree */
			d->entry = NULL;
			d->offset = nextoff;
			continue;
		}
		if (plus) {
			if (is_dot_or_dotdot(name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				err = inode_lookup(fs, inode, name, &e);
				if (err == ENOENT) {
					/* removed meanwhile */
					err = 0;
					d->entry = NULL;
					d->offset = nextoff;
					continue;
				}
				if (err != 0)
					break;
				entry_ino = e.ino;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, name,
							 &e, nextoff);
		} else {
			struct stat st = {
				.st_ino = d->entry->d_ino,
				.st_mode = (mode_t)d->entry->d_type << 12,
			};
			entsize = fuse_add_direntry(req, p, rem, name, &st,
						    nextoff);
		}
		if (entsize > rem) {
			if (entry_ino != 0)
				inode_unref(fs, (struct oinode *)
					    (uintptr_t)entry_ino, 1);
			break;
		}
		p += entsize;
		rem -= entsize;
		d->entry = NULL;
		d->offset = nextoff;
	}
	/* an error can only be reported if nothing was added, or the lookup
	   counts of the entries already added would be wrong */
	if (err != 0 && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

/* readdir: the metacache directory's entries (the root: user dirs only). */
void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

/* readdirplus: readdir + lookup of each entry (stub sizes fixed). */
void fsop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void fsop_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct odir *d = (struct odir *)(uintptr_t)fi->fh;

	(void)ino;
	users_closed(d->user);
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

/* fsyncdir: a no-op: the metacache is never fsynced (CONTRACT.md 6). */
void fsop_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}
