/* fsops-dir.c: FUSE low-level operations on directories and names: mkdir,
 * mknod, symlink, link, unlink, rmdir, rename, readdir.
 *
 * Name operations are passed through to the metacache, so POSIX semantics
 * (O_EXCL, RENAME_NOREPLACE, rename onto an existing name, hard links) come
 * from the local filesystem; link, unlink and rename go through the engine
 * (obox_link(), obox_unlink(), obox_rename()), which stores a plain file
 * getting a mail name first (the operation fails with EIO and changes
 * nothing if that fails) and releases a stub's object with its last name.
 * The root holds only user directories (valid user names, see
 * obox_user_name_check()); they cannot be renamed, since the store keys
 * of their mails carry the name.
 */
#include "fs.h"

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
	if (obox_user_name_check(name, &error) < 0)
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
		err = inode_lookup(fs_get(req), parent, name, false, &e);
	if (err == 0)
		obox_touched(parent->user, e.attr.st_ino);
	if (err != 0) {
		(void)unlinkat(parent->fd, name, is_dir ? AT_REMOVEDIR : 0);
		fuse_reply_err(req, err);
		return;
	}
	fuse_reply_entry(req, &e);
}

/* mkdir: a directory in the metacache, owned by the caller.  A user
   directory (in the root) was checked against the store by track_mkdir()
   first, outside the user's tree lock. */
void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode)
{
	struct oinode *dir = inode_get(req, parent);
	int err = fs_check_new_name(fs_get(req), dir, name, true);
	unsigned int tries = 0;
	int ret;

	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	do {
		ret = mkdirat(dir->fd, name, mode);
	} while (ret < 0 && obox_retry_full(fs_get(req)->obox, errno, &tries,
					    0, "a mkdir"));
	if (ret < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	reply_created(req, dir, name, true);
}

/* mknod: regular files, FIFOs, sockets and device nodes.  A device node
   is an inert entry of the index tree (uploaded with its rdev): the mount
   is always nodev (fs/main.c), so it never opens a device.  Creating one
   in the metacache needs CAP_MKNOD; without it mknodat()'s errno is the
   reply. */
void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, dev_t rdev)
{
	struct oinode *dir = inode_get(req, parent);
	int err = fs_check_new_name(fs_get(req), dir, name, false);

	if (err == 0 && !S_ISREG(mode) && !S_ISFIFO(mode) &&
	    !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISBLK(mode))
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

/* link: a new name for an inode (obox_link(): into a mail location a
   plain file is stored first; a stub of another folder gets a stub file of
   its own for the new name). */
void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	       const char *newname)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	struct oinode *dir = inode_get(req, newparent);
	struct fuse_entry_param e;
	char path[PATH_MAX];
	int err = fs_check_new_name(fs, dir, newname, false);

	if (err == 0 && inode->is_stats)
		err = EPERM;
	if (err == 0 && inode_path(fs, dir, path, sizeof(path)) < 0)
		err = errno;
	if (err == 0) {
		int fd = inode_fd_get(fs, inode);

		err = fd < 0 ? errno :
			obox_link(fs->obox, fd, dir->fd, path, newname);
		inode_fd_put(inode, fd);
	}
	if (err == 0)
		err = inode_lookup(fs, dir, newname, false, &e);
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

	if (dir == &fs->root && strcmp(name, FS_STATS_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct stat st;
	bool known = fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	int err;

	if (known)
		obox_touched(dir->user, st.st_ino);
	err = obox_unlink(fs->obox, dir->fd, name);
	if (err == 0 && known)
		inode_name_gone(fs, &st, dir, name);
	fuse_reply_err(req, err);
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

/* obox_rename(), keeping the inode table's names right: the moved file is
   reached by its new name, a replaced one no longer by its old one.
   Returns 0 or an errno. */
static int rename_tracked(struct oboxfs *fs, struct oinode *dir,
			  const char *path, const char *name,
			  struct oinode *newdir, const char *newpath,
			  const char *newname, unsigned int flags)
{
	struct stat src, dst, now = { .st_ino = 0 };
	bool have_src, have_dst;
	int err;

	have_src = fstatat(dir->fd, name, &src, AT_SYMLINK_NOFOLLOW) == 0;
	have_dst = fstatat(newdir->fd, newname, &dst, AT_SYMLINK_NOFOLLOW) == 0;
	/* the engine's uploads read them again (obox_touched()) */
	if (have_src) {
		obox_touched(dir->user, src.st_ino);
		obox_touched(newdir->user, src.st_ino);
	}
	if (have_dst)
		obox_touched(newdir->user, dst.st_ino);
	err = obox_rename(fs->obox, dir->fd, path, name, newdir->fd, newpath,
			  newname, flags);
	if (err != 0)
		return err;
	if ((flags & RENAME_EXCHANGE) != 0) {
		if (have_src)
			inode_renamed(fs, &src, newdir, newname);
		if (have_dst)
			inode_renamed(fs, &dst, dir, name);
		return 0;
	}
	if (have_dst && (!have_src || dst.st_dev != src.st_dev ||
			 dst.st_ino != src.st_ino))
		inode_name_gone(fs, &dst, newdir, newname);
	if (!have_src)
		return 0;
	if (fstatat(newdir->fd, newname, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == src.st_dev && now.st_ino == src.st_ino)
		inode_renamed(fs, &src, newdir, newname);
	else {
		/* a relocated stub got a new file at the new name (told
		   to the engine); the old name is gone from the old one.
		   The kernel moves its entry of the source there: it must
		   look the name up (after this request: kinval.c) */
		if (now.st_ino != 0)
			obox_touched(newdir->user, now.st_ino);
		inode_name_gone(fs, &src, dir, name);
		kinval_entry(fs, newdir, newname);
	}
	return 0;
}

/* rename: renameat2() in the metacache, flags RENAME_NOREPLACE and
   RENAME_EXCHANGE supported (obox_rename(): a plain file moving into a mail
   location is stored first, a stub moving to another folder relocated, a
   stub whose last name is replaced released after). */
void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		 fuse_ino_t newparent, const char *newname,
		 unsigned int flags)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);
	struct oinode *newdir = inode_get(req, newparent);
	char path[PATH_MAX], newpath[PATH_MAX];

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
	/* the source directory's path matters only when a file moves
	   into it: in an exchange */
	if (((flags & RENAME_EXCHANGE) != 0 &&
	     inode_path(fs, dir, path, sizeof(path)) < 0) ||
	    inode_path(fs, newdir, newpath, sizeof(newpath)) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_err(req, rename_tracked(fs, dir,
					   (flags & RENAME_EXCHANGE) != 0 ?
					   path : NULL, name, newdir, newpath,
					   newname, flags));
}

struct odir_name {
	char *name;
	unsigned char type;	/* DT_* */
	uint64_t ino;
};

struct odir {
	struct ouser *user;	/* counted in its open_count, or NULL */
	DIR *dp;		/* NULL for a lazy directory's listing */
	struct dirent *entry;
	off_t offset;
	/* a lazy directory (engine/lazydir.h): its names as opendir found
	   them (obox_lazy_list()), entry i at offset i + 1, nothing
	   materialized */
	struct odir_name *names;
	size_t name_count, name_alloc;
};

static void odir_name_add(const char *name, unsigned char type, uint64_t ino,
			  void *context)
{
	struct odir *d = context;

	if (d->name_count == d->name_alloc) {
		d->name_alloc = d->name_alloc == 0 ? 64 : d->name_alloc * 2;
		d->names = realloc(d->names, d->name_alloc * sizeof(*d->names));
		if (d->names == NULL)
			abort();
	}
	d->names[d->name_count].name = strdup(name);
	if (d->names[d->name_count].name == NULL)
		abort();
	d->names[d->name_count].type = type;
	d->names[d->name_count++].ino = ino;
}

static void odir_free(struct odir *d)
{
	if (d->dp != NULL)
		closedir(d->dp);
	for (size_t i = 0; i < d->name_count; i++)
		free(d->names[i].name);
	free(d->names);
	free(d);
}

/* opendir: a DIR stream on the metacache directory. */
void fsop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct oinode *inode = inode_get(req, ino);
	struct odir *d;
	int fd, lazy;

	if (inode->is_stats) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* a lazy directory is listed with its table's names, nothing
	   materialized (lazydir.h) */
	lazy = inode->user == NULL ? 0 :
		obox_lazy_list(fs_get(req)->obox, inode->fd, odir_name_add, d);
	if (lazy < 0) {
		int saved = errno;

		odir_free(d);
		fuse_reply_err(req, saved);
		return;
	}
	fd = lazy > 0 ? -1 :
		openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lazy == 0 && (fd < 0 || (d->dp = fdopendir(fd)) == NULL)) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, saved);
		return;
	}
	fi->fh = (uintptr_t)d;
	d->user = inode->user;
	obox_user_opened(d->user);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* interrupted: no releasedir will come */
		obox_user_closed(d->user);
		odir_free(d);
	}
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' &&
		(name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* do_readdir() of a lazy directory's listing: no lookups (a readdirplus
   entry without a node id gives the kernel no inode: it looks the name up
   when it is used) */
static size_t readdir_names(fuse_req_t req, struct odir *d, char *buf,
			    size_t size, off_t off, bool plus)
{
	size_t rem = size;

	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->name_count; i++) {
		const struct odir_name *n = &d->names[i];
		struct fuse_entry_param e;
		size_t entsize;

		memset(&e, 0, sizeof(e));
		e.attr.st_ino = (ino_t)n->ino;
		e.attr.st_mode = (mode_t)n->type << 12;
		entsize = plus ?
			fuse_add_direntry_plus(req, buf, rem, n->name, &e,
					       (off_t)i + 1) :
			fuse_add_direntry(req, buf, rem, n->name, &e.attr,
					  (off_t)i + 1);
		if (entsize > rem)
			break;
		buf += entsize;
		rem -= entsize;
	}
	return size - rem;
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
	if (d->dp == NULL) {
		fuse_reply_buf(req, buf, readdir_names(req, d, buf, size, off,
						       plus));
		free(buf);
		return;
	}
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
		    obox_user_name_check(name, &error) < 0) {
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
				err = inode_lookup(fs, inode, name, true, &e);
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
	obox_user_closed(d->user);
	odir_free(d);
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
