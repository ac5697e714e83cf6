/* putback.c: a mail back from the store as a stub (see putback.h). */
#include "putback-private.h"
#include "bundle.h"
#include "dovecotfmt.h"
#include "dovecotidx.h"
#include "log.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* the longest "mtime" taken: 18 digits cannot overflow 64 bits */
#define PUTBACK_MTIME_DIGITS_MAX 18

/* NULL if the mail's metadata is usable (fills mail), else why not */
static const char *meta_check(struct putback_mail *mail)
{
	const char *error, *last;

	if (mail->path == NULL || mail->name == NULL)
		return "no path/name metadata";
	if (bundle_path_check(mail->path, strlen(mail->path), &error) < 0)
		return "invalid path metadata";
	last = strrchr(mail->path, '/');
	last = last == NULL ? mail->path : last + 1;
	mail->dir = mailpath_mail_dir(last);
	mail->dir_name = last;
	if (mail->dir == MAILPATH_DIR_TMP) {
		/* stored at its fsync in tmp/, then renamed (maybe) into
		   new/ or cur/ (putback.h): it comes back in new/ */
		mail->dir = MAILPATH_DIR_NEW;
		mail->dir_name = "new";
	}
	if (mail->dir == MAILPATH_DIR_OTHER)
		return "path metadata is not a cur, new, tmp or dbox-Mails "
			"directory";
	if (mailpath_mail_name_check(mail->dir, mail->name, &error) < 0) {
		return mail->dir == MAILPATH_DIR_DBOX_MAILS &&
			mailpath_mail_name_check(MAILPATH_DIR_CUR, mail->name,
						 &error) == 0 ?
			"name metadata is not an sdbox mail name (u.N)" :
			"invalid name metadata";
	}
	if (mail->st.size > INT64_MAX)
		return "invalid size";
	return NULL;
}

/* the "mtime" metadata if valid, else the object's Last-Modified */
static time_t meta_mtime(const struct objstore_stat *st)
{
	const char *value = objstore_stat_meta(st, "mtime");
	long long secs = 0;

	if (value == NULL || value[0] == '\0' ||
	    strlen(value) > PUTBACK_MTIME_DIGITS_MAX)
		return st->mtime;
	for (size_t i = 0; value[i] != '\0'; i++) {
		if (value[i] < '0' || value[i] > '9')
			return st->mtime;
		secs = secs * 10 + (value[i] - '0');
	}
	return (time_t)secs;
}

const char *putback_mail_from_stat(struct putback_mail *mail)
{
	const char *reason;

	mail->path = objstore_stat_meta(&mail->st, "path");
	mail->name = objstore_stat_meta(&mail->st, "name");
	reason = meta_check(mail);
	if (reason == NULL)
		mail->mtime = meta_mtime(&mail->st);
	return reason;
}

int putback_head(struct objstore *store, const char *key, const char *who,
		 struct putback_mail *mail_r)
{
	const char *reason;

	memset(mail_r, 0, sizeof(*mail_r));
	if (objstore_head(store, key, &mail_r->st) < 0)
		return -1;
	reason = putback_mail_from_stat(mail_r);
	if (reason != NULL) {
		obox_log(OBOX_LOG_ERR, "%s: mail %s not put back: %s\n", who,
			 key, reason);
		putback_mail_free(mail_r);
		return 0;
	}
	return 1;
}

void putback_mail_free(struct putback_mail *mail)
{
	objstore_stat_free(&mail->st);
	memset(mail, 0, sizeof(*mail));
}

int putback_subdir_open(int parent_fd, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(parent_fd, name, flags);
	struct stat st;

	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (fstat(parent_fd, &st) < 0 ||
	    mkdirat(parent_fd, name, 0700) < 0 ||
	    fchmodat(parent_fd, name, st.st_mode & 02777, 0) < 0 ||
	    (geteuid() == 0 &&
	     fchownat(parent_fd, name, st.st_uid, st.st_gid,
		      AT_SYMLINK_NOFOLLOW) < 0))
		return -1;
	return openat(parent_fd, name, flags);
}

/* the mail's directory below folder_fd; a maildir gets cur, new, tmp */
static int mail_dir_open(int folder_fd, const struct putback_mail *mail)
{
	static const char *const subdirs[] = { "cur", "new", "tmp" };
	int fd = putback_subdir_open(folder_fd, mail->dir_name);

	if (fd < 0 || mail->dir == MAILPATH_DIR_DBOX_MAILS)
		return fd;
	for (size_t i = 0; i < 3; i++) {
		int sub = putback_subdir_open(folder_fd, subdirs[i]);

		if (sub >= 0)
			close(sub);
	}
	return fd;
}

/* the stub name in dir_fd: 1, 0 if it exists, -1 with errno */
static int stub_create(int dir_fd, const char *name, const struct stub *stub,
		       time_t mtime)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 0 } };
	struct stat st;
	int fd, saved;

	if (fstat(dir_fd, &st) < 0)
		return -1;
	fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	if (stub_write(fd, stub) < 0 || fchmod(fd, st.st_mode & 0666) < 0 ||
	    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) ||
	    futimens(fd, ts) < 0) {
		saved = errno;
		close(fd);
		(void)unlinkat(dir_fd, name, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	return 1;
}

/* dir_fd/name is a stub of key */
static bool stub_has_key(int dir_fd, const char *name, const char *key)
{
	int fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stub stub;
	struct stat st;
	bool same;

	if (fd < 0)
		return false;
	same = fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 &&
		S_ISREG(st.st_mode) && stub_read(fd, &st, &stub) > 0 &&
		strcmp(stub.key, key) == 0;
	close(fd);
	return same;
}

/* u.<the highest of every u.<digits> in dir_fd and next_uid - 1, + 1>
   into name_r; -1 with errno */
static int sdbox_next_name(int dir_fd, uint32_t next_uid,
			   char name_r[MAILPATH_NAME_MAX + 1])
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	unsigned long long max = next_uid > 0 ? next_uid - 1 : 0;
	struct dirent *de;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		unsigned long long uid;

		if (!mailpath_is_sdbox_mail_name(de->d_name) ||
		    strlen(de->d_name) > 2 + 10)
			continue;
		uid = strtoull(de->d_name + 2, NULL, 10);
		if (uid > max)
			max = uid;
	}
	closedir(dir);
	if (max >= UINT32_MAX - 1) {
		obox_log(OBOX_LOG_ERR, "putback: no sdbox UID is left above "
			 "u.%llu\n", max);
		errno = EOVERFLOW;
		return -1;
	}
	snprintf(name_r, MAILPATH_NAME_MAX + 1, "u.%llu", max + 1);
	return 0;
}

/* the UID of an sdbox mail name u.N (mailpath_is_sdbox_mail_name()) */
static unsigned long long sdbox_name_uid(const char *name)
{
	return strtoull(name + 2, NULL, 10);
}

int putback_create(int folder_fd, const struct putback_mail *mail,
		   const char *key, enum putback_stage *stage_r,
		   char *renamed_r)
{
	struct stub stub;
	uint32_t next_uid = 0;
	int dir_fd, ret, saved;

	*stage_r = PUTBACK_STAGE_DIR;
	if ((size_t)snprintf(stub.key, sizeof(stub.key), "%s", key) >=
	    sizeof(stub.key)) {
		*stage_r = PUTBACK_STAGE_STUB;
		errno = ENAMETOOLONG;
		return -1;
	}
	stub.size = mail->st.size;
	if ((dir_fd = mail_dir_open(folder_fd, mail)) < 0)
		return -1;
	*stage_r = PUTBACK_STAGE_STUB;
	renamed_r[0] = '\0';
	if (mail->dir == MAILPATH_DIR_DBOX_MAILS) {
		if (stub_has_key(dir_fd, mail->name, key)) {
			close(dir_fd);
			return 0;	/* this very mail: nothing to do */
		}
		/* the UIDs Dovecot gave here: one of them, expunged since,
		   is not given again.  Index files that cannot be read, or
		   a next UID at the end of the range (damaged), leave the
		   rule of the names alone: a mail is never kept out for
		   them */
		if (dovecotidx_next_uid(dir_fd, &next_uid) < 0) {
			obox_log(OBOX_LOG_WARNING, "putback: reading the "
				 "sdbox index of %s failed (%s): the UIDs of "
				 "its files alone decide\n", mail->path,
				 strerror(errno));
			next_uid = 0;
		} else if (next_uid >= UINT32_MAX - 1) {
			obox_log(OBOX_LOG_WARNING, "putback: the sdbox "
				 "index of %s gives next UID %u (damaged?): "
				 "the UIDs of its files alone decide\n",
				 mail->path, next_uid);
			next_uid = 0;
		}
	}
	ret = mail->dir == MAILPATH_DIR_DBOX_MAILS &&
		sdbox_name_uid(mail->name) < next_uid ? 0 :
		stub_create(dir_fd, mail->name, &stub, mail->mtime);
	while (ret == 0 && mail->dir == MAILPATH_DIR_DBOX_MAILS) {
		/* the UID is another mail's, or was given here before: the
		   next free one (a create racing this one takes it: the
		   next after it) */
		if (sdbox_next_name(dir_fd, next_uid, renamed_r) < 0) {
			ret = -1;
			break;
		}
		ret = stub_create(dir_fd, renamed_r, &stub, mail->mtime);
	}
	saved = errno;
	close(dir_fd);
	errno = saved;
	return ret;
}

/* A dovecot.index.log record that sets MAIL_INDEX_HDR_FLAG_FSCKD (0x4) in
   the index header's flags (offset 20): a header update, 16 bytes, as
   Dovecot 2.3 writes it (size as mail_index_uint32_to_offset(16), type
   MAIL_TRANSACTION_EXTERNAL | MAIL_TRANSACTION_HEADER_UPDATE, then
   offset 20, size 4, value 4, little-endian).  sdbox rebuilds an index
   with that flag from its u.N files, keeping UIDs, UIDVALIDITY, flags and
   keywords of the mails the index knows. */
const unsigned char putback_sdbox_fsckd[PUTBACK_SDBOX_FSCKD_SIZE] = {
	0x80, 0x80, 0x80, 0x84, 0x20, 0x00, 0x00, 0x10,
	0x14, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00,
};

/* The header of a new dovecot.index.log as Dovecot 2.3 writes it
   (struct mail_transaction_log_header, 40 bytes, host byte order):
   version 1.3, header size, index id and creation time (now), file
   sequence 1, no previous file, initial modseq 1, compat flags (1: little
   endian). */
static void sdbox_log_header(unsigned char hdr[PUTBACK_SDBOX_LOG_HDR_SIZE])
{
	uint32_t now = (uint32_t)time(NULL), one = 1;
	uint16_t size = PUTBACK_SDBOX_LOG_HDR_SIZE;
	uint64_t modseq = 1;

	memset(hdr, 0, PUTBACK_SDBOX_LOG_HDR_SIZE);
	hdr[0] = 1;			/* major version */
	hdr[1] = 3;			/* minor version */
	memcpy(hdr + 2, &size, 2);	/* hdr_size */
	memcpy(hdr + 4, &now, 4);	/* indexid */
	memcpy(hdr + 8, &one, 4);	/* file_seq */
	memcpy(hdr + 20, &now, 4);	/* create_stamp */
	memcpy(hdr + 24, &modseq, 8);	/* initial_modseq */
	hdr[DOVECOTFMT_LOG_COMPAT_FLAGS] = dovecotfmt_compat_flags();
}

/* A folder without any index (its files loaded from their objects alone):
   a new dovecot.index.log holding only the FSCKD record, so that Dovecot's
   first open rebuilds the index from the u.N files (with a fresh index and
   no log it would show the folder empty until its next save).  Made with
   O_EXCL, owned as the directory: 1, 0 if a log appeared meanwhile (the
   caller appends), -1 with errno. */
static int sdbox_new_log(int dbox_mails_dir_fd)
{
	unsigned char data[PUTBACK_SDBOX_LOG_HDR_SIZE + PUTBACK_SDBOX_FSCKD_SIZE];
	struct stat st;
	ssize_t ret;
	int fd, saved;

	if (fstat(dbox_mails_dir_fd, &st) < 0)
		return -1;
	/* Dovecot makes its index files with the folder's mode, without x */
	fd = openat(dbox_mails_dir_fd, "dovecot.index.log",
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    st.st_mode & 0666);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	sdbox_log_header(data);
	memcpy(data + PUTBACK_SDBOX_LOG_HDR_SIZE, putback_sdbox_fsckd,
	       PUTBACK_SDBOX_FSCKD_SIZE);
	ret = write(fd, data, sizeof(data));
	saved = errno;
	if (ret == (ssize_t)sizeof(data) && geteuid() == 0 &&
	    fchown(fd, st.st_uid, st.st_gid) < 0) {
		saved = errno;
		ret = -1;
	}
	close(fd);
	if (ret != (ssize_t)sizeof(data)) {
		/* no half log for Dovecot to find */
		(void)unlinkat(dbox_mails_dir_fd, "dovecot.index.log", 0);
		errno = ret < 0 ? saved : ENOSPC;
		return -1;
	}
	return 1;
}

int putback_sdbox_force_rebuild(int dbox_mails_dir_fd)
{
	unsigned char flags[4];
	int fd;

	fd = openat(dbox_mails_dir_fd, "dovecot.index.log",
		    O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t ret = write(fd, putback_sdbox_fsckd,
				    sizeof(putback_sdbox_fsckd));
		int saved = errno;

		close(fd);
		if (ret != (ssize_t)sizeof(putback_sdbox_fsckd)) {
			errno = ret < 0 ? saved : ENOSPC;
			return -1;
		}
		return 1;
	}
	if (errno != ENOENT)
		return -1;
	/* no log (rotated away): the flag goes into the index itself */
	fd = openat(dbox_mails_dir_fd, "dovecot.index",
		    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* no index at all; 0 if Dovecot made a log meanwhile: it
		   is not appended to here, behind its lock (the caller's
		   file_append() path is for that) */
		return sdbox_new_log(dbox_mails_dir_fd);
	}
	if (fd < 0)
		return -1;
	if (pread(fd, flags, sizeof(flags), DOVECOTFMT_INDEX_FLAGS) !=
	    (ssize_t)sizeof(flags)) {
		close(fd);
		return 0;	/* too short to be an index: nothing to mark */
	}
	flags[0] |= DOVECOTFMT_INDEX_FLAG_FSCKD;
	if (pwrite(fd, flags, 1, DOVECOTFMT_INDEX_FLAGS) != 1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 1;
}
