/* lazydir.c: lazy maildir directories: the tables of stubs a cold load
 * did not create, their lookups, materializing and scans (lazydir.h). */
#include "lazydir.h"
#include "ids.h"
#include "log.h"
#include "stubattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* the largest table read back (20 bytes of stub per mail and its name:
   a million mails fit many times over) */
#define LAZYDIR_TABLE_MAX (256U * 1024 * 1024)
/* "<user>.<32 hex>": the id part */
#define LAZYDIR_ID_SUFFIX_LEN (1 + IDS_HEX_LEN)

struct lazy_cached {
	char name[NAME_MAX + 1];	/* "" if the slot is free */
	struct bundle_tree *tree;	/* sorted by name */
	uint64_t used;			/* lz->clock at its last use */
};

struct lazydir {
	int dir_fd;			/* CACHE_DIR/lazy; set at init */
	/* lock order 2a (obox-private.h): around every call below */
	pthread_mutex_t lock;
	struct lazy_cached cache[LAZYDIR_CACHE_TABLES];	/* lock */
	uint64_t clock;					/* lock */
	atomic_uint_fast64_t tables_written, stubs_made, dirs_expanded,
		tables_bad;
	/* tables on disk (or more, never fewer): lazydir_any() */
	atomic_uint_fast64_t live;
};

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

static void live_dec(struct lazydir *lz)
{
	uint_fast64_t n = atomic_load(&lz->live);

	while (n > 0 && !atomic_compare_exchange_weak(&lz->live, &n, n - 1))
		;
}

bool lazydir_any(struct lazydir *lz)
{
	return lz != NULL && atomic_load(&lz->live) > 0;
}

/* ---------------------------------------------------------- the load */

static const char *base_name(const char *path, size_t *dir_len_r)
{
	const char *slash = strrchr(path, '/');

	*dir_len_r = slash == NULL ? 0 : (size_t)(slash - path);
	return slash == NULL ? path : slash + 1;
}

static bool is_lazy_candidate(const struct bundle_entry *e)
{
	return e->type == BUNDLE_ENTRY_STUB && e->link_id == 0;
}

/* the directory entry i of tree is a maildir cur/ or new/ */
static bool is_mail_dir(const struct bundle_entry *e)
{
	size_t len;
	const char *name = base_name(e->path, &len);

	return e->type == BUNDLE_ENTRY_DIR &&
		(strcmp(name, "cur") == 0 || strcmp(name, "new") == 0);
}

void lazydir_split(struct bundle_tree *tree, size_t threshold,
		   struct lazydir_split **splits_r, size_t *count_r)
{
	struct lazydir_split *splits = NULL;
	size_t count = 0, out = 0;
	bool *moved = NULL;
	bool is_root = geteuid() == 0;

	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *d = &tree->entries[i];
		size_t plen, n = 0, j;

		/* (entries moved to a split have no path any more) */
		if (d->path == NULL || !is_mail_dir(d))
			continue;
		plen = strlen(d->path);
		/* its children follow it (sorted by path); deeper paths
		   ("cur/x/y") are among them and are not candidates */
		for (j = i + 1; j < tree->count; j++) {
			const struct bundle_entry *e = &tree->entries[j];

			if (strncmp(e->path, d->path, plen) != 0 ||
			    e->path[plen] != '/')
				break;
			if (strchr(e->path + plen + 1, '/') == NULL &&
			    is_lazy_candidate(e))
				n++;
		}
		if (n <= threshold)
			continue;
		if (moved == NULL)
			moved = calloc(tree->count, sizeof(*moved));
		splits = realloc(splits, (count + 1) * sizeof(*splits));
		if (moved == NULL || splits == NULL)
			abort();
		struct lazydir_split *s = &splits[count++];
		s->path = strdup(d->path);
		s->tree = bundle_tree_new();
		if (s->path == NULL)
			abort();
		s->tree->entries = calloc(n, sizeof(struct bundle_entry));
		if (s->tree->entries == NULL)
			abort();
		s->tree->alloc = n;
		for (size_t k = i + 1; k < j; k++) {
			struct bundle_entry *e = &tree->entries[k];
			struct bundle_entry *t;

			if (strchr(e->path + plen + 1, '/') != NULL ||
			    !is_lazy_candidate(e))
				continue;
			t = &s->tree->entries[s->tree->count++];
			*t = *e;
			t->path = strdup(e->path + plen + 1);
			if (t->path == NULL)
				abort();
			free(e->path);
			e->path = NULL;
			if (!is_root) {
				t->uid = (uint32_t)geteuid();
				t->gid = (uint32_t)getegid();
			}
			moved[k] = true;
		}
	}
	if (count > 0) {
		for (size_t i = 0; i < tree->count; i++) {
			if (!moved[i])
				tree->entries[out++] = tree->entries[i];
		}
		tree->count = out;
		tree->is_base = false;
		tree->checked = false;
	}
	free(moved);
	*splits_r = splits;
	*count_r = count;
}

void lazydir_splits_free(struct lazydir_split **_splits, size_t count)
{
	struct lazydir_split *splits = *_splits;

	*_splits = NULL;
	for (size_t i = 0; splits != NULL && i < count; i++) {
		free(splits[i].path);
		bundle_tree_free(&splits[i].tree);
	}
	free(splits);
}

bool lazydir_split_has(const struct lazydir_split *splits, size_t count,
		       const char *path, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (splits[i].tree != NULL &&
		    strcmp(splits[i].path, path) == 0)
			return bundle_tree_find(splits[i].tree, name) != NULL;
	}
	return false;
}

/* a table's file name "<user>.<32 hex>": true if name is one (of user,
   if not NULL); *user_len_r its user part's length */
static bool table_name_parse(const char *name, const char *user,
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

static void cache_put(struct lazydir *lz, const char *name,
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

static void cache_drop(struct lazydir *lz, const char *name)
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

static int write_all(int fd, const unsigned char *data, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t ret = write(fd, data + done, size - done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -1;
		done += (size_t)ret;
	}
	return 0;
}

int lazydir_install(struct lazydir *lz, const char *user, int dir_fd,
		    struct bundle_tree **tree, const char **error_r)
{
	static __thread char errbuf[NAME_MAX + 160];
	char id[IDS_HEX_LEN + 1], name[NAME_MAX + 1], tmp[NAME_MAX + 6];
	struct bundle_info info;
	unsigned char *data = NULL;
	size_t size;
	const char *error = "no random id";
	int fd, err;
	struct timespec now;

	if (ids_generate(id) < 0 ||
	    (size_t)snprintf(name, sizeof(name), "%s.%s", user, id) >=
	    sizeof(name)) {
		errno = ENAMETOOLONG;
		*error_r = "table name too long";
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	memset(&info, 0, sizeof(info));
	clock_gettime(CLOCK_REALTIME, &now);
	info.secs = (uint32_t)now.tv_sec;
	info.usecs = (uint32_t)(now.tv_nsec / 1000);
	if (bundle_id_generate(info.id) < 0 ||
	    bundle_encode_base(*tree, &info, &data, &size, &error) < 0) {
		snprintf(errbuf, sizeof(errbuf), "encoding the table failed: "
			 "%s", error);
		*error_r = errbuf;
		errno = EINVAL;
		return -1;
	}
	fd = openat(lz->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0 || write_all(fd, data, size) < 0 || fsync(fd) < 0 ||
	    close(fd) < 0 || (fd = -1,
			      renameat(lz->dir_fd, tmp, lz->dir_fd, name) < 0) ||
	    bundle_fd_setxattr(dir_fd, LAZYDIR_XATTR, name, strlen(name),
			       0) < 0) {
		err = errno;
		if (fd >= 0)
			close(fd);
		(void)unlinkat(lz->dir_fd, tmp, 0);
		(void)unlinkat(lz->dir_fd, name, 0);
		free(data);
		snprintf(errbuf, sizeof(errbuf), "writing table %s failed: %s",
			 name, strerror(err));
		*error_r = errbuf;
		errno = err;
		return -1;
	}
	free(data);
	atomic_fetch_add(&lz->tables_written, 1);
	atomic_fetch_add(&lz->live, 1);
	pthread_mutex_lock(&lz->lock);
	cache_put(lz, name, tree);
	pthread_mutex_unlock(&lz->lock);
	return 0;
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
		if (!table_name_parse(name, user, &ulen))
			continue;
		cache_drop(lz, name);
		if (unlinkat(lz->dir_fd, d->d_name, 0) == 0 &&
		    strcmp(name, d->d_name) == 0)
			live_dec(lz);
	}
	pthread_mutex_unlock(&lz->lock);
	closedir(dir);
}

/* ---------------------------------------------------------- in use */

/* the table name of dir_fd: 1, 0 if it has none, -1 with errno */
static int table_name_get(int dir_fd, char name_r[NAME_MAX + 1])
{
	ssize_t len = bundle_fd_getxattr(dir_fd, LAZYDIR_XATTR, name_r,
					 NAME_MAX);
	size_t ulen;

	if (len < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
	name_r[len] = '\0';
	if (!table_name_parse(name_r, NULL, &ulen)) {
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

	return table_name_get(dir_fd, name) != 0;
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

/* the table of dir_fd (locked): 1 with *tree_r (the cache's), 0 if the
   directory is not lazy, -1 with errno (logged) */
static int table_get(struct lazydir *lz, int dir_fd, char name[NAME_MAX + 1],
		     const struct bundle_tree **tree_r)
{
	struct bundle_tree *tree;
	const char *error;
	int ret = table_name_get(dir_fd, name);

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
	cache_put(lz, name, &tree);
	return table_get(lz, dir_fd, name, tree_r);
}

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
	ret = table_get(lz, dir_fd, table, &tree) > 0 &&
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
	ret = table_get(lz, dir_fd, table, &tree);
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
		cache_drop(lz, table);
		if (unlinkat(lz->dir_fd, table, 0) == 0)
			live_dec(lz);
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
	ret = table_get(lz, dir_fd, table, &tree);
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
	ret = table_get(lz, dir_fd, table, &tree);
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
	ret = table_get(lz, dir_fd, table, &tree);
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
	ret = table_get(lz, dir_fd, table, &tree);
	if (ret > 0) {
		for (size_t i = 0; i < tree->count; i++)
			cb(&tree->entries[i], cb_context);
	} else if (ret < 0) {
		*error_r = "a lazy directory's table cannot be read";
	}
	pthread_mutex_unlock(&lz->lock);
	return ret;
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
		if (!table_name_parse(d->d_name, NULL, &ulen)) {
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
