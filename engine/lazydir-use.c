/* lazydir-use.c: lazy directories in use (lazydir.h): a stub made per
 * name, the whole directory before a name of its table goes, listings and
 * the scan's entries. */
#include "lazydir-private.h"
#include "log.h"
#include "stubattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* a writable fd of dir_fd's directory and its mtime */
static int dir_open(int dir_fd, struct timespec *mtime_r)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	*mtime_r = st.st_mtim;
	return fd;
}

static int dir_mtime_restore(int fd, const struct timespec *mtime)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, *mtime };

	return futimens(fd, ts);
}

/* create e's stub in dir_fd (locked), keeping the directory's mtime:
   1, or -1 with errno (logged) */
static int make_one(struct lazydir *lz, int dir_fd, const char *table,
		    const struct bundle_entry *e)
{
	const char *name = e->path;
	struct timespec mtime;
	const char *error;
	int fd, ret, saved;

	fd = dir_open(dir_fd, &mtime);
	ret = fd < 0 ? -1 : bundle_stub_create(fd, e, &error);
	if (fd < 0)
		error = strerror(errno);
	saved = errno;
	if (ret > 0)
		atomic_fetch_add(&lz->stubs_made, 1);
	if (ret >= 0 && dir_mtime_restore(fd, &mtime) < 0) {
		saved = errno;
		error = strerror(errno);
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "lazydir: creating %s of table %s "
			 "failed: %s\n", name, table, error);
		errno = saved;
		return -1;
	}
	return 1;
}

bool lazydir_has(struct lazydir *lz, int dir_fd, const char *name)
{
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	bool ret;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree) > 0 &&
		bundle_tree_find(tree, name) != NULL;
	pthread_mutex_unlock(&lz->lock);
	return ret;
}

int lazydir_lookup(struct lazydir *lz, int dir_fd, const char *name)
{
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	const struct bundle_entry *e;
	int ret, saved;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree);
	if (ret > 0 && (e = bundle_tree_find(tree, name)) != NULL)
		ret = make_one(lz, dir_fd, table, e);
	else if (ret > 0)
		ret = 0;
	saved = errno;
	pthread_mutex_unlock(&lz->lock);
	errno = saved;
	return ret;
}

/* materialize dir_fd whose table is tree (locked): 1 or -1 with errno
   (logged) */
static int make_all(struct lazydir *lz, int dir_fd, const char *table,
		    const struct bundle_tree *tree)
{
	struct timespec mtime;
	const char *error = NULL;
	int fd, ret = 1, saved = 0;
	size_t made = 0;

	fd = dir_open(dir_fd, &mtime);
	if (fd < 0) {
		saved = errno;
		error = strerror(errno);
		ret = -1;
	}
	for (size_t i = 0; ret >= 0 && i < tree->count; i++) {
		ret = bundle_stub_create(fd, &tree->entries[i], &error);
		if (ret < 0)
			saved = errno;
		else
			made += (size_t)ret;
	}
	/* the stubs are there before the table goes, whatever happens */
	if (ret >= 0 && (dir_mtime_restore(fd, &mtime) < 0 || fsync(fd) < 0 ||
			 bundle_fd_removexattr(fd, LAZYDIR_XATTR) < 0)) {
		saved = errno;
		error = strerror(errno);
		ret = -1;
	}
	atomic_fetch_add(&lz->stubs_made, made);
	if (ret >= 0) {
		lazydir_cache_drop(lz, table);
		if (unlinkat(lz->dir_fd, table, 0) == 0)
			lazydir_live_dec(lz);
		else if (errno != ENOENT)
			obox_log(OBOX_LOG_WARNING, "lazydir: unlink(%s) failed:"
				 " %s\n", table, strerror(errno));
		atomic_fetch_add(&lz->dirs_expanded, 1);
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		obox_log(OBOX_LOG_ERR, "lazydir: materializing table %s "
			 "failed: %s\n", table, error);
		errno = saved;
		return -1;
	}
	return 1;
}

int lazydir_expand(struct lazydir *lz, int dir_fd)
{
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	int ret, saved;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree);
	if (ret > 0)
		ret = make_all(lz, dir_fd, table, tree);
	saved = errno;
	pthread_mutex_unlock(&lz->lock);
	errno = saved;
	return ret;
}

int lazydir_prepare(struct lazydir *lz, int dir_fd, const char *name,
		    bool removes)
{
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	const struct bundle_entry *e;
	int ret, saved;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree);
	if (ret > 0 && (e = bundle_tree_find(tree, name)) != NULL)
		ret = removes ? make_all(lz, dir_fd, table, tree) :
			make_one(lz, dir_fd, table, e);
	saved = errno;
	pthread_mutex_unlock(&lz->lock);
	errno = saved;
	return ret < 0 ? -1 : 0;
}

/* a made-up inode number for a name not on disk (readdir's d_ino is
   informative; FNV-1a, never 0) */
static uint64_t name_ino(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ULL;
	return h | (1ULL << 62);
}

int lazydir_list(struct lazydir *lz, int dir_fd,
		 void (*cb)(const char *name, unsigned char type, uint64_t ino,
			    void *context),
		 void *context)
{
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret, saved;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree);
	if (ret <= 0)
		goto out;
	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		ret = -1;
		goto out;
	}
	while ((errno = 0, d = readdir(dir)) != NULL) {
		if (bundle_tree_find(tree, d->d_name) == NULL)
			cb(d->d_name, d->d_type, (uint64_t)d->d_ino, context);
	}
	if (errno != 0)
		ret = -1;
	for (size_t i = 0; ret > 0 && i < tree->count; i++) {
		const char *name = tree->entries[i].path;

		cb(name, DT_REG, name_ino(name), context);
	}
out:
	saved = errno;
	if (dir != NULL)
		closedir(dir);
	pthread_mutex_unlock(&lz->lock);
	if (ret < 0)
		obox_log(OBOX_LOG_ERR, "lazydir: listing table %s failed: %s\n",
			 table, strerror(saved));
	errno = saved;
	return ret;
}

int lazydir_foreach(int dir_fd, void (*cb)(const struct bundle_entry *e,
					   void *cb_context),
		    void *cb_context, void *context, const char **error_r)
{
	struct lazydir *lz = context;
	char table[NAME_MAX + 1];
	const struct bundle_tree *tree;
	int ret;

	pthread_mutex_lock(&lz->lock);
	ret = lazydir_table_get(lz, dir_fd, table, &tree);
	if (ret > 0) {
		for (size_t i = 0; i < tree->count; i++)
			cb(&tree->entries[i], cb_context);
	} else if (ret < 0) {
		*error_r = "a lazy directory's table cannot be read";
	}
	pthread_mutex_unlock(&lz->lock);
	return ret;
}
