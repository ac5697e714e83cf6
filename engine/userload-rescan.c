/* userload-rescan.c: the rescan half of a user load (CONTRACT.md section
 * 6): mails no loaded tree references are put back from their metadata,
 * folders no tree mentions are placed from their mails, the user dir gets
 * its owner, and sdbox folders that got mails back are marked for an
 * index rebuild (see userload.h). */
#include "userload-private.h"
#include "pathopen.h"
#include "bundle.h"
#include "ids.h"
#include "mailpath.h"
#include "objstore.h"
#include "putback.h"
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

/* putback_subdir_open() for each segment of path ("" = dir_fd itself) */
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
		sub = putback_subdir_open(fd, seg);
		saved = errno;
		close(fd);
		errno = saved;
		fd = sub;
	}
	free(copy);
	return fd;
}

/* HEAD mail key.  Returns 1 with mail_r, 0 if it is gone or unusable
   (logged, counted), -1 on a store error. */
static int mail_head(struct ul_ctx *ctx, const char *key,
		     struct putback_mail *mail_r, const char **error_r)
{
	char who[MAILPATH_NAME_MAX + 16];
	int ret;

	snprintf(who, sizeof(who), "userload(%s)", ctx->user);
	ret = putback_head(ctx->store, key, who, mail_r);
	if (ret < 0) {
		if (ul_store_error_is_fatal())
			return ul_fail(error_r, EIO, "%s", objstore_error());
		obox_log(OBOX_LOG_ERR, "userload(%s): mail %s not put back: "
			 "%s\n", ctx->user, key, objstore_error());
	}
	if (ret <= 0)
		ctx->stats.mails_skipped++;
	return ret < 0 ? 0 : ret;
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

/* Put mail m of root idx back as a stub. */
int ul_put_back(struct ul_ctx *ctx, size_t idx, size_t m,
		const char **error_r)
{
	struct ul_root *root = &ctx->roots[idx];
	const char *key = root->mail_keys[m], *slash;
	struct putback_mail mail;
	enum putback_stage stage;
	char *folder, *dest, renamed[MAILPATH_NAME_MAX + 1] = "";
	int folder_fd, ret;

	if (ctx->skip != NULL && ctx->skip(key, ctx->skip_context)) {
		/* garbage this machine has not deleted yet */
		ctx->stats.mails_skipped++;
		return 0;
	}
	ret = mail_head(ctx, key, &mail, error_r);
	if (ret <= 0)
		return ret;
	slash = strrchr(mail.path, '/');
	folder = root->path != NULL ? ul_xstrdup(root->path) :
		slash == NULL ? ul_xstrdup("") :
		strndup(mail.path, (size_t)(slash - mail.path));
	if (folder == NULL)
		abort();
	dest = ul_path_join(folder, mail.dir_name);
	if (lazydir_split_has(ctx->lazy_splits, ctx->lazy_count, dest,
			      mail.name)) {
		/* the name is taken by a stub of the directory's table */
		obox_log(OBOX_LOG_WARNING, "userload(%s): mail %s not put "
			 "back: %s/%s exists\n", ctx->user, key, dest,
			 mail.name);
		ctx->stats.mails_skipped++;
		free(dest);
		free(folder);
		putback_mail_free(&mail);
		return 0;
	}
	folder_fd = ul_dir_open_create(ctx, folder);
	if (folder_fd >= 0 && root->path == NULL &&
	    folder_claim(ctx, root, folder_fd, folder))
		root->path = ul_xstrdup(folder);
	stage = PUTBACK_STAGE_DIR;
	ret = folder_fd < 0 ? -1 :
		putback_create(folder_fd, &mail, key, &stage, renamed);
	if (ret < 0 && stage == PUTBACK_STAGE_DIR &&
	    ul_local_error_is_path(errno)) {
		obox_log(OBOX_LOG_ERR, "userload(%s): mail %s not put back: "
			 "creating %s failed: %s\n", ctx->user, key, dest,
			 strerror(errno));
		ctx->stats.mails_skipped++;
		ret = 0;
	} else if (ret < 0 && stage == PUTBACK_STAGE_DIR) {
		ret = ul_fail(error_r, errno, "creating %s failed: %s", dest,
			      strerror(errno));
	} else if (ret < 0) {
		ret = ul_fail(error_r, errno, "creating stub %s/%s failed: %s",
			      dest, mail.name, strerror(errno));
	} else if (ret == 0) {
		obox_log(OBOX_LOG_WARNING, "userload(%s): mail %s not put "
			 "back: %s/%s exists\n", ctx->user, key, dest,
			 mail.name);
		ctx->stats.mails_skipped++;
	} else {
		if (renamed[0] != '\0')
			obox_log(OBOX_LOG_WARNING, "userload(%s): mail %s put "
				 "back as %s/%s: %s is another mail's\n",
				 ctx->user, key, dest, renamed, mail.name);
		ctx->stats.mails_put_back++;
		/* an empty stub: its directory entry (bundle.h's estimate) */
		ctx->stats.disk_bytes += (8 + strlen(mail.name) + 3) & ~3UL;
		ctx->stats.stubs++;
		if (mail.dir == MAILPATH_DIR_DBOX_MAILS)
			rebuild_dir_add(ctx, dest);
	}
	if (folder_fd >= 0)
		close(folder_fd);
	free(folder);
	free(dest);
	putback_mail_free(&mail);
	return ret < 0 ? -1 : 0;
}

/* A folder with bundles that no tree mentions: place it where one of its
   mails says, if that directory is free. */
int ul_place_from_mails(struct ul_ctx *ctx, size_t idx,
			    const char **error_r)
{
	struct putback_mail mail;
	const char *slash;
	char *folder;
	int fd, ret;

	for (size_t m = 0; ctx->skip != NULL &&
	     m < ctx->roots[idx].mail_count; m++) {
		if (!ctx->skip(ctx->roots[idx].mail_keys[m],
			       ctx->skip_context))
			continue;
		/* this machine deleted it (its mails are garbage here): its
		   bundles (another writer's chain of it, split brain) would
		   name objects about to go; the mails not deleted here come
		   back by the rescan */
		obox_log(OBOX_LOG_WARNING, "userload(%s): folder %s is in no "
			 "tree and this machine deleted mails of it: its "
			 "bundles are not loaded, its other mails are put "
			 "back\n", ctx->user, ctx->roots[idx].guid);
		return 0;
	}

	for (size_t m = 0; m < ctx->roots[idx].mail_count &&
	     m < PLACE_HEAD_TRIES; m++) {
		ret = mail_head(ctx, ctx->roots[idx].mail_keys[m], &mail,
				error_r);
		if (ret < 0)
			return -1;
		if (ret == 0)
			continue;
		slash = strrchr(mail.path, '/');
		folder = slash == NULL ? ul_xstrdup("") :
			strndup(mail.path, (size_t)(slash - mail.path));
		putback_mail_free(&mail);
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
		return 0;
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

int ul_rebuild_sdbox_indexes(struct ul_ctx *ctx, const char **error_r)
{
	for (size_t i = 0; i < ctx->rebuild_count; i++) {
		const char *path = ctx->rebuild_dirs[i];
		int fd = pathopen(ctx->dir_fd, path, O_RDONLY | O_DIRECTORY);
		int ret = 0;

		if (fd >= 0) {
			ret = putback_sdbox_force_rebuild(fd);
			if (ret == 0) {
				obox_log(OBOX_LOG_WARNING, "userload(%s): %s "
					 "has no index to mark for a rebuild "
					 "(one too short, or made meanwhile): "
					 "Dovecot finds its mails at its next "
					 "save there\n",
					 ctx->user, path);
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

