/* cachedir-scan.c: rebuild the LRU index from the cache directory at
 * startup: files are ordered by mtime (refreshed on every hit), leftover
 * temporary files and files with unknown names are deleted, and the cache
 * is evicted down to its cap.  Checksums are checked lazily, on first use. */
#include "cachedir-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct found {
	uint8_t id[CACHEDIR_ID_LEN];
	uint64_t csum, size;
	struct timespec mtime;
};

struct found_list {
	struct found *items;
	size_t count, alloc;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return 0;
}

static bool is_subdir_name(const char *name)
{
	return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

static int scan_subdir(int dir_fd, const char *sub, struct found_list *list)
{
	int fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	struct stat st;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		cachedir_set_error("opendir(%s) failed: %m", sub);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		struct found f;
		bool ok;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		ok = S_ISREG(st.st_mode) &&
			cachedir_parse_file_name(d->d_name, f.id, &f.csum) == 0 &&
			/* in the subdirectory of its id's last byte */
			strncmp(d->d_name + 2 * CACHEDIR_ID_LEN - 2, sub,
				2) == 0;
		if (!ok) {
			/* temporary files of a crashed process, old formats */
			(void)unlinkat(fd, d->d_name, 0);
			continue;
		}
		if (list->count == list->alloc) {
			size_t n = list->alloc == 0 ? 256 : list->alloc * 2;
			struct found *p = realloc(list->items, n * sizeof(*p));

			if (p == NULL) {
				closedir(dir);
				cachedir_set_error("out of memory");
				errno = ENOMEM;
				return -1;
			}
			list->items = p;
			list->alloc = n;
		}
		f.size = (uint64_t)st.st_size;
		f.mtime = st.st_mtim;
		list->items[list->count++] = f;
	}
	closedir(dir);
	return 0;
}

int cachedir_scan(struct cachedir *cd)
{
	struct found_list list = { NULL, 0, 0 };
	char name[CACHEDIR_NAME_LEN + 1];
	struct cachedir_entry *e;
	struct dirent *d;
	DIR *dir;
	int fd, ret = 0;

	fd = dup(cd->dir_fd);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		cachedir_set_error("opendir() failed: %m");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(dir);
	while (ret == 0 && (d = readdir(dir)) != NULL) {
		if (is_subdir_name(d->d_name))
			ret = scan_subdir(cd->dir_fd, d->d_name, &list);
	}
	closedir(dir);

	if (list.count > 0)
		qsort(list.items, list.count, sizeof(*list.items), found_cmp);
	for (size_t i = 0; ret == 0 && i < list.count; i++) {
		struct found *f = &list.items[i];

		e = cachedir_index_lookup(&cd->idx, f->id);
		if (e != NULL) {
			/* the same object twice: keep the newer */
			cachedir_file_name(e->id, e->csum, name);
			(void)unlinkat(cd->dir_fd, name, 0);
			cachedir_index_remove(&cd->idx, e);
			free(e);
		}
		if (cachedir_index_insert(&cd->idx, f->id, f->size,
					  f->csum) == NULL) {
			cachedir_set_error("out of memory");
			ret = -1;
		}
	}
	free(list.items);
	/* the cap may have been lowered since */
	while (ret == 0 && cd->idx.bytes > cd->cap) {
		e = cachedir_index_lru(&cd->idx);
		cachedir_file_name(e->id, e->csum, name);
		(void)unlinkat(cd->dir_fd, name, 0);
		cachedir_index_remove(&cd->idx, e);
		free(e);
		cd->stats.evictions++;
	}
	return ret;
}
