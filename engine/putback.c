/* putback.c: a mail back from the store as a stub (see putback.h). */
#include "putback-private.h"
#include "bundle.h"
#include "log.h"
#include "stub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

int putback_create(int folder_fd, const struct putback_mail *mail,
		   const char *key, enum putback_stage *stage_r)
{
	struct stub stub;
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
	ret = stub_create(dir_fd, mail->name, &stub, mail->mtime);
	saved = errno;
	close(dir_fd);
	errno = saved;
	return ret;
}
