/* fsops-mail.c: what name operations (rename, link) do for mails.
 *
 * Before a regular file gets a name in a mail location:
 *  - a plain file is stored as a mail in place (mailstore_store()): the
 *    inode keeps its identity, so the kernel's view stays right;
 *  - a stub whose object belongs to another user or folder (maildir copies
 *    with hard links via tmp/, LMTP deliveries to several users sharing a
 *    file) is stored again for its new folder (mailstore_relocate()).  The
 *    new name then gets a stub of its own: in place when the inode has no
 *    other name (rename), else a new stub file made in CACHE_DIR/staging and
 *    renamed into place.  Stub entries are given to the kernel with an entry
 *    timeout of 0, so a name that now refers to a new stub file is looked up
 *    again.
 * Names removed by the operation release their stub's object when they
 * were its last link (fs_rename_at()); so does a rewritten stub's last
 * name for the object it kept (STUB_XATTR_OLDKEY).  fs_mail_prepare()
 * decides under the inode's lock, so a concurrent fsync storing the file
 * for its old folder is seen (and relocated).
 */
#include "fs.h"
#include "ids.h"
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
#include <string.h>
#include <unistd.h>

int fs_mail_prepare(struct oboxfs *fs, int src_fd, const struct stat *st,
		    struct oinode *dir, const char *name,
		    struct fs_mail_move *mv_r)
{
	char path[PATH_MAX], proc[40];
	struct mailpath mp;
	struct stat cur;
	int fd, ret;

	memset(mv_r, 0, sizeof(*mv_r));
	if (!S_ISREG(st->st_mode))
		return 0;
	if (inode_path(fs, dir, path, sizeof(path)) < 0 ||
	    mailpath_classify(path, name, &mp) < 0)
		return -1;
	if (!mp.is_mail)
		return 0;
	/* under the inode's lock: a concurrent fsync may have just turned
	   the file into a stub (of the folder it is leaving) */
	mailstore_lock_inode(fs->ms, st->st_ino);
	if (fstatat(src_fd, "", &cur, AT_EMPTY_PATH) < 0)
		ret = -1;
	else
		ret = stub_read(src_fd, &cur, &mv_r->old);
	if (ret > 0) {
		ret = mailstore_relocate(fs->ms, &mv_r->old, path, name,
					 &mv_r->new);
		if (ret >= 0) {
			mv_r->relocated = ret > 0;
			ret = 0;
		}
	} else if (ret == 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src_fd);
		fd = open(proc, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			ret = -1;
		else {
			ret = mailstore_store(fs->ms, fd, path, name);
			int saved = errno;

			close(fd);
			errno = saved;
		}
	}
	int saved = errno;

	mailstore_unlock_inode(fs->ms, st->st_ino);
	errno = saved;
	return ret;
}

int fs_mail_recheck(struct oboxfs *fs, struct oinode *dir, const char *name,
		    const struct stat *st)
{
	struct fs_mail_move mv;
	struct stat nst;
	int fd, err = 0;

	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	if (fstatat(fd, "", &nst, AT_EMPTY_PATH) < 0)
		err = errno;
	else if (nst.st_dev == st->st_dev && nst.st_ino == st->st_ino)
		err = 0;
	else if (fs_mail_prepare(fs, fd, &nst, dir, name, &mv) < 0)
		err = errno;
	else if (mv.relocated) {
		/* a stub of another folder swapped in under us: it keeps
		   its object (as a link would have it) */
		fuse_log(FUSE_LOG_WARNING, "rename: the source was replaced "
			 "by a stub of another folder meanwhile\n");
		(void)objgc_release(fs->gc, mv.new.key);
	}
	close(fd);
	return err;
}

int fs_stage_stub(struct oboxfs *fs, const struct stat *like,
		  const struct stub *stub, char name_r[FS_STAGE_NAME_MAX])
{
	char rnd[IDS_HEX_LEN + 1];
	struct timespec times[2] = { like->st_atim, like->st_mtim };
	int fd;

	if (ids_generate(rnd) < 0)
		return -1;
	snprintf(name_r, FS_STAGE_NAME_MAX, "stub.%s", rnd);
	fd = openat(fs->staging_fd, name_r,
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
		unlinkat(fs->staging_fd, name_r, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

void fs_unstage(struct oboxfs *fs, const char *name)
{
	if (unlinkat(fs->staging_fd, name, 0) < 0) {
		fuse_log(FUSE_LOG_WARNING, "unlink(staging/%s) failed: %s\n",
			 name, strerror(errno));
	}
}

/* Open the existing file name in dir (O_PATH) before a name operation that
   may remove its last link, if it references an object: a stub's, or the
   one a rewritten stub kept (STUB_XATTR_OLDKEY) until its new content is
   stored.  Returns 1 with *fd_r and stub_r->key filled, 0 if it is missing
   or references no object, -1 on error. */
static int victim_open(int dir_fd, const char *name, int *fd_r,
		       struct stub *stub_r)
{
	struct stat st;
	int fd, ret;

	*fd_r = -1;
	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
		ret = -1;
	else {
		ret = stub_read(fd, &st, stub_r);
		if (ret == 0 && S_ISREG(st.st_mode))
			ret = stub_read_oldkey(fd, stub_r->key);
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

int fs_rename_at(struct oboxfs *fs, int old_dir_fd, const char *old_name,
		 int new_dir_fd, const char *new_name, unsigned int flags)
{
	struct stub stub;
	bool release = false;
	int vfd = -1, ret = 0, err = 0;

	pthread_mutex_lock(&fs->ns_lock);
	if (flags == 0)
		ret = victim_open(new_dir_fd, new_name, &vfd, &stub);
	if (ret < 0)
		err = errno;
	else if (renameat2(old_dir_fd, old_name, new_dir_fd, new_name,
			   flags) < 0)
		err = errno;
	else if (ret > 0)
		release = victim_gone(vfd);
	pthread_mutex_unlock(&fs->ns_lock);
	if (vfd >= 0)
		close(vfd);
	if (release)
		(void)objgc_release(fs->gc, stub.key);
	return err;
}

int fs_unlink_at(struct oboxfs *fs, int dir_fd, const char *name)
{
	struct stub stub;
	bool release = false;
	int fd, ret, err = 0;

	pthread_mutex_lock(&fs->ns_lock);
	ret = victim_open(dir_fd, name, &fd, &stub);
	if (ret < 0)
		err = errno;
	else if (unlinkat(dir_fd, name, 0) < 0)
		err = errno;
	else if (ret > 0)
		release = victim_gone(fd);
	pthread_mutex_unlock(&fs->ns_lock);
	if (fd >= 0)
		close(fd);
	if (release)
		(void)objgc_release(fs->gc, stub.key);
	return err;
}

void fs_staging_cleanup(struct oboxfs *fs)
{
	DIR *d;
	struct dirent *de;
	int fd = openat(fs->staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

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
		if (fstatat(fs->staging_fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			int sfd = openat(fs->staging_fd, de->d_name,
					 O_PATH | O_NOFOLLOW | O_CLOEXEC);

			/* a stub left by a crash: its object was never
			   referenced */
			if (sfd >= 0 && stub_read(sfd, &st, &stub) > 0)
				(void)objgc_release(fs->gc, stub.key);
			if (sfd >= 0)
				close(sfd);
		}
		unlinkat(fs->staging_fd, de->d_name, 0);
	}
	closedir(d);
}
