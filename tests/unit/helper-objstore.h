/* helper-objstore.h: helpers for object-store unit tests: temporary
 * directories, deterministic random data, bulk puts from several threads and
 * collecting a listing into an array. */
#ifndef OBOXFS_HELPER_OBJSTORE_H
#define OBOXFS_HELPER_OBJSTORE_H

#include "objstore.h"

/* mkdtemp() below $OBOXFS_TEST_DIR (or /tmp); returns a malloc()ed path or
   NULL */
char *objtest_mkdtemp(const char *name);
/* rm -rf path (does not follow symlinks) */
void objtest_rm_rf(const char *path);
/* mkdir dir/store and open it as a file:// store with set; fails the
   test on error */
struct objstore *objtest_open_posix_store(const char *dir,
					  const struct objstore_settings *set);
/* mkdir parent/name (0700) and open it O_DIRECTORY; fails the test on
   error */
int objtest_mkdir_open(const char *parent, const char *name);
/* the fixture of tests that scan one tree and write another: a new
   temporary directory (*tmp_r, named after name) with src/ and dst/ open
   as *src_fd_r and *dst_fd_r; fails the test on error */
void objtest_src_dst_init(const char *name, char **tmp_r, int *src_fd_r,
			  int *dst_fd_r);
/* close both, rm -rf and free *tmp; all are reset */
void objtest_src_dst_fini(char **tmp, int *src_fd, int *dst_fd);
/* fill buf with bytes from a fixed pseudo-random sequence */
void objtest_random_bytes(void *buf, size_t size, unsigned int seed);

/* put keys "<prefix>%05u" (content: the key) for 0..count-1 from nthreads
   threads; returns 0 or -1 (with the first error printed to stderr) */
int objtest_put_many(struct objstore *store, const char *prefix,
		     unsigned int count, unsigned int nthreads);
/* build the key objtest_put_many() uses; returns a static-size buffer */
void objtest_many_key(char *buf, size_t size, const char *prefix,
		      unsigned int i);

struct objtest_list {
	char **keys;
	bool *is_prefix;
	uint64_t *sizes;
	size_t count, alloc;
	/* stop after this many entries (0 = never) */
	size_t stop_after;
	/* list only keys after this one (objstore_list_from()); NULL = all */
	const char *start_after;
};
/* objstore_list() into list (zeroed by the caller, stop_after and
   start_after optional) */
int objtest_list(struct objstore *store, const char *prefix,
		 const char *delimiter, struct objtest_list *list);
/* objstore_list_paced() into list (its start_after, if any) */
int objtest_list_paced(struct objstore *store, const char *prefix,
		       unsigned int first_page_keys,
		       struct objtest_list *list);
void objtest_list_free(struct objtest_list *list);

/* the test S3 server (ctest's "swift" fixture, tests/CMakeLists.txt):
   OBOXFS_TEST_S3_<name>, failing the test if it is not set */
const char *objtest_s3_env(const char *name);
/* settings that reach it (endpoint, region, path-style requests), its
   credentials put in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the
   caller sets the rest */
void objtest_s3_settings(struct objstore_settings *set);
/* "s3://<bucket>/<what>-<pid>-<time>": a prefix no other run uses */
void objtest_s3_url(const char *what, char *buf, size_t size);
/* delete every key of store (below its prefix): a test's cleanup */
void objtest_delete_all(struct objstore *store);

#endif
