/* mailnames.c: what name operations (rename, link, unlink) do for mails
 * (obox.h).
 *
 * Before a regular file gets a name in a mail location:
 *  - a plain file is stored as a mail in place (mailstore_store()): the
 *    inode keeps its identity, so the front end's view stays right;
 *  - a stub whose object belongs to another user or folder (maildir copies
 *    with hard links via tmp/, LMTP deliveries to several users sharing a
 *    file) is stored again for its new folder (mailstore_relocate()).  The
 *    new name then gets a stub of its own: in place when the inode has no
 *    other name (rename), else a new stub file made in CACHE_DIR/staging and
 *    renamed into place.  (The FUSE front end gives a stub with several
 *    names to the kernel with an entry timeout of 0, and has the kernel
 *    drop its entry of a renamed name that now refers to a new stub file:
 *    fs/kinval.c.)
 * The name is classified once (mailstore_place()) and that result is
 * carried through the store or relocation.
 * Names removed by the operation release their stub's object when they
 * were its last link (rename_at(), obox_unlink()); so does a rewritten
 * stub's last name for the object it kept (STUB_XATTR_OLDKEY).
 * mail_prepare() decides under the inode's lock, so a concurrent fsync
 * storing the file for its old folder is seen (and relocated).
 *
 * A stub stored from a maildir tmp/ at its fsync (mailfile.c) is marked
 * STUB_XATTR_UNNAMED: its object never had a mail name.  Renamed or
 * linked into a mail location of its folder, it keeps its object (no
 * request: the rename of a delivery is a local one) and loses the mark
 * before the name operation (given back if that fails); into another
 * folder it is relocated as any stub.  Its file given any other name
 * outside tmp/ loses the mark too.  A marked object whose last name goes
 * (unlink, a rename onto it) is deleted at once (mailstore_drop()): it is
 * a save Dovecot aborted, which no rescan may put back.
 */
#include "obox-private.h"
#include "ids.h"
#include "log.h"
#include "mailpath.h"
#include "mailstore.h"
#include "objgc.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STAGE_NAME_MAX 64

struct mail_move {
	bool relocated;		/* the mail was stored again as new */
	/* a plain file was stored as the mail new (the file is its stub
	   now) */
	bool stored;
	/* the stub old was marked STUB_XATTR_UNNAMED (stored from tmp/,
	   never named) */
	bool unnamed;
	/* ... and mail_prepare() removed the mark: the file gets the name
	   itself (given back if the operation fails) */
	bool unnamed_cleared;
	struct stub old, new;
};

/* The regular file src_fd (stat st) gets the name name in dir, which is
   no mail location: unless that is a maildir tmp/ too, a mark
   STUB_XATTR_UNNAMED goes (an index-tree name would be in a bundle).
   Returns 0 or -1 with errno. */
static int unnamed_leave_tmp(struct obox *obox, int src_fd,
			     const struct stat *st, const char *dir,
			     const char *name, struct mail_move *mv_r)
{
	struct mailpath mp;
	int ret;

	if (mailpath_classify(dir, name, &mp) < 0 || mp.is_maildir_tmp)
		return 0;
	mailstore_lock_inode(obox->ms, st->st_ino);
	ret = stub_read_unnamed(src_fd);
	if (ret > 0) {
		ret = stub_set_unnamed(src_fd, false);
		mv_r->unnamed_cleared = ret == 0;
	}
	int saved = errno;

	mailstore_unlock_inode(obox->ms, st->st_ino);
	errno = saved;
	return ret < 0 ? -1 : 0;
}

/* the name operation mail_prepare() removed the mark for failed: the
   mark is back (if that fails, the object is released the usual way) */
static void unnamed_restore(struct obox *obox, int fd, const struct stat *st,
			    const struct mail_move *mv)
{
	if (!mv->unnamed_cleared)
		return;
	mailstore_lock_inode(obox->ms, st->st_ino);
	if (stub_set_unnamed(fd, true) < 0) {
		obox_log(OBOX_LOG_WARNING, "giving back the mark %s failed: "
			 "%s\n", STUB_XATTR_UNNAMED, strerror(errno));
	}
	mailstore_unlock_inode(obox->ms, st->st_ino);
}

/* Before the regular file src_fd (stat st) gets the name name in dir (a
   path): store it if it is plain and that is a mail location, or relocate
   it if it is a stub of another folder (then mv_r->relocated).  Returns 0
   or -1 with errno. */
static int mail_prepare(struct obox *obox, int src_fd, const struct stat *st,
			const char *dir, const char *name,
			struct mail_move *mv_r)
{
	struct mail_place place;
	char proc[40];
	struct stat cur;
	int fd, ret;

	memset(mv_r, 0, sizeof(*mv_r));
	if (!S_ISREG(st->st_mode))
		return 0;
	ret = mailstore_place(obox->ms, dir, name, &place);
	if (ret < 0)
		return -1;
	if (ret == 0)
		return unnamed_leave_tmp(obox, src_fd, st, dir, name, mv_r);
	/* under the inode's lock: a concurrent fsync may have just turned
	   the file into a stub (of the folder it is leaving) */
	mailstore_lock_inode(obox->ms, st->st_ino);
	if (fstatat(src_fd, "", &cur, AT_EMPTY_PATH) < 0)
		ret = -1;
	else
		ret = stub_read(src_fd, &cur, &mv_r->old);
	if (ret > 0) {
		ret = stub_read_unnamed(src_fd);
		mv_r->unnamed = ret > 0;
		if (ret >= 0)
			ret = mailstore_relocate(obox->ms, &mv_r->old, &place,
						 &mv_r->new);
		if (ret >= 0) {
			mv_r->relocated = ret > 0;
			ret = 0;
		}
		if (ret == 0 && mv_r->unnamed && !mv_r->relocated) {
			/* stored from tmp/ for this folder: the file gets
			   its first mail name, keeping its object */
			ret = stub_set_unnamed(src_fd, false);
			if (ret == 0) {
				mv_r->unnamed_cleared = true;
				mailstore_named(obox->ms, &place);
			}
		}
	} else if (ret == 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src_fd);
		fd = open(proc, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			ret = -1;
		else {
			ret = mailstore_store(obox->ms, fd, &place);
			if (ret == 0 && fstat(fd, &cur) == 0 &&
			    stub_read(fd, &cur, &mv_r->new) > 0)
				mv_r->stored = true;
			int saved = errno;

			close(fd);
			errno = saved;
		}
	}
	int saved = errno;

	mailstore_unlock_inode(obox->ms, st->st_ino);
	errno = saved;
	return ret;
}

/* After a rename stored the file st and moved it by name to name in dir
   (dir_fd, path dir): if that name now is another file (the source name
   was replaced between the store and the rename), store or check it the
   way mail_prepare() would have.  Returns 0 or an errno. */
static int mail_recheck(struct obox *obox, int dir_fd, const char *dir,
			const char *name, const struct stat *st)
{
	struct mail_move mv;
	struct stat nst;
	int fd, err = 0;

	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	if (fstatat(fd, "", &nst, AT_EMPTY_PATH) < 0)
		err = errno;
	else if (nst.st_dev == st->st_dev && nst.st_ino == st->st_ino)
		err = 0;
	else if (mail_prepare(obox, fd, &nst, dir, name, &mv) < 0)
		err = errno;
	else if (mv.relocated) {
		/* a stub of another folder swapped in under us: it keeps
		   its object (as a link would have it) */
		obox_log(OBOX_LOG_WARNING, "rename: the source was replaced "
			 "by a stub of another folder meanwhile\n");
		(void)objgc_discard(obox->gc, mv.new.key);
	}
	close(fd);
	return err;
}

/* The name operation that mail_prepare() stored the file fd (O_PATH is
   enough) for failed: the file becomes the plain file it was, and the
   object, which no name ever referred to, is deleted (objgc_discard()):
   the delivery was refused, and a later load must not put it back. */
static void unstore(struct obox *obox, int fd, const struct stat *st,
		    const struct mail_move *mv)
{
	char proc[40];
	int wfd, ret = -1;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	mailstore_lock_inode(obox->ms, st->st_ino);
	wfd = open(proc, O_RDWR | O_CLOEXEC);
	if (wfd >= 0) {
		ret = mailstore_unstub(obox->ms, wfd, true);
		/* the object goes now, not when the file's name goes */
		if (ret == 0 && fd_removexattr(wfd, STUB_XATTR_OLDKEY) < 0)
			ret = -1;
		close(wfd);
	}
	mailstore_unlock_inode(obox->ms, st->st_ino);
	if (ret < 0) {
		/* still a stub (or a rewritten one) of the object: released
		   with its name, as any stub */
		obox_log(OBOX_LOG_WARNING, "the name operation for mail %s "
			 "failed and the file could not be made plain again: "
			 "%s\n", mv->new.key, strerror(errno));
		return;
	}
	(void)objgc_discard(obox->gc, mv->new.key);
}

/* Make a stub file for stub in the staging directory with like's owner,
   mode and times; its name in name_r.  Returns 0 or -1 with errno. */
static int stage_stub(struct obox *obox, const struct stat *like,
		      const struct stub *stub, char name_r[STAGE_NAME_MAX])
{
	char rnd[IDS_HEX_LEN + 1];
	struct timespec times[2] = { like->st_atim, like->st_mtim };
	int fd;

	if (ids_generate(rnd) < 0)
		return -1;
	snprintf(name_r, STAGE_NAME_MAX, "stub.%s", rnd);
	fd = openat(obox->staging_fd, name_r,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    like->st_mode & 07777);
	if (fd < 0)
		return -1;
	/* the copy keeps owner, mode and times (maildir's received date) */
	if (fchown(fd, like->st_uid, like->st_gid) < 0 ||
	    fchmod(fd, like->st_mode & 07777) < 0 ||
	    stub_write(fd, stub) < 0 || futimens(fd, times) < 0) {
		int saved = errno;

		close(fd);
		unlinkat(obox->staging_fd, name_r, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

static void unstage(struct obox *obox, const char *name)
{
	if (unlinkat(obox->staging_fd, name, 0) < 0) {
		obox_log(OBOX_LOG_WARNING, "unlink(staging/%s) failed: %s\n",
			 name, strerror(errno));
	}
}

/* Open the existing file name in dir (O_PATH) before a name operation that
   may remove its last link, if it references an object: a stub's, or the
   one a rewritten stub kept (STUB_XATTR_OLDKEY) until its new content is
   stored.  Returns 1 with *fd_r and stub_r->key filled, 0 if it is missing
   or references no object, -1 on error. */
static int victim_open(int dir_fd, const char *name, int *fd_r,
		       struct stub *stub_r, bool *unnamed_r)
{
	struct stat st;
	int fd, ret;

	*fd_r = -1;
	*unnamed_r = false;
	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
		ret = -1;
	else {
		ret = stub_read(fd, &st, stub_r);
		if (ret == 0 && S_ISREG(st.st_mode))
			ret = stub_read_oldkey(fd, stub_r->key);
		if (ret > 0) {
			int unnamed = stub_read_unnamed(fd);

			*unnamed_r = unnamed > 0;
			if (unnamed < 0)
				ret = -1;
		}
	}
	if (ret <= 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return ret;
	}
	*fd_r = fd;
	return 1;
}

/* after the name operation: was that the stub's last link? */
static bool victim_gone(int fd)
{
	struct stat st;

	return fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0;
}

/* renameat2() that releases the object of a stub whose last link it
   removes (mailstore_drop()).  Returns 0 or errno. */
static int rename_at(struct obox *obox, int old_dir_fd, const char *old_name,
		     int new_dir_fd, const char *new_name, unsigned int flags)
{
	struct stub stub;
	bool release = false, unnamed = false;
	int vfd = -1, ret = 0, err = 0;

	pthread_mutex_lock(&obox->ns_lock);
	if (flags == 0)
		ret = victim_open(new_dir_fd, new_name, &vfd, &stub, &unnamed);
	if (ret < 0)
		err = errno;
	else if (renameat2(old_dir_fd, old_name, new_dir_fd, new_name,
			   flags) < 0)
		err = errno;
	else if (ret > 0)
		release = victim_gone(vfd);
	pthread_mutex_unlock(&obox->ns_lock);
	if (vfd >= 0)
		close(vfd);
	if (release)
		mailstore_drop(obox->ms, stub.key, unnamed);
	return err;
}

int obox_unlink(struct obox *obox, int dir_fd, const char *name)
{
	struct stub stub;
	bool release = false, unnamed;
	int fd, ret, err = 0;

	pthread_mutex_lock(&obox->ns_lock);
	ret = victim_open(dir_fd, name, &fd, &stub, &unnamed);
	if (ret < 0)
		err = errno;
	else if (unlinkat(dir_fd, name, 0) < 0)
		err = errno;
	else if (ret > 0)
		release = victim_gone(fd);
	pthread_mutex_unlock(&obox->ns_lock);
	if (fd >= 0)
		close(fd);
	if (release)
		mailstore_drop(obox->ms, stub.key, unnamed);
	return err;
}

/* a relocated stub's new name gets a stub file of its own (staged, then
   renamed into place with flags); its object is released on failure */
static int place_staged(struct obox *obox, const struct stat *like,
			const struct stub *stub, int dir_fd, const char *name,
			unsigned int flags)
{
	char staged[STAGE_NAME_MAX];
	int err;

	if (stage_stub(obox, like, stub, staged) < 0)
		err = errno;
	else {
		err = rename_at(obox, obox->staging_fd, staged, dir_fd, name,
				flags);
		if (err != 0)
			unstage(obox, staged);
	}
	if (err != 0)
		(void)objgc_discard(obox->gc, stub->key);
	return err;
}

int obox_link(struct obox *obox, int fd, int newdir_fd,
	      const char *newdir_path, const char *newname)
{
	struct mail_move mv;
	struct stat st;
	char proc[40];

	/* an existing name fails before anything is stored (rechecked by
	   the link itself) */
	if (fstatat(newdir_fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return EEXIST;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	    mail_prepare(obox, fd, &st, newdir_path, newname, &mv) < 0)
		return errno;
	if (mv.relocated) {
		return place_staged(obox, &st, &mv.new, newdir_fd, newname,
				    RENAME_NOREPLACE);
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, newdir_fd, newname, AT_SYMLINK_FOLLOW) < 0) {
		int err = errno;

		if (mv.stored)
			unstore(obox, fd, &st, &mv);
		unnamed_restore(obox, fd, &st, &mv);
		return err;
	}
	return 0;
}

/* RENAME_EXCHANGE: the destination moves into the source's place: store a
   plain file; stubs are not relocated in an exchange */
static int prepare_exchange(struct obox *obox, const char *olddir_path,
			    const char *name, int newdir_fd,
			    const char *newname)
{
	struct mail_move xmv;
	struct stat xst;
	int err = 0, xfd = openat(newdir_fd, newname,
				  O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (xfd < 0 || fstatat(xfd, "", &xst, AT_EMPTY_PATH) < 0 ||
	    mail_prepare(obox, xfd, &xst, olddir_path, name, &xmv) < 0)
		err = errno;
	else if (xmv.relocated)
		(void)objgc_discard(obox->gc, xmv.new.key);
	if (xfd >= 0)
		close(xfd);
	return err;
}

int obox_rename(struct obox *obox, int olddir_fd, const char *olddir_path,
		const char *name, int newdir_fd, const char *newdir_path,
		const char *newname, unsigned int flags)
{
	struct mail_move mv = { .relocated = false };
	struct stat st;
	int fd, err = 0;

	if ((flags & RENAME_NOREPLACE) != 0 &&
	    fstatat(newdir_fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return EEXIST;
	/* the source (and with RENAME_EXCHANGE the destination) may get a
	   mail name: store or relocate it first */
	fd = openat(olddir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 ||
	    mail_prepare(obox, fd, &st, newdir_path, newname, &mv) < 0)
		err = errno;
	if (err == 0 && (flags & RENAME_EXCHANGE) != 0) {
		if (mv.relocated)
			(void)objgc_discard(obox->gc, mv.new.key);
		mv.relocated = false;
		err = prepare_exchange(obox, olddir_path, name, newdir_fd,
				       newname);
	}
	if (err != 0) {
		if (fd >= 0) {
			unnamed_restore(obox, fd, &st, &mv);
			close(fd);
		}
		return err;
	}

	if (!mv.relocated) {
		err = rename_at(obox, olddir_fd, name, newdir_fd, newname,
				flags);
		if (err != 0 && mv.stored)
			unstore(obox, fd, &st, &mv);
		if (err != 0)
			unnamed_restore(obox, fd, &st, &mv);
		/* the source was opened, stored and renamed by name: make
		   sure what landed is what was stored */
		if (err == 0 && (flags & RENAME_EXCHANGE) == 0 &&
		    S_ISREG(st.st_mode))
			err = mail_recheck(obox, newdir_fd, newdir_path,
					   newname, &st);
	} else if (st.st_nlink == 1) {
		/* the only name: the inode itself becomes the new stub */
		mailstore_lock_inode(obox->ms, st.st_ino);
		if (stub_write(fd, &mv.new) < 0)
			err = errno;
		else if (mv.unnamed && stub_set_unnamed(fd, false) < 0) {
			/* the new stub is named: it must not keep the mark */
			err = errno;
			(void)stub_write(fd, &mv.old);
		} else {
			err = rename_at(obox, olddir_fd, name, newdir_fd,
					newname, flags);
			if (err != 0) {
				(void)stub_write(fd, &mv.old);
				if (mv.unnamed)
					(void)stub_set_unnamed(fd, true);
			}
		}
		mailstore_unlock_inode(obox->ms, st.st_ino);
		if (err == 0)
			mailstore_drop(obox->ms, mv.old.key, mv.unnamed);
		else
			(void)objgc_discard(obox->gc, mv.new.key);
	} else {
		/* other names keep the inode and its object: the new name
		   gets a stub file of its own, the old name goes */
		err = place_staged(obox, &st, &mv.new, newdir_fd, newname,
				   flags);
		if (err == 0) {
			int uerr = obox_unlink(obox, olddir_fd, name);

			if (uerr != 0) {
				obox_log(OBOX_LOG_ERR, "rename: unlink of the "
					 "old name failed: %s\n",
					 strerror(uerr));
			}
		}
	}
	close(fd);
	return err;
}

void obox_staging_cleanup(struct obox *obox)
{
	DIR *d;
	struct dirent *de;
	int fd = openat(obox->staging_fd, ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		struct stub stub;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(obox->staging_fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			int sfd = openat(obox->staging_fd, de->d_name,
					 O_PATH | O_NOFOLLOW | O_CLOEXEC);

			/* a stub left by a crash: no name ever referred to
			   its object */
			if (sfd >= 0 && stub_read(sfd, &st, &stub) > 0)
				(void)objgc_discard(obox->gc, stub.key);
			if (sfd >= 0)
				close(sfd);
		}
		unlinkat(obox->staging_fd, de->d_name, 0);
	}
	closedir(d);
}
