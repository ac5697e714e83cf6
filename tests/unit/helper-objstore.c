/* helper-objstore.c: see helper-objstore.h. */
#include "helper-objstore.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *objtest_mkdtemp(const char *name)
{
	const char *base = getenv("OBOXFS_TEST_DIR");
	char *path;

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	(void)mkdir(base, 0755);
	if (asprintf(&path, "%s/%s.XXXXXX", base, name) < 0)
		return NULL;
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st; (void)ftw;
	if (flag == FTW_DP)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

void objtest_rm_rf(const char *path)
{
	if (path != NULL)
		(void)nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct objstore *objtest_open_posix_store(const char *dir,
					  const struct objstore_settings *set)
{
	char path[4096], url[4200];
	struct objstore *store;
	const char *error;

	snprintf(path, sizeof(path), "%s/store", dir);
	cr_assert_eq(mkdir(path, 0700), 0, "mkdir(%s) failed", path);
	snprintf(url, sizeof(url), "file://%s", path);
	cr_assert_eq(objstore_init(url, set, &store, &error), 0, "%s", error);
	return store;
}

int objtest_mkdir_open(const char *parent, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", parent, name);
	cr_assert_eq(mkdir(path, 0700), 0, "mkdir(%s) failed", path);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0, "open(%s) failed", path);
	return fd;
}

void objtest_src_dst_init(const char *name, char **tmp_r, int *src_fd_r,
			  int *dst_fd_r)
{
	*tmp_r = objtest_mkdtemp(name);
	cr_assert_not_null(*tmp_r);
	*src_fd_r = objtest_mkdir_open(*tmp_r, "src");
	*dst_fd_r = objtest_mkdir_open(*tmp_r, "dst");
}

void objtest_src_dst_fini(char **tmp, int *src_fd, int *dst_fd)
{
	if (*src_fd >= 0)
		close(*src_fd);
	if (*dst_fd >= 0)
		close(*dst_fd);
	*src_fd = *dst_fd = -1;
	if (*tmp != NULL)
		objtest_rm_rf(*tmp);
	free(*tmp);
	*tmp = NULL;
}

void objtest_random_bytes(void *buf, size_t size, unsigned int seed)
{
	unsigned char *p = buf;
	uint64_t x = 0x853c49e6748fea9bULL ^ seed;

	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
}

void objtest_many_key(char *buf, size_t size, const char *prefix,
		      unsigned int i)
{
	snprintf(buf, size, "%s%05u", prefix, i);
}

struct put_many_ctx {
	struct objstore *store;
	const char *prefix;
	unsigned int count, nthreads, index;
	int ret;
};

static void *put_many_thread(void *context)
{
	struct put_many_ctx *ctx = context;
	char key[OBJSTORE_KEY_MAX + 1];

	for (unsigned int i = ctx->index; i < ctx->count; i += ctx->nthreads) {
		objtest_many_key(key, sizeof(key), ctx->prefix, i);
		if (objstore_put(ctx->store, key, key, strlen(key), NULL,
				 0) < 0) {
			fprintf(stderr, "put_many: %s\n", objstore_error());
			ctx->ret = -1;
			break;
		}
	}
	return NULL;
}

int objtest_put_many(struct objstore *store, const char *prefix,
		     unsigned int count, unsigned int nthreads)
{
	struct put_many_ctx ctx[nthreads];
	pthread_t threads[nthreads];
	int ret = 0;

	for (unsigned int i = 0; i < nthreads; i++) {
		ctx[i] = (struct put_many_ctx){
			.store = store, .prefix = prefix, .count = count,
			.nthreads = nthreads, .index = i,
		};
		if (pthread_create(&threads[i], NULL, put_many_thread,
				   &ctx[i]) != 0)
			return -1;
	}
	for (unsigned int i = 0; i < nthreads; i++) {
		pthread_join(threads[i], NULL);
		if (ctx[i].ret < 0)
			ret = -1;
	}
	return ret;
}

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct objtest_list *list = context;

	if (list->count == list->alloc) {
		list->alloc = list->alloc == 0 ? 64 : list->alloc * 2;
		list->keys = realloc(list->keys,
				     list->alloc * sizeof(*list->keys));
		list->is_prefix = realloc(list->is_prefix,
				list->alloc * sizeof(*list->is_prefix));
		list->sizes = realloc(list->sizes,
				      list->alloc * sizeof(*list->sizes));
		if (list->keys == NULL || list->is_prefix == NULL ||
		    list->sizes == NULL)
			abort();
	}
	list->keys[list->count] = strdup(entry->key);
	list->is_prefix[list->count] = entry->is_prefix;
	list->sizes[list->count] = entry->size;
	list->count++;
	return list->stop_after != 0 && list->count >= list->stop_after;
}

int objtest_list(struct objstore *store, const char *prefix,
		 const char *delimiter, struct objtest_list *list)
{
	if (list->start_after != NULL && delimiter == NULL)
		return objstore_list_from(store, prefix, list->start_after,
					  list_cb, list);
	return objstore_list(store, prefix, delimiter, list_cb, list);
}

int objtest_list_paced(struct objstore *store, const char *prefix,
		       unsigned int first_page_keys,
		       struct objtest_list *list)
{
	return objstore_list_paced(store, prefix, list->start_after,
				   first_page_keys, list_cb, list);
}

void objtest_list_free(struct objtest_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->keys[i]);
	free(list->keys);
	free(list->is_prefix);
	free(list->sizes);
	memset(list, 0, sizeof(*list));
}

const char *objtest_s3_env(const char *name)
{
	char var[128];
	const char *value;

	snprintf(var, sizeof(var), "OBOXFS_TEST_S3_%s", name);
	value = getenv(var);
	cr_assert(value != NULL && value[0] != '\0',
		  "%s not set: run this test through ctest (S3 fixture)", var);
	return value;
}

void objtest_s3_settings(struct objstore_settings *set)
{
	set->endpoint = objtest_s3_env("ENDPOINT");
	set->region = objtest_s3_env("REGION");
	set->addressing = OBJSTORE_ADDRESSING_PATH;
	/* no credentials file: the backend takes these */
	setenv("AWS_ACCESS_KEY_ID", objtest_s3_env("ACCESS_KEY"), 1);
	setenv("AWS_SECRET_ACCESS_KEY", objtest_s3_env("SECRET_KEY"), 1);
}

void objtest_s3_url(const char *what, char *buf, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, size, "s3://%s/%s-%ld-%ld-%ld", objtest_s3_env("BUCKET"),
		 what, (long)getpid(), (long)ts.tv_sec, ts.tv_nsec);
}

void objtest_delete_all(struct objstore *store)
{
	struct objtest_list list = { 0 };

	if (objtest_list(store, "", NULL, &list) == 0 && list.count > 0 &&
	    objstore_delete_many(store, (const char *const *)list.keys,
				 (unsigned int)list.count) < 0)
		fprintf(stderr, "cleanup: %s\n", objstore_error());
	objtest_list_free(&list);
}
