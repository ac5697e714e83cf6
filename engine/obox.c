/* obox.c: setting up and tearing down the engine: the cache directory,
 * the store, the caches, the users and the upload threads (obox.h). */
#include "obox-private.h"
#include "lazydir.h"
#include "cachedir.h"
#include "cachestate.h"
#include "ids.h"
#include "stub.h"
#include "log.h"
#include "mailcache.h"
#include "mailmissing.h"
#include "rootattr.h"
#include "mailpath.h"
#include "mailstore.h"
#include "metacache.h"
#include "objgc.h"
#include "rmtree.h"
#include "uploader.h"
#include "users.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* obox_init()'s error message */
static __thread char init_error[PATH_MAX + 256];

static int init_fail(const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int init_fail(const char **error_r, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(init_error, sizeof(init_error), fmt, args);
	va_end(args);
	*error_r = init_error;
	return -1;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* dir exists (created with mode if needed) and a file can be created in
   it */
static int check_writable_dir(const char *dir, mode_t mode,
			      const char **error_r)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir_p(dir, mode) < 0) {
		return init_fail(error_r, "cache directory: mkdir(%s) "
				 "failed: %s", dir, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/.oboxfs-write-test.%d", dir,
		 (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		return init_fail(error_r, "cache directory %s is not "
				 "writable: %s", dir, strerror(errno));
	}
	close(fd);
	unlink(path);
	return 0;
}

/* CACHE_DIR/<name> as a checked, writable directory, opened with flags */
static int cache_subdir(struct obox *obox, const char *name, mode_t mode,
			int flags, const char **error_r)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", obox->cache_dir, name);
	if (check_writable_dir(path, mode, error_r) < 0)
		return -1;
	fd = open(path, flags | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return init_fail(error_r, "open(%s) failed: %s", path,
				 strerror(errno));
	}
	return fd;
}

/* Check and lock the cache dir; meta/, mail/, staging/ */
static int cache_dir_open(struct obox *obox, const char **error_r)
{
	char path[PATH_MAX];
	int fd;

	if (check_writable_dir(obox->cache_dir, 0700, error_r) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/oboxfs.lock", obox->cache_dir);
	obox->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (obox->lock_fd < 0) {
		return init_fail(error_r, "open(%s) failed: %s", path,
				 strerror(errno));
	}
	if (flock(obox->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		return init_fail(error_r, "cache directory %s is in use by "
				 "another oboxfs", obox->cache_dir);
	}
	/* meta/ is the tree's root directory: its mode is what users see
	   (cache_dir itself stays 0700) */
	fd = cache_subdir(obox, "meta", 0755, O_PATH, error_r);
	if (fd < 0)
		return -1;
	close(fd);
	fd = cache_subdir(obox, "mail", 0700, O_PATH, error_r);
	if (fd < 0)
		return -1;
	close(fd);
	obox->staging_fd = cache_subdir(obox, "staging", 0700, O_PATH,
					error_r);
	if (obox->staging_fd < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/meta", obox->cache_dir);
	obox->meta_path = realpath(path, NULL);
	if (obox->meta_path == NULL) {
		return init_fail(error_r, "realpath(%s) failed: %s", path,
				 strerror(errno));
	}
	obox->meta_fd = open(obox->meta_path,
			     O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (obox->meta_fd < 0) {
		return init_fail(error_r, "open(%s) failed: %s",
				 obox->meta_path, strerror(errno));
	}
	return 0;
}

/* CACHE_DIR/load: users being loaded; what a crash left is removed */
static int load_dir_open(struct obox *obox, const char **error_r)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/load", obox->cache_dir);
	rmtree(path, true);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		return init_fail(error_r, "mkdir(%s) failed: %s", path,
				 strerror(errno));
	}
	obox->load_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (obox->load_fd < 0) {
		return init_fail(error_r, "open(%s) failed: %s", path,
				 strerror(errno));
	}
	return 0;
}

/* a user the last run could not upload: dirty again */
static void mark_left_dirty(const char *name, void *context)
{
	struct obox *obox = context;
	const char *error;
	struct ouser *user;

	if (mailpath_user_name_check(name, &error) < 0)
		return;
	user = users_get(obox->users, name);
	if (user != NULL)
		users_mark_left_dirty(user);
}

/* users already in the metacache (from the last run) are known, so the
   metacache counts them and can evict them */
static void register_cached_users(struct obox *obox)
{
	int fd = openat(obox->meta_fd, ".", O_RDONLY | O_DIRECTORY |
			O_CLOEXEC);
	const char *error;
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(dir)) != NULL) {
		if (mailpath_user_name_check(d->d_name, &error) == 0)
			(void)users_get(obox->users, d->d_name);
	}
	closedir(dir);
}

/* the metacache moved user's tree away */
static void evicted_user(const char *user, void *context)
{
	struct obox *obox = context;

	if (obox->set.user_evicted != NULL)
		obox->set.user_evicted(user, obox->set.context);
}

/* the uploader changed a directory or file of user's tree (a split-brain
   merge) */
static void dir_changed(struct ouser *user, const char *path, void *context)
{
	struct obox *obox = context;
	char full[PATH_MAX];

	if (obox->set.dir_changed == NULL)
		return;
	snprintf(full, sizeof(full), "%s/%s", user->name, path);
	obox->set.dir_changed(full, obox->set.context);
}

/* the uploader changed a name of user's tree (a split-brain merge) */
static void name_changed(struct ouser *user, const char *path,
			 const char *name, void *context)
{
	struct obox *obox = context;
	char full[PATH_MAX];

	if (obox->set.name_changed == NULL)
		return;
	snprintf(full, sizeof(full), "%s%s%s", user->name,
		 path[0] == '\0' ? "" : "/", path);
	obox->set.name_changed(full, name, obox->set.context);
}

/* the uploader appends to a file of user's tree through the front end
   (an sdbox index's rebuild mark after a split-brain merge) */
static int file_append(struct ouser *user, const char *path,
		       const void *data, size_t len, void *context)
{
	struct obox *obox = context;
	char full[PATH_MAX];

	if (obox->set.file_append == NULL) {
		errno = ENOTSUP;
		return -1;
	}
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", user->name, path) >=
	    sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return obox->set.file_append(full, data, len, obox->set.context);
}

/* a lazy table that cannot be read: its user's tree is not trusted */
static void lazy_discard(const char *user, void *context)
{
	cachestate_discard(context, user);
}

static int caches_init(struct obox *obox, const char **error_r)
{
	char path[PATH_MAX], garbage[PATH_MAX];
	const char *error;

	if (cachestate_open(obox->cache_dir, obox->meta_fd, &obox->cs,
			    &error) < 0)
		return init_fail(error_r, "cache state: %s", error);
	ids_clock_raise(cachestate_clock_read(obox->cs));
	if (load_dir_open(obox, error_r) < 0)
		return -1;
	obox->lazy = lazydir_init(obox->cache_dir, &error);
	if (obox->lazy == NULL)
		return init_fail(error_r, "lazy directories: %s", error);
	/* after the cache state's discards: their tables go too */
	(void)lazydir_startup(obox->lazy, obox->meta_fd, lazy_discard,
			      obox->cs);
	snprintf(path, sizeof(path), "%s/mail", obox->cache_dir);
	if (mailcache_init(path, obox->set.cache_size, obox->store,
			   &obox->mailcache, &error) < 0)
		return init_fail(error_r, "mail cache: %s", error);
	obox->gc = objgc_init(obox->store, obox->mailcache,
			      cachestate_path(obox->cs, "garbage", garbage,
					      sizeof(garbage)));
	if (obox->gc != NULL) {
		objgc_set_grace(obox->gc, obox->set.delete_grace);
		if (obox->set.delete_grace < obox->set.split_check_interval)
			obox_log(OBOX_LOG_WARNING, "delete_grace (%us) is "
				 "shorter than split_check_interval (%us): "
				 "another machine serving the same users "
				 "might build on a mail deleted here\n",
				 obox->set.delete_grace,
				 obox->set.split_check_interval);
		obox->ms = mailstore_init(obox->store, obox->mailcache,
					  obox->gc, obox->meta_fd);
	}
	obox->users = users_init(obox->cs);
	obox->missing = mailmissing_init();
	obox->size_locks = sizelock_init();
	if (obox->ms == NULL || obox->users == NULL || obox->missing == NULL ||
	    obox->size_locks == NULL)
		return init_fail(error_r, "out of memory");
	if (upload_ctx_init(&obox->upctx, obox->store, obox->gc, obox->cs,
			    obox->meta_fd) < 0) {
		return init_fail(error_r, "%s: %s",
				 cachestate_path(obox->cs, "bundles", path,
						 sizeof(path)),
				 strerror(errno));
	}
	obox->upctx_ok = true;
	obox->upctx.lazy = obox->lazy;
	obox->upctx.split_check_interval = obox->set.split_check_interval;
	obox->upctx.dir_changed = dir_changed;
	obox->upctx.name_changed = name_changed;
	obox->upctx.file_append = file_append;
	obox->upctx.dir_changed_context = obox;
	/* stubs are made in staging/ and renamed into meta/: one disk */
	obox->upctx.stub_disk_bytes = stub_disk_bytes(obox->staging_fd);
	return 0;
}

int obox_init(const struct obox_settings *set, struct obox **obox_r,
	      const char **error_r)
{
	struct obox *obox = calloc(1, sizeof(*obox));
	char path[PATH_MAX];
	const char *error;

	*obox_r = NULL;
	if (obox == NULL)
		return init_fail(error_r, "out of memory");
	obox->set = *set;
	obox->lock_fd = obox->meta_fd = obox->staging_fd = obox->load_fd = -1;
	pthread_mutex_init(&obox->ns_lock, NULL);
	atomic_init(&obox->users_loaded, 0);
	atomic_init(&obox->mails_put_back, 0);
	atomic_init(&obox->load_mails_listed, 0);
	atomic_init(&obox->load_usecs, 0);
	atomic_init(&obox->load_write_usecs, 0);
	atomic_init(&obox->load_mails_before_mark, 0);
	atomic_init(&obox->load_folders_list_skipped, 0);
	atomic_init(&obox->load_bundles_fetched_ahead, 0);
	obox->cache_dir = strdup(set->cache_dir);
	/* the strings of set are not kept */
	obox->set.store_url = NULL;
	obox->set.cache_dir = NULL;
	if (obox->cache_dir == NULL) {
		obox_deinit(&obox);
		return init_fail(error_r, "out of memory");
	}
	if (cache_dir_open(obox, error_r) < 0) {
		obox_deinit(&obox);
		return -1;
	}
	if (objstore_init(set->store_url, &set->store, &obox->store,
			  &error) < 0) {
		(void)init_fail(error_r, "%s: %s", set->store_url, error);
		obox_deinit(&obox);
		return -1;
	}
	if (caches_init(obox, error_r) < 0) {
		obox_deinit(&obox);
		return -1;
	}
	cachestate_foreach_dirty(obox->cs, mark_left_dirty, obox);
	mailstore_set_delivery_callback(obox->ms, obox_delivery_noted, obox);
	register_cached_users(obox);
	snprintf(path, sizeof(path), "%s/trash", obox->cache_dir);
	obox->metacache = metacache_init(obox->meta_fd, path,
					 set->metacache_size,
					 set->metacache_idle, evicted_user,
					 obox);
	if (obox->metacache == NULL) {
		obox_deinit(&obox);
		return init_fail(error_r, "out of memory");
	}
	obox_staging_cleanup(obox);
	rootattr_apply(obox);
	*obox_r = obox;
	return 0;
}

int obox_start(struct obox *obox, const char **error_r)
{
	return uploader_start(&obox->upctx, obox->users,
			      obox->set.upload_interval, obox->metacache,
			      &obox->uploader, error_r);
}

void obox_stop(struct obox *obox)
{
	/* the last upload (unmount, final pass and flush) */
	uploader_stop(&obox->uploader, !obox->deinit_unclean);
}

void obox_deinit(struct obox **_obox)
{
	struct obox *obox = *_obox;

	if (obox == NULL)
		return;
	*_obox = NULL;
	obox_stop(obox);
	metacache_deinit(&obox->metacache);
	if (obox->cs != NULL)
		cachestate_clock_save(obox->cs, ids_clock_us());
	cachestate_close(&obox->cs, !obox->deinit_unclean);
	users_deinit(&obox->users);
	if (obox->upctx_ok)
		upload_ctx_deinit(&obox->upctx);
	lazydir_deinit(&obox->lazy);
	if (obox->load_fd >= 0)
		close(obox->load_fd);
	mailstore_deinit(&obox->ms);
	sizelock_deinit(&obox->size_locks);
	objgc_deinit(&obox->gc);
	mailcache_deinit(&obox->mailcache);
	mailmissing_deinit(&obox->missing);
	if (obox->store != NULL)
		objstore_deinit(&obox->store);
	if (obox->meta_fd >= 0)
		close(obox->meta_fd);
	if (obox->staging_fd >= 0)
		close(obox->staging_fd);
	if (obox->lock_fd >= 0)
		close(obox->lock_fd);
	pthread_mutex_destroy(&obox->ns_lock);
	free(obox->meta_path);
	free(obox->cache_dir);
	free(obox);
}

int obox_parse_size(const char *str, uint64_t *bytes_r, const char **error_r)
{
	return cachedir_parse_size(str, bytes_r, error_r);
}

int obox_meta_fd(struct obox *obox)
{
	return obox->meta_fd;
}

const char *obox_meta_path(struct obox *obox)
{
	return obox->meta_path;
}

void obox_request_upload(struct obox *obox)
{
	if (obox->uploader != NULL)
		uploader_request_all(obox->uploader);
}

int obox_upload_now(struct obox *obox)
{
	return uploader_pass(&obox->upctx, obox->users, INT64_MAX);
}

int obox_user_name_check(const char *name, const char **error_r)
{
	return mailpath_user_name_check(name, error_r);
}

struct ouser *obox_user_get(struct obox *obox, const char *name)
{
	return users_get(obox->users, name);
}

void obox_change_begin(struct obox *obox, struct ouser *user)
{
	users_change_begin(obox->users, user);
}

void obox_change_end(struct ouser *user)
{
	users_change_end(user);
}

int obox_lazy_lookup(struct obox *obox, struct ouser *user, int dir_fd,
		     const char *name)
{
	int ret;

	if (!lazydir_any(obox->lazy) || !lazydir_is_lazy(dir_fd))
		return 0;
	/* a name Dovecot tries that does not exist changes nothing (a table
	   that cannot be read: lazydir_lookup() fails with EIO) */
	if (!lazydir_has(obox->lazy, dir_fd, name))
		return lazydir_lookup(obox->lazy, dir_fd, name) < 0 ? -1 : 0;
	users_change_begin(obox->users, user);
	ret = lazydir_lookup(obox->lazy, dir_fd, name);
	users_change_end(user);
	return ret;
}

int obox_lazy_prepare(struct obox *obox, int dir_fd, const char *name,
		      bool removes)
{
	if (!lazydir_any(obox->lazy))
		return 0;
	return lazydir_prepare(obox->lazy, dir_fd, name, removes) < 0 ?
		errno : 0;
}

int obox_lazy_expand(struct obox *obox, int dir_fd)
{
	if (!lazydir_any(obox->lazy))
		return 0;
	return lazydir_expand(obox->lazy, dir_fd) < 0 ? errno : 0;
}

int obox_lazy_list(struct obox *obox, int dir_fd,
		   void (*cb)(const char *name, unsigned char type,
			      uint64_t ino, void *context),
		   void *context)
{
	if (!lazydir_any(obox->lazy))
		return 0;
	return lazydir_list(obox->lazy, dir_fd, cb, context);
}

int obox_lazy_expand_at(struct obox *obox, int dir_fd, const char *name)
{
	int fd, ret;

	if (!lazydir_any(obox->lazy))
		return 0;
	fd = openat(dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0)
		return 0;	/* not a directory: the operation says */
	ret = obox_lazy_expand(obox, fd);
	close(fd);
	return ret;
}

void obox_touched(struct ouser *user, ino_t ino)
{
	users_touched(user, (uint64_t)ino);
}

void obox_user_touch(struct ouser *user)
{
	users_touch(user);
}

void obox_user_opened(struct ouser *user)
{
	users_opened(user);
}

void obox_user_closed(struct ouser *user)
{
	users_closed(user);
}
