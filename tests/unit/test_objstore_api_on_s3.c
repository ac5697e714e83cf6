/* test_objstore_api_on_s3.c: the objstore conformance suite on the s3
 * backend, against the local Swift S3 started by the ctest fixture
 * (OBOXFS_TEST_S3_* in the environment).  Each test uses its own prefix in
 * the bucket and removes what it wrote.  LIST pages of 50 keys: the listing
 * tests cross pages with 210 keys instead of 2,100 (PUTs are most of this
 * suite's time). */
#include "helper-objstore.h"
#include "objstore.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *env(const char *name)
{
	const char *value = getenv(name);

	cr_assert(value != NULL && value[0] != '\0',
		  "%s not set: run this test through ctest (S3 fixture)", name);
	return value;
}

static struct objstore *open_s3(void)
{
	struct objstore_settings set = {
		.addressing = OBJSTORE_ADDRESSING_PATH,
		.retry_timeout_ms = 20000,
		/* the listing tests cross pages with CONF_LIST_MANY keys */
		.list_page_keys = 50,
	};
	struct objstore *new_store;
	struct timespec ts;
	const char *error;
	char url[512];

	set.endpoint = env("OBOXFS_TEST_S3_ENDPOINT");
	set.region = env("OBOXFS_TEST_S3_REGION");
	/* no credentials file: the backend takes these */
	setenv("AWS_ACCESS_KEY_ID", env("OBOXFS_TEST_S3_ACCESS_KEY"), 1);
	setenv("AWS_SECRET_ACCESS_KEY", env("OBOXFS_TEST_S3_SECRET_KEY"), 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(url, sizeof(url), "s3://%s/conformance-%ld-%ld-%ld",
		 env("OBOXFS_TEST_S3_BUCKET"), (long)getpid(),
		 (long)ts.tv_sec, ts.tv_nsec);
	cr_assert_eq(objstore_init(url, &set, &new_store, &error), 0,
		     "init(%s): %s", url, error);
	return new_store;
}

/* remove everything below this run's prefix */
static void close_s3(struct objstore **_store)
{
	struct objtest_list list = { 0 };

	if (*_store == NULL)
		return;
	if (objtest_list(*_store, "", NULL, &list) == 0 && list.count > 0) {
		if (objstore_delete_many(*_store, (const char *const *)list.keys,
					 (unsigned int)list.count) < 0)
			fprintf(stderr, "cleanup: %s\n", objstore_error());
	}
	objtest_list_free(&list);
	objstore_deinit(_store);
}

#define CONF_SUITE objstore_api_on_s3
#define CONF_EXACT_COUNTS 0
#define CONF_LIST_MANY 210
#define CONF_PAGE_KEYS 50	/* list_page_keys above */
#define conf_open open_s3
#define conf_close close_s3
#include "objstore-conformance.h"
