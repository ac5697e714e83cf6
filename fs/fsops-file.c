/* fsops-file.c: FUSE low-level operations on open files: create, open,
 * read, write, flush, release, fsync, fallocate, lseek.
 *
 * A handle holds the metacache file opened with the caller's flags and, if
 * the file is a stub, an fd of its bytes in the mail cache (fetched from the
 * store on a miss at open).  What a stub means for reads and writes is the
 * engine's (engine/mailfile.c: obox_open_setup(), obox_read_fd(),
 * obox_write_begin()): the first write turns a stub back into a plain file.
 *
 * Durability of mails written in place (a plain file in a mail location):
 * fsync() stores it as a mail before returning; a file written and closed
 * without fsync is stored at release (asynchronous to close(2)), failures
 * logged.  Mails renamed or linked into place are stored by rename/link
 * (fsops-dir.c), unless fsync() stored them in maildir's tmp/ already
 * (store_on_fsync: engine/mailfile.c), which the FSYNC request does
 * without the kernel's rename lock.  fsync() of anything else is a no-op: the metacache is
 * never fsynced (CONTRACT.md section 6).
 *
 * A write or fallocate that grows a file is a growth of it until the
 * kernel has its new size, after the reply (kernelsize.c): no attribute
 * reply may give fstat() a size ahead of the kernel's i_size.  The growth
 * is registered before the reply and ends at the latest at its handle's
 * release.
 */
#include "fs.h"
#include "reqtime.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ofile {
	pthread_mutex_t lock;
	int fd;			/* the metacache file */
	int mail_fd;		/* protected by lock: cached mail bytes if a
				   stub, else -1 */
	bool dirty;		/* protected by lock: written through this */
	/* an O_PATH fd of the file on the mount (kernelsize.c), opened at
	   the first write that may grow it; -1 if none (protected by lock) */
	int kfd;
	char *stats;		/* the stats file's text, else NULL */
	size_t stats_len;
	struct ouser *user;	/* counted in its open_count, or NULL */
};

static struct ofile *ofile_get(struct fuse_file_info *fi)
{
	return (struct ofile *)(uintptr_t)fi->fh;
}

static struct ofile *ofile_new(int fd)
{
	struct ofile *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->fd = fd;
	h->mail_fd = -1;
	h->kfd = -1;
	return h;
}

static void ofile_free(struct ofile **_h)
{
	struct ofile *h = *_h;

	*_h = NULL;
	obox_user_closed(h->user);
	if (h->fd >= 0)
		close(h->fd);
	if (h->mail_fd >= 0)
		close(h->mail_fd);
	if (h->kfd >= 0)
		close(h->kfd);
	free(h->stats);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Set up the handle for the metacache fd just opened with flags (a stub
   gets its cached bytes, or loses them with O_TRUNC).  Returns 0 or
   errno. */
static int handle_setup(struct oboxfs *fs, struct ofile *h, int flags)
{
	bool written;
	int err = obox_open_setup(fs->obox, h->fd, flags, &h->mail_fd,
				  &written);

	if (err == 0 && written)
		h->dirty = true;
	return err;
}

/* handle_setup() said ENODATA: the stub's object is not in the store and
   missing_mails=drop: the engine removes the name (a change of the
   user's, as an unlink); ENOENT when it did (the open fails as for a mail
   expunged meanwhile: Dovecot resyncs), else an errno.  The kernel's
   entry of the name is dropped (after this request: kinval.c), so the
   next lookup finds the name gone. */
static int drop_missing(struct oboxfs *fs, struct oinode *inode, int fd)
{
	char name[NAME_MAX + 1];
	struct oinode *parent;
	struct stat st;
	int err = EIO;

	if (inode->user == NULL || fstat(fd, &st) < 0 ||
	    !inode_name_pin(fs, inode, &parent, name))
		return EIO;
	obox_change_begin(fs->obox, inode->user);
	obox_touched(inode->user, st.st_ino);
	err = obox_mail_drop(fs->obox, parent->fd, name, fd);
	obox_change_end(inode->user);
	if (err == ENOENT) {
		inode_name_gone(fs, &st, parent, name);
		kinval_entry(fs, parent, name);
	}
	inode_name_unpin(fs, parent);
	return err;
}

static void reply_open_error(fuse_req_t req, struct ofile *h, int err)
{
	ofile_free(&h);
	fuse_reply_err(req, err);
}

/* open: the metacache file with the caller's flags (O_TRUNC handled here,
   see handle_setup()); the stats file gets a snapshot of the counters. */
/* the statistics file's text: the engine's counters, then the FUSE
   requests' (reqtime.h) */
static char *stats_text(struct oboxfs *fs, size_t *len_r)
{
	char *engine, *text = NULL;
	size_t engine_len, len = 0;
	FILE *f;

	if ((engine = obox_stats_text(fs->obox, &engine_len)) == NULL)
		return NULL;
	if ((f = open_memstream(&text, &len)) == NULL) {
		free(engine);
		return NULL;
	}
	fwrite(engine, 1, engine_len, f);
	free(engine);
	reqtime_print(f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*len_r = len;
	return text;
}

void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *inode = inode_get(req, ino);
	struct ofile *h;
	int fd, err;

	if (inode->is_stats) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		h = ofile_new(-1);
		if (h == NULL ||
		    (h->stats = stats_text(fs, &h->stats_len)) == NULL) {
			if (h != NULL)
				ofile_free(&h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fi->direct_io = 1;
		fi->fh = (uintptr_t)h;
		fuse_reply_open(req, fi);
		return;
	}
	fd = inode_open(fs, inode, fi->flags & ~(O_NOFOLLOW | O_CREAT |
						 O_EXCL | O_TRUNC));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	h = ofile_new(fd);
	if (h == NULL) {
		close(fd);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	err = handle_setup(fs, h, fi->flags);
	if (err == ENODATA)
		err = drop_missing(fs, inode, h->fd);
	if (err != 0) {
		reply_open_error(req, h, err);
		return;
	}
	/* every change goes through this mount: keep the page cache; flush
	   does nothing (fsop_flush()): spare the kernel sending it */
	fi->keep_cache = 1;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	h->user = inode->user;
	obox_user_opened(h->user);
	if (fuse_reply_open(req, fi) == -ENOENT)
		ofile_free(&h);	/* interrupted: no release will come */
}

/* create: create (or open) name in parent; a new file is owned by the
   caller.  Files cannot be created in the root. */
void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	struct oinode *dir = inode_get(req, parent);
	struct fuse_entry_param e;
	struct ofile *h;
	bool created = true;
	unsigned int tries = 0;
	int fd, err, flags;

	err = fs_check_new_name(fs, dir, name, false);
	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	flags = (fi->flags & ~(O_NOFOLLOW | O_TRUNC)) | O_CLOEXEC;
	do {
		fd = openat(dir->fd, name, flags | O_CREAT | O_EXCL |
			    O_NOFOLLOW, mode);
	} while (fd < 0 && obox_retry_full(fs->obox, errno, &tries, 0,
					   "a create"));
	if (fd < 0 && errno == EEXIST && (fi->flags & O_EXCL) == 0) {
		created = false;
		fd = openat(dir->fd, name, (flags & ~O_CREAT) | O_NOFOLLOW);
	}
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	h = ofile_new(fd);
	if (h == NULL) {
		close(fd);
		if (created)
			(void)unlinkat(dir->fd, name, 0);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (created && fs_set_owner(req, dir->fd, name) < 0)
		err = errno;
	else if (!created)
		err = handle_setup(fs, h, fi->flags);
	if (err == ENODATA)
		err = EIO;	/* a missing mail: dropped by open(2) only */
	if (err == 0)
		err = inode_lookup(fs, dir, name, false, &e);
	if (err == 0)
		obox_touched(dir->user, e.attr.st_ino);
	if (err != 0) {
		if (created)
			(void)unlinkat(dir->fd, name, 0);
		reply_open_error(req, h, err);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	h->user = dir->user;
	obox_user_opened(h->user);
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		ofile_free(&h);
}

/* the fd to read from: the cached mail bytes while the file is a stub.
   It is checked each time: a plain file may have been stored as a mail
   meanwhile (fsync through another handle), a stub truncated or
   rewritten (setattr, another handle). */
static int read_fd(struct oboxfs *fs, struct ofile *h, int *fd_r)
{
	int ret;

	pthread_mutex_lock(&h->lock);
	ret = obox_read_fd(fs->obox, h->fd, &h->mail_fd);
	*fd_r = h->mail_fd >= 0 ? h->mail_fd : h->fd;
	pthread_mutex_unlock(&h->lock);
	return ret;
}

/* read of the stats file: replied from a copy.  Once the kernel has the
   reply, the reader may close the file and release() free h->stats while
   fuse_reply_buf() has not returned yet (ASan's writev() interceptor reads
   the buffer again after the syscall, and aborted the daemon so). */
static void read_stats(fuse_req_t req, struct ofile *h, size_t size, off_t off)
{
	char *copy;

	if (off < 0 || (size_t)off >= h->stats_len)
		size = 0;
	else if (size > h->stats_len - (size_t)off)
		size = h->stats_len - (size_t)off;
	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	copy = malloc(size);
	if (copy == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, h->stats + off, size);
	fuse_reply_buf(req, copy, size);
	free(copy);
}

/* read: from the mail cache for a stub, else the metacache file. */
void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	struct ofile *h = ofile_get(fi);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	int fd;

	(void)ino;
	if (h->stats != NULL) {
		read_stats(req, h, size, off);
		return;
	}
	if (read_fd(fs_get(req), h, &fd) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* Will a write or fallocate through h to end grow the file?  Then its
   growth begins (obox_size_grow_begin(), with ino from the caller's
   obox_write_begin()) and the handle has its fd of the file on the mount
   (kernel_fd_open(): opened before the growth begins, at the first such
   write).  Writes to one file come one at a time (the kernel holds its
   inode lock), so the answer holds until the write. */
static bool may_grow(struct oboxfs *fs, struct ofile *h, struct oinode *inode,
		     off_t end, pid_t writer)
{
	struct stat st;
	bool need;

	if (fstat(h->fd, &st) < 0 || end <= st.st_size)
		return false;
	pthread_mutex_lock(&h->lock);
	need = h->kfd < 0;
	pthread_mutex_unlock(&h->lock);
	if (need) {
		int kfd = kernel_fd_open(fs, inode, writer);

		pthread_mutex_lock(&h->lock);
		if (h->kfd < 0) {
			h->kfd = kfd;
			kfd = -1;
		}
		pthread_mutex_unlock(&h->lock);
		if (kfd >= 0)
			close(kfd);
	}
	return true;
}

/* The size of fd before a write or fallocate that may grow it, or -1. */
static off_t size_before(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -1 : st.st_size;
}

/* The file of h grew from before to end bytes: a copy of the handle's fd
   on the mount for the growth's waiter (the handle may be released once
   the reply is sent), or -1 if it did not grow or there is none. */
static int grown_kfd(struct ofile *h, off_t before, off_t end)
{
	int kfd = -1;

	if (before < 0 || end <= before)
		return -1;
	pthread_mutex_lock(&h->lock);
	if (h->kfd >= 0)
		kfd = fcntl(h->kfd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&h->lock);
	return kfd;
}

/* Before writing through h: a stub becomes a plain file again
   (obox_write_begin()); on success the file cannot be stored until
   obox_write_end(fs->obox, *ino_r) after the write. */
static int make_writable(struct oboxfs *fs, struct ofile *h, ino_t *ino_r)
{
	if (obox_write_begin(fs->obox, h->fd, ino_r) < 0)
		return -1;
	pthread_mutex_lock(&h->lock);
	if (h->mail_fd >= 0) {
		close(h->mail_fd);
		h->mail_fd = -1;
	}
	h->dirty = true;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* write_buf: to the metacache file (a stub is unstubbed first). */
void fsop_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		    off_t off, struct fuse_file_info *fi)
{
	struct ofile *h = ofile_get(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(bufv));
	struct oboxfs *fs = fs_get(req);
	unsigned int tries = 0;
	ssize_t ret;
	ino_t real_ino;
	off_t before = -1;
	int kfd = -1;
	bool grows;

	if (h->stats != NULL) {
		fuse_reply_err(req, EBADF);
		return;
	}
	grows = may_grow(fs, h, inode_get(req, ino),
			 off + (off_t)fuse_buf_size(bufv),
			 fuse_req_ctx(req)->pid);
	if (make_writable(fs, h, &real_ino) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (grows) {
		obox_size_grow_begin(fs->obox, real_ino);
		before = size_before(h->fd);
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	/* a write from memory can be tried again once cached mail made
	   room on a full disk (spliced data cannot) */
	do {
		bufv->off = 0;
		bufv->idx = 0;
		ret = fuse_buf_copy(&out, bufv, 0);
	} while (ret < 0 && (bufv->buf[0].flags & FUSE_BUF_IS_FD) == 0 &&
		 obox_retry_full(fs->obox, (int)-ret, &tries,
				 fuse_buf_size(bufv), "a write"));
	obox_write_end(fs->obox, real_ino);
	if (grows && ret > 0)
		kfd = grown_kfd(h, before, off + (off_t)ret);
	/* before the reply: h's release comes after it */
	if (grows)
		kernel_size_grown(fs, real_ino, h, kfd,
				  off + (ret > 0 ? ret : 0));
	if (ret < 0)
		fuse_reply_err(req, (int)-ret);
	else
		fuse_reply_write(req, (size_t)ret);
}

/* flush: nothing to do (locks are the kernel's; data is in the cache). */
void fsop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

int fs_file_fd(struct fuse_file_info *fi)
{
	return ofile_get(fi)->fd;
}

int fs_store_if_mail(struct oboxfs *fs, struct oinode *inode, int fd)
{
	char dir[PATH_MAX];
	const char *name;

	if (inode_dir_name(fs, inode, dir, sizeof(dir), &name) < 0)
		return errno == ENOENT ? 0 : -1;
	return obox_store_if_mail(fs->obox, fd, dir, name);
}

/* release: a plain file written in a mail location is stored now. */
void fsop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	struct ofile *h = ofile_get(fi);

	if (h->dirty && fs_store_if_mail(fs, inode_get(req, ino), h->fd) < 0) {
		fuse_log(FUSE_LOG_ERR, "storing a mail at close failed: %s\n",
			 strerror(errno));
	}
	kernel_size_released(h);
	ofile_free(&h);
	fuse_reply_err(req, 0);
}

/* fsync: a plain file in a mail location, or in a maildir tmp/
   (store_on_fsync), is stored before replying; anything else is a no-op
   (the metacache is never fsynced). */
void fsop_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		struct fuse_file_info *fi)
{
	struct oboxfs *fs = fs_get(req);
	char dir[PATH_MAX];
	const char *name;
	int ret = 0;

	(void)datasync;
	if (inode_dir_name(fs, inode_get(req, ino), dir, sizeof(dir),
			   &name) < 0) {
		if (errno != ENOENT)
			ret = -1;
	} else
		ret = obox_fsync_mail(fs->obox, fs_file_fd(fi), dir, name);
	if (ret < 0)
		fuse_reply_err(req, errno == ENAMETOOLONG ? ENAMETOOLONG : EIO);
	else
		fuse_reply_err(req, 0);
}

/* fallocate: on the metacache file (a stub is unstubbed first). */
void fsop_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		    off_t length, struct fuse_file_info *fi)
{
	struct ofile *h = ofile_get(fi);
	struct oboxfs *fs = fs_get(req);
	ino_t real_ino;
	unsigned int tries = 0;
	int err = 0, kfd = -1;
	off_t before = -1;
	bool grows;

	if (h->stats != NULL) {
		fuse_reply_err(req, EBADF);
		return;
	}
	grows = (mode & FALLOC_FL_KEEP_SIZE) == 0 &&
		may_grow(fs, h, inode_get(req, ino), offset + length,
			 fuse_req_ctx(req)->pid);
	if (make_writable(fs, h, &real_ino) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (grows) {
		obox_size_grow_begin(fs->obox, real_ino);
		before = size_before(h->fd);
	}
	do {
		err = fallocate(h->fd, mode, offset, length) < 0 ? errno : 0;
	} while (err != 0 && obox_retry_full(fs->obox, err, &tries,
					     (uint64_t)length, "fallocate"));
	obox_write_end(fs->obox, real_ino);
	if (grows && err == 0)
		kfd = grown_kfd(h, before, offset + length);
	/* before the reply: h's release comes after it */
	if (grows)
		kernel_size_grown(fs, real_ino, h, kfd, offset + length);
	fuse_reply_err(req, err);
}

/* lseek: SEEK_DATA/SEEK_HOLE on the file holding the bytes. */
void fsop_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		struct fuse_file_info *fi)
{
	struct ofile *h = ofile_get(fi);
	off_t ret;
	int fd;

	(void)ino;
	if (h->stats != NULL) {
		fuse_reply_err(req, ESPIPE);
		return;
	}
	if (read_fd(fs_get(req), h, &fd) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = lseek(fd, off, whence);
	if (ret < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, ret);
}

bool fs_file_written(struct fuse_file_info *fi)
{
	struct ofile *h = ofile_get(fi);
	bool written;

	pthread_mutex_lock(&h->lock);
	written = h->dirty;
	pthread_mutex_unlock(&h->lock);
	return written;
}
