/* posix-list.c: listing for the file:// store.  Each directory is read,
 * filtered (no symlinks, special files or the temporary directory) and
 * sorted with "/" appended to directory names, so that a depth-first walk
 * yields keys in the same byte order as S3.  With the delimiter, a
 * subdirectory is reported as a prefix only if it holds an object.  An
 * object is stat()ed (size, mtime) only when it is given to the callback:
 * the type comes from readdir(). */
#include "posix-list.h"
#include "posix-tmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct list_entry {
	char *sort_name;	/* name, plus "/" for a directory */
	bool is_dir;
	/* size and mtime known (a stat was needed to tell the type); else
	   the entry is stat()ed only when it is given to the callback */
	bool stat_done;
	uint64_t size;
	time_t mtime;
};

struct list_ctx {
	objstore_list_cb *callback;
	void *context;
	bool delimiter;
	bool stopped;
	const char *start_after;	/* NULL or: list only keys after it */
	char key[OBJSTORE_KEY_MAX + 2];
};

static int list_entry_cmp(const void *p1, const void *p2)
{
	const struct list_entry *e1 = p1, *e2 = p2;

	return strcmp(e1->sort_name, e2->sort_name);
}

/* does directory dfd hold at least one object (at any depth)? */
static bool dir_has_object(int dfd, unsigned int depth)
{
	struct dirent *d;
	struct stat st;
	bool found = false;
	DIR *dir;
	int fd;

	if (depth > OBJSTORE_KEY_MAX / 2)
		return false;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (!found && (d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode))
			found = true;
		else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), d->d_name, O_RDONLY |
					 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				found = dir_has_object(sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(dir);
	return found;
}

/* Is ctx->key (a file's key, or a directory's with its '/') wholly at
   or before start_after?  A directory is, unless start_after is below it,
   if its key sorts before start_after: so do all keys below it. */
static bool before_start(const struct list_ctx *ctx, bool is_dir)
{
	size_t len = strlen(ctx->key);

	if (is_dir && strncmp(ctx->key, ctx->start_after, len) == 0)
		return false;
	return strcmp(ctx->key, ctx->start_after) <= 0;
}

/* read, filter and sort the entries of dfd (whose key, ending with '/' or
   "", is ctx->key).  The type comes from readdir() where it tells it (a
   stat only where it does not): a listing that stops early or starts
   after a key does not stat every object of a big directory (a cold
   load lists a 20,000-mail folder twice, to give 1,000 keys and then
   those after a watermark).  Entries wholly at or before start_after are
   left out here. */
static int list_read_dir(struct list_ctx *ctx, int dfd,
			 const char *name_prefix, bool top,
			 struct list_entry **entries_r, size_t *count_r)
{
	struct list_entry *entries = NULL, *tmp;
	size_t count = 0, alloc = 0, plen = strlen(name_prefix);
	size_t key_len = strlen(ctx->key);
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		const char *name = d->d_name;
		bool is_dir, stat_done = false;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    strncmp(name, name_prefix, plen) != 0 ||
		    (top && strcmp(name, POSIX_TMP_DIR_NAME) == 0))
			continue;
		switch (d->d_type) {
		case DT_REG:
			is_dir = false;
			break;
		case DT_DIR:
			is_dir = true;
			break;
		case DT_UNKNOWN:
			if (fstatat(dirfd(dir), name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 ||
			    (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)))
				continue;	/* vanished, symlink, special */
			is_dir = S_ISDIR(st.st_mode);
			stat_done = true;
			break;
		default:
			continue;	/* symlink or special file */
		}
		size_t nlen = strlen(name);

		if (ctx->start_after != NULL &&
		    key_len + nlen + 1 <= OBJSTORE_KEY_MAX) {
			memcpy(ctx->key + key_len, name, nlen);
			memcpy(ctx->key + key_len + nlen, is_dir ? "/" : "",
			       is_dir ? 2 : 1);
			bool skip = before_start(ctx, is_dir);

			ctx->key[key_len] = '\0';
			if (skip)
				continue;
		}
		if (count == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			tmp = realloc(entries, alloc * sizeof(*entries));
			if (tmp == NULL)
				goto fail;
			entries = tmp;
		}
		struct list_entry *e = &entries[count];

		e->is_dir = is_dir;
		e->stat_done = stat_done;
		e->size = stat_done ? (uint64_t)st.st_size : 0;
		e->mtime = stat_done ? st.st_mtim.tv_sec : 0;
		if (asprintf(&e->sort_name, "%s%s", name,
			     e->is_dir ? "/" : "") < 0)
			goto fail;
		count++;
	}
	closedir(dir);
	if (count > 0)
		qsort(entries, count, sizeof(*entries), list_entry_cmp);
	*entries_r = entries;
	*count_r = count;
	return 0;
fail:
	closedir(dir);
	for (size_t i = 0; i < count; i++)
		free(entries[i].sort_name);
	free(entries);
	errno = ENOMEM;
	return -1;
}

static void close_keep_errno(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
}

static int list_dir(struct list_ctx *ctx, int dfd, const char *name_prefix,
		    bool top)
{
	struct list_entry *entries;
	size_t count, key_len = strlen(ctx->key);
	const char *reason;
	int ret = 0;

	if (list_read_dir(ctx, dfd, name_prefix, top, &entries, &count) < 0)
		return errno == ENOENT ? 0 : -1; /* ENOENT: removed meanwhile */
	for (size_t i = 0; i < count && ret == 0 && !ctx->stopped; i++) {
		struct list_entry *e = &entries[i];
		struct objstore_list_entry le = { .key = ctx->key };
		size_t len = strlen(e->sort_name);

		if (key_len + len > OBJSTORE_KEY_MAX)
			continue;
		memcpy(ctx->key + key_len, e->sort_name, len + 1);
		if (ctx->start_after != NULL && before_start(ctx, e->is_dir))
			continue;
		if (!e->is_dir) {
			if (objstore_key_check(ctx->key, &reason) < 0)
				continue;	/* not a name we could write */
			if (!e->stat_done) {
				struct stat st;

				if (fstatat(dfd, ctx->key + key_len, &st,
					    AT_SYMLINK_NOFOLLOW) < 0 ||
				    !S_ISREG(st.st_mode))
					continue;	/* vanished meanwhile */
				e->size = (uint64_t)st.st_size;
				e->mtime = st.st_mtim.tv_sec;
			}
			le.size = e->size;
			le.mtime = e->mtime;
			if (ctx->callback(&le, ctx->context) != 0)
				ctx->stopped = true;
			continue;
		}
		ctx->key[key_len + len - 1] = '\0';
		int sub = openat(dfd, ctx->key + key_len, O_RDONLY |
				 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		ctx->key[key_len + len - 1] = '/';
		if (sub < 0)
			continue;
		if (!ctx->delimiter)
			ret = list_dir(ctx, sub, "", false);
		else if (dir_has_object(sub, 0)) {
			le.is_prefix = true;
			if (ctx->callback(&le, ctx->context) != 0)
				ctx->stopped = true;
		}
		close_keep_errno(sub);
	}
	ctx->key[key_len] = '\0';
	for (size_t i = 0; i < count; i++)
		free(entries[i].sort_name);
	free(entries);
	return ret;
}

int posix_list_dir(int dfd, const char *dir_key, const char *name_prefix,
		   bool top, bool delimiter, const char *start_after,
		   objstore_list_cb *callback, void *context)
{
	struct list_ctx ctx = {
		.callback = callback, .context = context,
		.delimiter = delimiter, .start_after = start_after,
	};

	if (strlen(dir_key) >= sizeof(ctx.key)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(ctx.key, dir_key);
	return list_dir(&ctx, dfd, name_prefix, top);
}
