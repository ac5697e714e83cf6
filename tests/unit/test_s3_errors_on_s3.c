/* test_s3_errors_on_s3.c: against the local Swift S3, a bad secret or
 * access key, a missing bucket and an unreachable endpoint make
 * objstore_init() fail with a clear one-line error (and the right error
 * code), the last one quickly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helper-objstore.h"
#include "objstore.h"

static void setup(void)
{
	setenv("AWS_ACCESS_KEY_ID", objtest_s3_env("ACCESS_KEY"), 1);
	setenv("AWS_SECRET_ACCESS_KEY", objtest_s3_env("SECRET_KEY"), 1);
	unsetenv("AWS_SESSION_TOKEN");
}

TestSuite(s3_errors_on_s3, .init = setup, .timeout = 60);

static int try_init(const char *bucket, const char *endpoint,
		    const char **error_r)
{
	struct objstore_settings set = {
		.endpoint = endpoint,
		.region = objtest_s3_env("REGION"),
		.retry_timeout_ms = 5000,
	};
	struct objstore *store = NULL;
	char url[256];
	int ret;

	snprintf(url, sizeof(url), "s3://%s/errors-test", bucket);
	ret = objstore_init(url, &set, &store, error_r);
	if (ret == 0) {
		cr_assert_not_null(store);
		objstore_deinit(&store);
	} else {
		cr_assert_null(store);
		cr_assert_null(strchr(*error_r, '\n'), "not one line: %s",
			       *error_r);
	}
	return ret;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(s3_errors_on_s3, good_settings_work)
{
	const char *error;

	cr_assert_eq(try_init(objtest_s3_env("BUCKET"),
			      objtest_s3_env("ENDPOINT"), &error), 0,
		     "%s", error);
}

Test(s3_errors_on_s3, wrong_secret_is_auth_error)
{
	const char *error;

	setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
	cr_assert_eq(try_init(objtest_s3_env("BUCKET"),
			      objtest_s3_env("ENDPOINT"), &error), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_AUTH, "%s", error);
	cr_assert(strstr(error, "LIST failed: 403 SignatureDoesNotMatch: "
			 "The request signature we calculated does not "
			 "match") != NULL, "%s", error);
	cr_assert(strstr(error, "(after 1 attempt)") != NULL, "%s", error);
	cr_assert_null(strstr(error, "not-the-secret"), "%s", error);
}

Test(s3_errors_on_s3, unknown_access_key_is_auth_error)
{
	const char *error;

	setenv("AWS_ACCESS_KEY_ID", "nobody:nobody", 1);
	cr_assert_eq(try_init(objtest_s3_env("BUCKET"),
			      objtest_s3_env("ENDPOINT"), &error), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_AUTH, "%s", error);
	cr_assert(strstr(error, "403") != NULL, "%s", error);
}

Test(s3_errors_on_s3, missing_bucket_is_clear)
{
	const char *error;

	cr_assert_eq(try_init("oboxfs-no-such-bucket",
			      objtest_s3_env("ENDPOINT"), &error), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_PERMANENT, "%s", error);
	cr_assert(strstr(error, "404 NoSuchBucket") != NULL, "%s", error);
	cr_assert(strstr(error, "does bucket 'oboxfs-no-such-bucket' "
			 "exist?") != NULL, "%s", error);
}

Test(s3_errors_on_s3, unreachable_endpoint_fails_fast)
{
	const char *error;
	double start = now_s();

	/* port 1 on loopback: nothing listens there */
	cr_assert_eq(try_init(objtest_s3_env("BUCKET"),
			      "http://127.0.0.1:1", &error), -1);
	cr_assert_lt(now_s() - start, 2.0, "took %.1f s", now_s() - start);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_TRANSIENT, "%s", error);
	cr_assert(strstr(error, "http://127.0.0.1:1") != NULL, "%s", error);
	cr_assert(strstr(error, "Connection refused") != NULL ||
		  strstr(error, "Couldn't connect") != NULL, "%s", error);
	cr_assert(strstr(error, "(after 1 attempt)") != NULL, "%s", error);
}
