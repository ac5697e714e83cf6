/* lazydir.c: lazy maildir directories' tables (lazydir.h): CACHE_DIR/lazy,
 * reading and checking a table, the tables kept in memory, what a mount
 * finds, a user's tables removed, the counters.  The load's side is
 * lazydir-load.c, the tree in use lazydir-use.c. */
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

struct lazydir *lazydir_init(const char *cache_dir, const char **error_r)
{
	static char errbuf[PATH_MAX + 128];
	char path[PATH_MAX];
	struct lazydir *lz;

	snprintf(path, sizeof(path), "%s/lazy", cache_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(errbuf, sizeof(errbuf), "mkdir(%s) failed: %s", path,
			 strerror(errno));
		*error_r = errbuf;
		return NULL;
	}
	lz = calloc(1, sizeof(*lz));
	if (lz == NULL)
		abort();
	lz->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lz->dir_fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%s) failed: %s", path,
			 strerror(errno));
		*error_r = errbuf;
		free(lz);
		return NULL;
	}
	pthread_mutex_init(&lz->lock, NULL);
	return lz;
}

void lazydir_deinit(struct lazydir **_lz)
{
	struct lazydir *lz = *_lz;

	if (lz == NULL)
		return;
	*_lz = NULL;
	for (size_t i = 0; i < LAZYDIR_CACHE_TABLES; i++)
		bundle_tree_free(&lz->cache[i].tree);
	pthread_mutex_destroy(&lz->lock);
	close(lz->dir_fd);
	free(lz);
}

void lazydir_live_dec(struct lazydir *lz)
{
	uint_fast64_t n = atomic_load(&lz->live);

	while (n > 0 && !atomic_compare_exchange_weak(&lz->live, &n, n - 1))
		;
}

bool lazydir_any(struct lazydir *lz)
{
	return lz != NULL && atomic_load(&lz->live) > 0;
}

bool lazydir_table_name_parse(const char *name, const char *user,
			      size_t *user_len_r)
{
	size_t len = strlen(name);

	if (len <= LAZYDIR_ID_SUFFIX_LEN || len > NAME_MAX || name[0] == '.' ||
	    strchr(name, '/') != NULL ||
	    name[len - LAZYDIR_ID_SUFFIX_LEN] != '.')
		return false;
	for (size_t i = len - IDS_HEX_LEN; i < len; i++) {
		char c = name[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	*user_len_r = len - LAZYDIR_ID_SUFFIX_LEN;
	return user == NULL || (strlen(user) == *user_len_r &&
				memcmp(user, name, *user_len_r) == 0);
}

void lazydir_cache_put(struct lazydir *lz, const char *name,
		       struct bundle_tree **tree)
{
	struct lazy_cached *slot = &lz->cache[0];

	for (size_t i = 0; i < LAZYDIR_CACHE_TABLES; i++) {
		if (lz->cache[i].name[0] == '\0') {
			slot = &lz->cache[i];
			break;
		}
		if (lz->cache[i].used < slot->used)
			slot = &lz->cache[i];
	}
	bundle_tree_free(&slot->tree);
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->tree = *tree;
	slot->used = ++lz->clock;
	*tree = NULL;
}

void lazydir_cache_drop(struct lazydir *lz, const char *name)
{
	for (size_t i = 0; i < LAZYDIR_CACHE_TABLES; i++) {
		if (lz->cache[i].name[0] != '\0' &&
		    strcmp(lz->cache[i].name, name) == 0) {
			bundle_tree_free(&lz->cache[i].tree);
			lz->cache[i].name[0] = '\0';
			lz->cache[i].used = 0;
		}
	}
}

int lazydir_table_name_get(int dir_fd, char name_r[NAME_MAX + 1])
{
	ssize_t len = bundle_fd_getxattr(dir_fd, LAZYDIR_XATTR, name_r,
					 NAME_MAX);
	size_t ulen;

	if (len < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
	name_r[len] = '\0';
	if (!lazydir_table_name_parse(name_r, NULL, &ulen)) {
		obox_log(OBOX_LOG_ERR, "lazydir: invalid %s xattr \"%s\"\n",
			 LAZYDIR_XATTR, name_r);
		errno = EIO;
		return -1;
	}
	return 1;
}

bool lazydir_is_lazy(int dir_fd)
{
	char name[NAME_MAX + 1];

	return lazydir_table_name_get(dir_fd, name) != 0;
}

/* read and check a table file; NULL with *error_r */
static struct bundle_tree *table_read(int lazy_fd, const char *name,
				      const char **error_r)
{
	static __thread char errbuf[NAME_MAX + 200];
	struct bundle *bundle = NULL;
	struct bundle_tree *tree;
	unsigned char *data;
	const char *error;
	struct stat st;
	size_t done = 0;
	int fd;

	fd = openat(lazy_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%s) failed: %s", name,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		*error_r = errbuf;
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > LAZYDIR_TABLE_MAX) {
		close(fd);
		snprintf(errbuf, sizeof(errbuf), "%s: not a table (%lld "
			 "bytes)", name, (long long)st.st_size);
		*error_r = errbuf;
		return NULL;
	}
	data = malloc((size_t)st.st_size);
	if (data == NULL)
		abort();
	while (done < (size_t)st.st_size) {
		ssize_t ret = pread(fd, data + done, (size_t)st.st_size - done,
				    (off_t)done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			break;
		done += (size_t)ret;
	}
	close(fd);
	if (done != (size_t)st.st_size ||
	    bundle_decode(data, done, LAZYDIR_TABLE_MAX, &bundle,
			  &error) < 0 ||
	    bundle->info.kind != BUNDLE_KIND_BASE) {
		snprintf(errbuf, sizeof(errbuf), "%s: %s", name,
			 done != (size_t)st.st_size ? "short read" :
			 bundle == NULL ? error : "not a base bundle");
		free(data);
		bundle_free(&bundle);
		*error_r = errbuf;
		return NULL;
	}
	free(data);
	tree = bundle->tree;
	bundle->tree = NULL;
	bundle_free(&bundle);
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type != BUNDLE_ENTRY_STUB || e->link_id != 0 ||
		    strchr(e->path, '/') != NULL) {
			snprintf(errbuf, sizeof(errbuf), "%s: entry %s is not "
				 "a stub of the directory", name, e->path);
			*error_r = errbuf;
			bundle_tree_free(&tree);
			return NULL;
		}
	}
	return tree;
}

int lazydir_table_get(struct lazydir *lz, int dir_fd,
		      char name[NAME_MAX + 1],
		      const struct bundle_tree **tree_r)
{
	struct bundle_tree *tree;
	const char *error;
	int ret = lazydir_table_name_get(dir_fd, name);

	if (ret <= 0)
		return ret;
	for (size_t i = 0; i < LAZYDIR_CACHE_TABLES; i++) {
		if (lz->cache[i].name[0] != '\0' &&
		    strcmp(lz->cache[i].name, name) == 0) {
			lz->cache[i].used = ++lz->clock;
			*tree_r = lz->cache[i].tree;
			return 1;
		}
	}
	tree = table_read(lz->dir_fd, name, &error);
	if (tree == NULL) {
		atomic_fetch_add(&lz->tables_bad, 1);
		obox_log(OBOX_LOG_ERR, "lazydir: table %s\n", error);
		errno = EIO;
		return -1;
	}
	lazydir_cache_put(lz, name, &tree);
	return lazydir_table_get(lz, dir_fd, name, tree_r);
}

void lazydir_user_drop(struct lazydir *lz, const char *user)
{
	int fd = openat(lz->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	size_t ulen;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	pthread_mutex_lock(&lz->lock);
	while ((d = readdir(dir)) != NULL) {
		char name[NAME_MAX + 1];
		size_t len = strlen(d->d_name);

		snprintf(name, sizeof(name), "%s", d->d_name);
		/* "<table>.tmp" too */
		if (len > 4 && strcmp(name + len - 4, ".tmp") == 0)
			name[len - 4] = '\0';
		if (!lazydir_table_name_parse(name, user, &ulen))
			continue;
		lazydir_cache_drop(lz, name);
		if (unlinkat(lz->dir_fd, d->d_name, 0) == 0 &&
		    strcmp(name, d->d_name) == 0)
			lazydir_live_dec(lz);
	}
	pthread_mutex_unlock(&lz->lock);
	closedir(dir);
}

size_t lazydir_startup(struct lazydir *lz, int meta_fd,
		       void (*discard)(const char *user, void *context),
		       void *context)
{
	int fd = openat(lz->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **bad = NULL;
	size_t bad_count = 0, kept = 0;
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((d = readdir(dir)) != NULL) {
		char user[NAME_MAX + 1];
		struct bundle_tree *tree;
		const char *error;
		size_t ulen;

		if (d->d_name[0] == '.')
			continue;
		if (!lazydir_table_name_parse(d->d_name, NULL, &ulen)) {
			/* a temporary one, or not ours */
			(void)unlinkat(lz->dir_fd, d->d_name, 0);
			continue;
		}
		memcpy(user, d->d_name, ulen);
		user[ulen] = '\0';
		if (faccessat(meta_fd, user, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			(void)unlinkat(lz->dir_fd, d->d_name, 0);
			continue;
		}
		tree = table_read(lz->dir_fd, d->d_name, &error);
		if (tree != NULL) {
			bundle_tree_free(&tree);
			kept++;
			continue;
		}
		obox_log(OBOX_LOG_ERR, "lazydir: table %s: the tree of user "
			 "%s is discarded (loaded again from the store)\n",
			 error, user);
		atomic_fetch_add(&lz->tables_bad, 1);
		bad = realloc(bad, (bad_count + 1) * sizeof(*bad));
		if (bad == NULL || (bad[bad_count++] = strdup(user)) == NULL)
			abort();
	}
	closedir(dir);
	atomic_store(&lz->live, kept + bad_count);
	for (size_t i = 0; i < bad_count; i++) {
		if (discard != NULL)
			discard(bad[i], context);
		lazydir_user_drop(lz, bad[i]);
		free(bad[i]);
	}
	free(bad);
	return kept;
}

void lazydir_stats_get(struct lazydir *lz, struct lazydir_stats *stats_r)
{
	stats_r->tables_written = atomic_load(&lz->tables_written);
	stats_r->stubs_made = atomic_load(&lz->stubs_made);
	stats_r->dirs_expanded = atomic_load(&lz->dirs_expanded);
	stats_r->tables_bad = atomic_load(&lz->tables_bad);
}
