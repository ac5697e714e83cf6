/* mailfile.c: open files of the tree and what they mean for mails
 * (obox.h).
 *
 * A stub's bytes are read from the mail cache (fetched from the store on a
 * miss).  The first write to a stub turns it back into a plain file
 * (mailstore_unstub(): its bytes copied back; a rewritten mail becomes a
 * new object, objects are never overwritten, and the old object is
 * released only once the new one is stored).  Stub state is checked on
 * every write, and writes hold the inode's lock shared so they never
 * interleave with a store (mailstore.h).  Opening with O_TRUNC drops a
 * stub's bytes at once; truncating a stub without a handle stores the
 * result at once.
 *
 * Durability of mails written in place (a plain file in a mail location):
 * fsync() stores it as a mail before returning (obox_store_if_mail()); a
 * file written and closed without fsync is stored at close.
 *
 * A maildir delivery is written in tmp/, fsync()ed and renamed into new/
 * (or cur/).  With store_on_fsync (the default) the fsync stores it
 * (obox_fsync_mail(): mailstore_tmp_place(), the stub marked unnamed,
 * mailstore.h), in a request that holds no kernel lock, and the rename is
 * a local one; Linux serializes cross-directory renames of a file system
 * (s_vfs_rename_mutex), so a PUT inside rename() stores one mail at a
 * time for the whole mount.  A tmp/ file that was not fsynced, whose
 * store failed, or that was written again after it, is stored by the
 * rename as before: rename() into new/ or cur/ still returns only once
 * the mail is stored.  A failed store at fsync is EIO (Dovecot fails
 * the save with a temporary error and unlinks the tmp/ file).  Closing a
 * tmp/ file does not store it.  fsync of
 * anything else is a no-op: the metacache is never fsynced (CONTRACT.md
 * section 6).
 */
#include "obox-private.h"
#include "log.h"
#include "cachedir.h"
#include "mailcache.h"
#include "mailmissing.h"
#include "mailstore.h"
#include "stub.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cached mail evicted at least per ENOSPC retry */
#define ENOSPC_EVICT (8ULL * 1024 * 1024)

int obox_stub_size(int fd, const struct stat *st, uint64_t *size_r)
{
	struct stub stub;
	int ret = stub_read(fd, st, &stub);

	if (ret > 0)
		*size_r = stub.size;
	return ret;
}

int obox_stat(int fd, struct stat *st_r)
{
	if (fstatat(fd, "", st_r, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	return stub_fix_stat(fd, st_r);
}

/* the errno of a failed mailcache_open() of key (errno set) */
static int open_error(struct obox *obox, const char *key)
{
	if (errno != CACHEDIR_ERR_MISSING)
		return errno;
	mailmissing_noted(obox->missing, key);
	return obox->set.missing_mails == OBOX_MISSING_MAILS_DROP ?
		ENODATA : EIO;
}

int obox_open_setup(struct obox *obox, int fd, int flags, int *mail_fd_r,
		    bool *written_r)
{
	struct stat st;
	struct stub stub;
	int ret;

	*mail_fd_r = -1;
	*written_r = false;
	if (fstat(fd, &st) < 0)
		return errno;
	ret = stub_read(fd, &st, &stub);
	if (ret < 0)
		return errno;
	if (ret > 0 && (flags & O_TRUNC) != 0) {
		mailstore_lock_inode(obox->ms, st.st_ino);
		ret = mailstore_unstub(obox->ms, fd, false);
		mailstore_unlock_inode(obox->ms, st.st_ino);
		if (ret < 0)
			return errno;
		/* stored (empty) at close unless written: the old object
		   is released only then */
		*written_r = true;
		ret = 0;
	}
	if (ret > 0) {
		if (mailcache_open(obox->mailcache, stub.key, stub.size,
				   mail_fd_r) < 0)
			return open_error(obox, stub.key);
	} else if ((flags & O_TRUNC) != 0 && ftruncate(fd, 0) < 0)
		return errno;
	return 0;
}

int obox_read_fd(struct obox *obox, int fd, int *mail_fd)
{
	struct stat st;
	struct stub stub;
	int ret;

	if (fstat(fd, &st) < 0)
		ret = -1;
	else
		ret = stub_read(fd, &st, &stub);
	if (ret == 0 && *mail_fd >= 0) {
		close(*mail_fd);
		*mail_fd = -1;
	} else if (ret > 0 && *mail_fd < 0) {
		ret = mailcache_open(obox->mailcache, stub.key, stub.size,
				     mail_fd);
		if (ret < 0) {
			int err = open_error(obox, stub.key);

			errno = err == ENODATA ? EIO : err;
		}
	}
	return ret < 0 ? -1 : 0;
}

int obox_write_begin(struct obox *obox, int fd, ino_t *ino_r)
{
	struct stat st;
	struct stub stub;
	int ret;

	if (fstat(fd, &st) < 0)
		return -1;
	*ino_r = st.st_ino;
	mailstore_lock_inode_shared(obox->ms, st.st_ino);
	for (;;) {
		/* stub_read() is one fstat() for a non-empty file */
		if (fstat(fd, &st) < 0)
			ret = -1;
		else
			ret = stub_read(fd, &st, &stub);
		if (ret <= 0)
			break;
		mailstore_unlock_inode(obox->ms, *ino_r);
		mailstore_lock_inode(obox->ms, *ino_r);
		ret = mailstore_unstub(obox->ms, fd, true);
		mailstore_unlock_inode(obox->ms, *ino_r);
		if (ret < 0)
			return -1;
		/* check again: it may have been stored again meanwhile */
		mailstore_lock_inode_shared(obox->ms, *ino_r);
	}
	if (ret < 0) {
		int saved = errno;

		mailstore_unlock_inode(obox->ms, *ino_r);
		errno = saved;
		return -1;
	}
	return 0;
}

void obox_write_end(struct obox *obox, ino_t ino)
{
	mailstore_unlock_inode(obox->ms, ino);
}

/* store the regular file fd (stat st) at place (mailstore_store()) */
static int store_at(struct obox *obox, int fd, const struct stat *st,
		    const struct mail_place *place)
{
	char proc[40];
	int wfd, ret;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	wfd = open(proc, O_RDWR | O_CLOEXEC);
	if (wfd < 0)
		return -1;
	mailstore_lock_inode(obox->ms, st->st_ino);
	ret = mailstore_store(obox->ms, wfd, place);
	mailstore_unlock_inode(obox->ms, st->st_ino);
	int saved = errno;

	close(wfd);
	errno = saved;
	return ret;
}

/* Store the regular file fd named dir/name if that is a mail location,
   or, at_fsync (store_on_fsync), a maildir tmp/ name of a file with no
   other name (a hard link of a mail is stored by its rename). */
static int store_named(struct obox *obox, int fd, const char *dir,
		       const char *name, bool at_fsync)
{
	struct mail_place place;
	struct stat st;
	int ret;

	if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
		return -1;
	if (!S_ISREG(st.st_mode))
		return 0;
	ret = mailstore_place(obox->ms, dir, name, &place);
	if (ret == 0 && at_fsync && obox->set.store_on_fsync &&
	    st.st_nlink == 1)
		ret = mailstore_tmp_place(obox->ms, dir, name, &place);
	if (ret <= 0)
		return ret;
	return store_at(obox, fd, &st, &place);
}

int obox_store_if_mail(struct obox *obox, int fd, const char *dir,
		       const char *name)
{
	return store_named(obox, fd, dir, name, false);
}

int obox_fsync_mail(struct obox *obox, int fd, const char *dir,
		    const char *name)
{
	return store_named(obox, fd, dir, name, true);
}

int obox_truncate(struct obox *obox, int fd, const char *dir,
		  const char *name, off_t size)
{
	char proc[40];
	struct stat st;
	struct stub stub;
	int wfd, ret, was_stub = 0;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	wfd = open(proc, O_WRONLY | O_CLOEXEC);
	if (wfd < 0)
		return errno;
	if (fstat(wfd, &st) < 0)
		ret = -1;
	else {
		mailstore_lock_inode(obox->ms, st.st_ino);
		ret = was_stub = stub_read(wfd, &st, &stub);
		if (ret > 0)
			ret = mailstore_unstub(obox->ms, wfd, size > 0);
		if (ret >= 0)
			ret = ftruncate(wfd, size);
		mailstore_unlock_inode(obox->ms, st.st_ino);
	}
	int saved = errno;

	close(wfd);
	if (ret < 0)
		return saved;
	/* a stored mail changed: store it again now (a plain file being
	   written is stored by its writer at fsync/close) */
	if (was_stub > 0 && dir != NULL &&
	    obox_store_if_mail(obox, fd, dir, name) < 0) {
		obox_log(OBOX_LOG_ERR, "storing a truncated mail failed: %s\n",
			 strerror(errno));
		return errno == ENAMETOOLONG ? ENAMETOOLONG : EIO;
	}
	return 0;
}

/* the cache disk is full: evict cached mail (logged at most every 10 s) */
static bool disk_full(struct obox *obox, uint64_t want, const char *what)
{
	static atomic_int_fast64_t last_log;
	struct timespec ts;
	uint64_t bytes = want * 2 > ENOSPC_EVICT ? want * 2 : ENOSPC_EVICT;
	bool freed = mailcache_shrink(obox->mailcache, bytes) == 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec - atomic_load(&last_log) >= 10) {
		atomic_store(&last_log, ts.tv_sec);
		if (freed) {
			obox_log(OBOX_LOG_WARNING, "the cache disk is full "
				 "(ENOSPC on %s in the metacache): evicting "
				 "%llu bytes of cached mail to make room; "
				 "cache_size may be too large for the disk\n",
				 what, (unsigned long long)bytes);
		} else {
			obox_log(OBOX_LOG_ERR, "the cache disk is full "
				 "(ENOSPC on %s in the metacache) and no "
				 "cached mail is left to evict: failing with "
				 "ENOSPC\n", what);
		}
	}
	return freed;
}

bool obox_retry_full(struct obox *obox, int err, unsigned int *tries,
		     uint64_t want, const char *what)
{
	if (err != ENOSPC || *tries >= OBOX_ENOSPC_RETRIES)
		return false;
	(*tries)++;
	return disk_full(obox, want, what);
}
