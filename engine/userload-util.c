/* userload-util.c: what userload.c (listing, bundles, trees) and
 * userload-rescan.c (putting mails back) both use: allocation, errors,
 * the root table and its queue, directory helpers.  Calls go from those
 * two files to this one, never back. */
#include "userload-private.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread char ul_errbuf[1024];

void *ul_xrealloc(void *p, size_t size)
{
	p = realloc(p, size == 0 ? 1 : size);
	if (p == NULL)
		abort();
	return p;
}

char *ul_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

char *ul_path_join(const char *a, const char *b)
{
	size_t alen = strlen(a), blen = strlen(b);
	char *p;

	if (alen == 0)
		return ul_xstrdup(b);
	p = ul_xrealloc(NULL, alen + 1 + blen + 1);
	memcpy(p, a, alen);
	p[alen] = '/';
	memcpy(p + alen + 1, b, blen + 1);
	return p;
}

int ul_fail(const char **error_r, int err, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(ul_errbuf, sizeof(ul_errbuf), fmt, args);
	va_end(args);
	*error_r = ul_errbuf;
	errno = err;
	return -1;
}

/* store errors that retrying later may fix: the load fails */
bool ul_store_error_is_fatal(void)
{
	switch (objstore_errcode()) {
	case OBJSTORE_ERR_NOT_FOUND:
	case OBJSTORE_ERR_TOO_BIG:
	case OBJSTORE_ERR_INVALID:
		return false;
	default:
		return true;
	}
}

/* local errors caused by the shape of an untrusted path, not the disk */
bool ul_local_error_is_path(int err)
{
	return err == ENOTDIR || err == EEXIST || err == ELOOP ||
		err == ENAMETOOLONG || err == EISDIR || err == EXDEV;
}

size_t ul_root_get(struct ul_ctx *ctx, const char *guid)
{
	for (size_t i = ctx->count; i > 0; i--) {
		if (strcmp(ctx->roots[i - 1].guid, guid) == 0)
			return i - 1;
	}
	if (ctx->count == ctx->alloc) {
		ctx->alloc = ctx->alloc == 0 ? 8 : ctx->alloc * 2;
		ctx->roots = ul_xrealloc(ctx->roots,
				      ctx->alloc * sizeof(*ctx->roots));
		/* each root is queued at most once */
		ctx->queue = ul_xrealloc(ctx->queue,
				      ctx->alloc * sizeof(*ctx->queue));
	}
	memset(&ctx->roots[ctx->count], 0, sizeof(ctx->roots[0]));
	snprintf(ctx->roots[ctx->count].guid, IDS_HEX_LEN + 1, "%s", guid);
	if (guid[0] != '\0')
		ctx->stats.folders_found++;
	return ctx->count++;
}

int ul_dir_is_empty(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int ret = 1;

	if (dfd < 0)
		return -1;
	if ((dir = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") != 0 &&
		    strcmp(d->d_name, "..") != 0) {
			ret = 0;
			break;
		}
	}
	closedir(dir);
	return ret;
}

void ul_place_root(struct ul_ctx *ctx, size_t idx, const char *path)
{
	ctx->roots[idx].path = ul_xstrdup(path);
	ctx->queue[ctx->queue_count++] = idx;
}

bool ul_mail_key_parse(const struct ul_ctx *ctx, const char *key,
		       char guid_r[IDS_HEX_LEN + 1])
{
	struct keys_parsed parsed;

	if (keys_parse(ctx->prefix, key, &parsed) != KEYS_MAIL)
		return false;
	memcpy(guid_r, parsed.guid, IDS_HEX_LEN + 1);
	return true;
}
