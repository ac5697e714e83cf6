/* userload-rescan.c: the rescan half of a user load (CONTRACT.md section
 * 6): mails no loaded tree references are put back from their metadata,
 * folders no tree mentions are placed from their mails, the user dir gets
 * its owner, and sdbox folders that got mails back are marked for an
 * index rebuild (see userload.h). */
#include "userload-private.h"
#include "bundle.h"
#include "ids.h"
#include "mailpath.h"
#include "objstore.h"
#include "stub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

int ul_subdir_open(int parent_fd, const char *name)
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

/* ul_subdir_open() for each segment of path ("" = dir_fd itself) */
int ul_dir_open_create(struct ul_ctx *ctx, const char *path)
{
	char *copy = ul_xstrdup(path), *seg, *next;
	int fd = openat(ctx->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (seg = copy; fd >= 0 && *seg != '\0'; seg = next) {
		int sub, saved;

		next = strchr(seg, '/');
		if (next != NULL)
			*next++ = '\0';
		else
			next = seg + strlen(seg);
		sub = ul_subdir_open(fd, seg);
		saved = errno;
		close(fd);
		errno = saved;
		fd = sub;
	}
	free(copy);
	return fd;
}

/* NULL if the mail's metadata is usable, else why not */
static const char *mail_meta_check(const char *path, const char *name,
				   const char **last_r)
{
	const char *error, *last;

	if (path == NULL || name == NULL)
		return "no path/name metadata";
	if (bundle_path_check(path, strlen(path), &error) < 0)
		return "invalid path metadata";
	last = strrchr(path, '/');
	last = last == NULL ? path : last + 1;
	if (strcmp(last, "cur") != 0 && strcmp(last, "new") != 0 &&
	    strcmp(last, "dbox-Mails") != 0)
		return "path metadata is not a cur, new or dbox-Mails "
			"directory";
	if (name[0] == '\0' || strlen(name) > MAILPATH_NAME_MAX ||
	    strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return "invalid name metadata";
	if (strcmp(last, "dbox-Mails") == 0 &&
	    !mailpath_is_sdbox_mail_name(name))
		return "name metadata is not an sdbox mail name (u.N)";
	*last_r = last;
	return NULL;
}

/* the "mtime" metadata if valid, else the object's Last-Modified */
static time_t mail_mtime(const struct objstore_stat *st)
{
	const char *value = objstore_stat_meta(st, "mtime");
	long long secs = 0;
	size_t i;

	if (value == NULL || value[0] == '\0' || strlen(value) > 18)
		return st->mtime;
	for (i = 0; value[i] != '\0'; i++) {
		if (value[i] < '0' || value[i] > '9')
			return st->mtime;
		secs = secs * 10 + (value[i] - '0');
	}
	return (time_t)secs;
}

/* HEAD mail key.  Returns 1 with stat_r and the checked metadata, 0 if it
   is gone or unusable (logged, counted), -1 on a store error. */
static int mail_head(struct ul_ctx *ctx, const char *key,
		     struct objstore_stat *stat_r, const char **path_r,
		     const char **name_r, const char **last_r,
		     const char **error_r)
{
	const char *reason;

	if (objstore_head(ctx->store, key, stat_r) < 0) {
		if (ul_store_error_is_fatal())
			return ul_fail(error_r, EIO, "%s", objstore_error());
		obox_log(OBOX_LOG_ERR, "userload(%s): mail %s not put back: "
			 "%s\n", ctx->user, key, objstore_error());
		ctx->stats.mails_skipped++;
		return 0;
	}
	*path_r = objstore_stat_meta(stat_r, "path");
	*name_r = objstore_stat_meta(stat_r, "name");
	reason = mail_meta_check(*path_r, *name_r, last_r);
	if (reason == NULL && stat_r->size > INT64_MAX)
		reason = "invalid size";
	if (reason != NULL) {
		obox_log(OBOX_LOG_ERR, "userload(%s): mail %s not put back: "
			 "%s\n", ctx->user, key, reason);
		objstore_stat_free(stat_r);
		ctx->stats.mails_skipped++;
		return 0;
	}
	return 1;
}

/* A folder directory of an unplaced root: give it the root's GUID if it
   has none.  Returns true if it is (now) that folder's directory. */
static bool folder_claim(struct ul_ctx *ctx, struct ul_root *root, int fd,
			 const char *folder)
{
	char guid[IDS_HEX_LEN + 1];
	ssize_t len = fd_getxattr(fd, BUNDLE_XATTR_GUID, guid, IDS_HEX_LEN);

	if (len == IDS_HEX_LEN) {
		guid[IDS_HEX_LEN] = '\0';
		if (strcmp(guid, root->guid) == 0)
			return true;
	} else if (len < 0 && errno == ENODATA) {
		if (fd_setxattr(fd, BUNDLE_XATTR_GUID, root->guid, IDS_HEX_LEN,
				XATTR_CREATE) == 0)
			return true;
	}
	obox_log(OBOX_LOG_WARNING, "userload(%s): mails of folder %s go to "
		 "'%s', which is another folder\n", ctx->user, root->guid,
		 folder[0] == '\0' ? "." : folder);
	return false;
}

static void rebuild_dir_add(struct ul_ctx *ctx, const char *path)
{
	for (size_t i = 0; i < ctx->rebuild_count; i++) {
		if (strcmp(ctx->rebuild_dirs[i], path) == 0)
			return;
	}
	ctx->rebuild_dirs = ul_xrealloc(ctx->rebuild_dirs,
		(ctx->rebuild_count + 1) * sizeof(*ctx->rebuild_dirs));
	ctx->rebuild_dirs[ctx->rebuild_count++] = ul_xstrdup(path);
}

/* create the stub name in dest_fd; 0 if the name is taken (logged) */
static int stub_create(struct ul_ctx *ctx, int dest_fd, const char *dest,
		       const char *name, const struct stub *stub,
		       time_t mtime, const char **error_r)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { mtime, 0 } };
	struct stat st;
	int fd;

	if (fstat(dest_fd, &st) < 0)
		return ul_fail(error_r, errno, "fstat(%s) failed: %s", dest,
			       strerror(errno));
	fd = openat(dest_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		obox_log(OBOX_LOG_WARNING, "userload(%s): mail %s not put "
			 "back: %s/%s exists\n", ctx->user, stub->key, dest,
			 name);
		ctx->stats.mails_skipped++;
		return 0;
	}
	if (fd < 0 || stub_write(fd, stub) < 0 ||
	    fchmod(fd, st.st_mode & 0666) < 0 ||
	    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) ||
	    futimens(fd, ts) < 0) {
		int saved = errno;

		if (fd >= 0) {
			close(fd);
			(void)unlinkat(dest_fd, name, 0);
		}
		return ul_fail(error_r, saved, "creating stub %s/%s failed: %s",
			       dest, name, strerror(saved));
	}
	close(fd);
	ctx->stats.mails_put_back++;
	return 1;
}

/* Put mail m of root idx back as a stub. */
int ul_put_back(struct ul_ctx *ctx, size_t idx, size_t m,
		    const char **error_r)
{
	struct ul_root *root = &ctx->roots[idx];
	const char *path, *name, *last, *slash;
	char *folder, *dest = NULL;
	int folder_fd = -1, dest_fd = -1, ret;
	struct objstore_stat st;
	struct stub stub;

	if (ctx->skip != NULL && ctx->skip(root->mail_keys[m],
					   ctx->skip_context)) {
		/* garbage this machine has not deleted yet */
		ctx->stats.mails_skipped++;
		return 0;
	}
	ret = mail_head(ctx, root->mail_keys[m], &st, &path, &name, &last,
			error_r);
	if (ret <= 0)
		return ret;
	slash = strrchr(path, '/');
	folder = root->path != NULL ? ul_xstrdup(root->path) :
		slash == NULL ? ul_xstrdup("") :
		strndup(path, (size_t)(slash - path));
	if (folder == NULL)
		abort();
	dest = ul_path_join(folder, last);
	if ((folder_fd = ul_dir_open_create(ctx, folder)) < 0 ||
	    (dest_fd = ul_subdir_open(folder_fd, last)) < 0) {
		if (!ul_local_error_is_path(errno)) {
			ret = ul_fail(error_r, errno, "creating %s failed: %s",
				      dest, strerror(errno));
			goto out;
		}
		obox_log(OBOX_LOG_ERR, "userload(%s): mail %s not put back: "
			 "creating %s failed: %s\n", ctx->user,
			 root->mail_keys[m], dest, strerror(errno));
		ctx->stats.mails_skipped++;
		ret = 0;
		goto out;
	}
	if (root->path == NULL && folder_claim(ctx, root, folder_fd, folder))
		root->path = ul_xstrdup(folder);
	if (strcmp(last, "dbox-Mails") != 0) {
		/* a maildir folder has all three */
		static const char *const subdirs[] = { "cur", "new", "tmp" };

		for (size_t i = 0; i < 3; i++) {
			int fd = ul_subdir_open(folder_fd, subdirs[i]);

			if (fd >= 0)
				close(fd);
		}
	}
	snprintf(stub.key, sizeof(stub.key), "%s", root->mail_keys[m]);
	stub.size = st.size;
	ret = stub_create(ctx, dest_fd, dest, name, &stub, mail_mtime(&st),
			  error_r);
	if (ret > 0 && strcmp(last, "dbox-Mails") == 0)
		rebuild_dir_add(ctx, dest);
out:
	if (dest_fd >= 0)
		close(dest_fd);
	if (folder_fd >= 0)
		close(folder_fd);
	free(folder);
	free(dest);
	objstore_stat_free(&st);
	return ret < 0 ? -1 : 0;
}

/* A folder with bundles that no tree mentions: place it where one of its
   mails says, if that directory is free. */
int ul_place_from_mails(struct ul_ctx *ctx, size_t idx,
			    const char **error_r)
{
	const char *path, *name, *last, *slash;
	struct objstore_stat st;
	char *folder;
	int fd, ret;

	for (size_t m = 0; m < ctx->roots[idx].mail_count &&
	     m < PLACE_HEAD_TRIES; m++) {
		ret = mail_head(ctx, ctx->roots[idx].mail_keys[m], &st, &path,
				&name, &last, error_r);
		if (ret < 0)
			return -1;
		if (ret == 0)
			continue;
		slash = strrchr(path, '/');
		folder = slash == NULL ? ul_xstrdup("") :
			strndup(path, (size_t)(slash - path));
		objstore_stat_free(&st);
		if (folder == NULL)
			abort();
		fd = ul_dir_open_create(ctx, folder);
		if (fd < 0 && !ul_local_error_is_path(errno)) {
			ret = ul_fail(error_r, errno, "creating %s failed: %s",
				      folder, strerror(errno));
			free(folder);
			return ret;
		}
		if (fd >= 0 && ul_dir_is_empty(fd) > 0 &&
		    folder_claim(ctx, &ctx->roots[idx], fd, folder)) {
			obox_log(OBOX_LOG_WARNING, "userload(%s): folder %s is "
				 "in no tree: loaded into %s (from its "
				 "mails)\n", ctx->user, ctx->roots[idx].guid,
				 folder);
			ul_place_root(ctx, idx, folder);
		} else {
			obox_log(OBOX_LOG_ERR, "userload(%s): folder %s is in "
				 "no tree and its mails' directory %s is not "
				 "free: its bundles are not loaded\n",
				 ctx->user, ctx->roots[idx].guid, folder);
		}
		if (fd >= 0)
			close(fd);
		free(folder);
		return ul_process_queue(ctx, error_r);
	}
	obox_log(OBOX_LOG_ERR, "userload(%s): folder %s is in no tree and "
		 "none of its mails says where: its bundles are not loaded\n",
		 ctx->user, ctx->roots[idx].guid);
	return 0;
}

/* dir_fd gets the most common owner of its top-level entries, mode 0700 */
int ul_fix_top_owner(struct ul_ctx *ctx, const char **error_r)
{
	struct { uid_t uid; gid_t gid; unsigned int n; } owners[16];
	unsigned int owner_count = 0, best = 0;
	int dfd = openat(ctx->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	struct stat st;
	DIR *dir;

	if (dfd < 0 || (dir = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return ul_fail(error_r, errno, "opendir(user dir) failed: %s",
			       strerror(errno));
	}
	while ((d = readdir(dir)) != NULL) {
		unsigned int i;

		if (strcmp(d->d_name, ".") == 0 ||
		    strcmp(d->d_name, "..") == 0 ||
		    fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		for (i = 0; i < owner_count; i++) {
			if (owners[i].uid == st.st_uid &&
			    owners[i].gid == st.st_gid)
				break;
		}
		if (i == owner_count) {
			if (owner_count == 16)
				continue;
			owners[owner_count].uid = st.st_uid;
			owners[owner_count].gid = st.st_gid;
			owners[owner_count++].n = 0;
		}
		if (++owners[i].n > owners[best].n)
			best = i;
	}
	closedir(dir);
	if (owner_count > 0 && geteuid() == 0 &&
	    fchownat(ctx->dir_fd, ".", owners[best].uid, owners[best].gid,
		     0) < 0)
		return ul_fail(error_r, errno, "chown(user dir) failed: %s",
			       strerror(errno));
	if (fchmodat(ctx->dir_fd, ".", 0700, 0) < 0)
		return ul_fail(error_r, errno, "chmod(user dir) failed: %s",
			       strerror(errno));
	return 0;
}

/* A dovecot.index.log record that sets MAIL_INDEX_HDR_FLAG_FSCKD (0x4) in
   the index header's flags (offset 20): a header update, 16 bytes, as
   Dovecot 2.3 writes it (size as mail_index_uint32_to_offset(16), type
   MAIL_TRANSACTION_EXTERNAL | MAIL_TRANSACTION_HEADER_UPDATE, then
   offset 20, size 4, value 4, little-endian).  sdbox rebuilds an index
   with that flag from its u.N files, keeping UIDs, UIDVALIDITY, flags and
   keywords of the mails the index knows. */
static const unsigned char fsckd_record[16] = {
	0x80, 0x80, 0x80, 0x84, 0x20, 0x00, 0x00, 0x10,
	0x14, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00,
};
#define INDEX_HDR_FLAGS_OFFSET 20
#define INDEX_HDR_FLAG_FSCKD 0x4

int userload_sdbox_force_rebuild(int dbox_mails_dir_fd)
{
	unsigned char flags[4];
	int fd;

	fd = openat(dbox_mails_dir_fd, "dovecot.index.log",
		    O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t ret = write(fd, fsckd_record, sizeof(fsckd_record));
		int saved = errno;

		close(fd);
		if (ret != (ssize_t)sizeof(fsckd_record)) {
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
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (pread(fd, flags, sizeof(flags), INDEX_HDR_FLAGS_OFFSET) !=
	    (ssize_t)sizeof(flags)) {
		close(fd);
		return 0;	/* too short to be an index: nothing to mark */
	}
	flags[0] |= INDEX_HDR_FLAG_FSCKD;
	if (pwrite(fd, flags, 1, INDEX_HDR_FLAGS_OFFSET) != 1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 1;
}

int ul_rebuild_sdbox_indexes(struct ul_ctx *ctx, const char **error_r)
{
	for (size_t i = 0; i < ctx->rebuild_count; i++) {
		const char *path = ctx->rebuild_dirs[i];
		int fd = openat(ctx->dir_fd, path, O_RDONLY | O_DIRECTORY |
				O_NOFOLLOW | O_CLOEXEC);
		int ret = 0;

		if (fd >= 0) {
			ret = userload_sdbox_force_rebuild(fd);
			if (ret == 0) {
				obox_log(OBOX_LOG_WARNING, "userload(%s): %s "
					 "has no index to mark for a rebuild: "
					 "Dovecot finds its mails at its next "
					 "save there\n", ctx->user, path);
			}
		}
		if (fd < 0 || ret < 0) {
			ret = ul_fail(error_r, errno, "rebuilding the index of "
				      "%s failed: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return ret;
		}
		close(fd);
	}
	return 0;
}

