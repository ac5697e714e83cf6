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

static struct objstore *open_s3(void)
{
	struct objstore_settings set = {
		.retry_timeout_ms = 20000,
		/* the listing tests cross pages with CONF_LIST_MANY keys */
		.list_page_keys = 50,
	};
	struct objstore *new_store;
	const char *error;
	char url[512];

	objtest_s3_settings(&set);
	objtest_s3_url("conformance", url, sizeof(url));
	cr_assert_eq(objstore_init(url, &set, &new_store, &error), 0,
		     "init(%s): %s", url, error);
	return new_store;
}

/* remove everything below this run's prefix */
static void close_s3(struct objstore **_store)
{
	if (*_store == NULL)
		return;
	objtest_delete_all(*_store);
	objstore_deinit(_store);
}

#define CONF_SUITE objstore_api_on_s3
#define CONF_EXACT_COUNTS 0
#define CONF_LIST_MANY 210
#define CONF_PAGE_KEYS 50	/* list_page_keys above */
#define conf_open open_s3
#define conf_close close_s3
#include "objstore-conformance.h"
