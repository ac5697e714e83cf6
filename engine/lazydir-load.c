/* lazydir-load.c: a load's side of lazy directories (lazydir.h): which
 * directories of a tree go to tables, and writing a table. */
#include "lazydir-private.h"
#include "log.h"
#include "smallfile.h"
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

void lazydir_split(const struct bundle_tree *tree, size_t threshold,
		   struct lazydir_split **splits_r, size_t *count_r,
		   struct bundle_tree **rest_r)
{
	struct lazydir_split *splits = NULL;
	size_t count = 0;
	bool *split = NULL;
	bool is_root = geteuid() == 0;

	*rest_r = NULL;
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *d = &tree->entries[i];
		size_t plen, n = 0, j;

		/* (a split directory's children are not mail dirs) */
		if ((split != NULL && split[i]) || !is_mail_dir(d))
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
		if (split == NULL)
			split = calloc(tree->count, sizeof(*split));
		splits = realloc(splits, (count + 1) * sizeof(*splits));
		if (split == NULL || splits == NULL)
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
			const struct bundle_entry *e = &tree->entries[k];
			struct bundle_entry *t;

			if (strchr(e->path + plen + 1, '/') != NULL ||
			    !is_lazy_candidate(e))
				continue;
			t = &s->tree->entries[s->tree->count++];
			*t = *e;
			t->path = strdup(e->path + plen + 1);
			t->key = strdup(e->key);
			if (t->path == NULL || t->key == NULL)
				abort();
			if (!is_root) {
				t->uid = (uint32_t)geteuid();
				t->gid = (uint32_t)getegid();
			}
			split[k] = true;
		}
	}
	if (count > 0) {
		/* the rest: the entries themselves, not copies */
		struct bundle_tree *rest = bundle_tree_new();

		rest->entries = calloc(tree->count, sizeof(*rest->entries));
		if (rest->entries == NULL)
			abort();
		rest->alloc = tree->count;
		for (size_t i = 0; i < tree->count; i++) {
			if (!split[i])
				rest->entries[rest->count++] = tree->entries[i];
		}
		*rest_r = rest;
	}
	free(split);
	*splits_r = splits;
	*count_r = count;
}

void lazydir_split_rest_free(struct bundle_tree **_rest)
{
	struct bundle_tree *rest = *_rest;

	*_rest = NULL;
	if (rest == NULL)
		return;
	free(rest->entries);
	free(rest);
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
	if (fd < 0 || smallfile_write_all(fd, data, size) < 0 || fsync(fd) < 0 ||
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
	lazydir_cache_put(lz, name, tree);
	pthread_mutex_unlock(&lz->lock);
	return 0;
}
