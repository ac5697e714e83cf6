/* test_s3_url_and_credentials.c: the s3 backend refuses malformed store
 * URLs, endpoints, regions and credentials files with a one-line error
 * before it sends anything, and parses valid ones as documented. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "objstore.h"
#include "s3-credentials.h"
#include "s3-url.h"

/* a closed port: if validation wrongly passed, init would fail differently */
#define CLOSED_ENDPOINT "http://127.0.0.1:1"

static char tmpdir[64];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/oboxfs-s3cred-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value", 1);
	unsetenv("AWS_SESSION_TOKEN");
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(s3_url_and_credentials, .init = setup, .fini = teardown);

struct bad_url {
	char url[64];
	char endpoint[48];
	char expect[48];	/* substring of the error */
};

static struct bad_url bad_urls[] = {
	{ "s3://", CLOSED_ENDPOINT, "empty bucket name" },
	{ "s3:///prefix", CLOSED_ENDPOINT, "empty bucket name" },
	{ "s3://ab", CLOSED_ENDPOINT, "3..63" },
	{ "s3://Bucket", CLOSED_ENDPOINT, "may only contain" },
	{ "s3://buc ket", CLOSED_ENDPOINT, "may only contain" },
	{ "s3://b@cket/x", CLOSED_ENDPOINT, "may only contain" },
	{ "s3://-bucket", CLOSED_ENDPOINT, "start and end" },
	{ "s3://bucket/../x", CLOSED_ENDPOINT, "'.' or '..'" },
	{ "s3://bucket/a/../b", CLOSED_ENDPOINT, "'.' or '..'" },
	{ "s3://bucket/a//b", CLOSED_ENDPOINT, "empty segment" },
	{ "s3://bucket//a", CLOSED_ENDPOINT, "empty segment" },
	{ "s3://bucket//", CLOSED_ENDPOINT, "empty" },
	{ "s3://bucket/a\tb", CLOSED_ENDPOINT, "control character" },
	{ "s3://bucket", "ftp://127.0.0.1", "http:// or https://" },
	{ "s3://bucket", "garbage", "http:// or https://" },
	{ "s3://bucket", "http://", "bad host" },
	{ "s3://bucket", "http://:80", "bad host" },
	{ "s3://bucket", "http://host:0", "bad port" },
	{ "s3://bucket", "http://host:99999", "bad port" },
	{ "s3://bucket", "http://host:8o", "bad port" },
	{ "s3://bucket", "http://host/path", "after the host" },
	{ "s3://bucket", "http://user@host", "after the host" },
	{ "s3://bucket", "http://host?x=1", "after the host" },
};

ParameterizedTestParameters(s3_url_and_credentials, bad_url_or_endpoint)
{
	return cr_make_param_array(struct bad_url, bad_urls,
				   sizeof(bad_urls) / sizeof(bad_urls[0]));
}

ParameterizedTest(struct bad_url *c, s3_url_and_credentials,
		  bad_url_or_endpoint)
{
	struct objstore_settings set = { .endpoint = c->endpoint };
	struct objstore *store = (struct objstore *)&set;
	const char *error;

	cr_assert_eq(objstore_init(c->url, &set, &store, &error), -1,
		     "%s accepted", c->url);
	cr_assert_null(store);
	cr_assert(strstr(error, c->expect) != NULL,
		  "%s / %s: error '%s' lacks '%s'", c->url, c->endpoint, error,
		  c->expect);
	cr_assert_null(strchr(error, '\n'), "error not one line: %s", error);
}

Test(s3_url_and_credentials, bad_region)
{
	struct objstore_settings set = { .endpoint = CLOSED_ENDPOINT,
					 .region = "us east/1" };
	struct objstore *store;
	const char *error;

	cr_assert_eq(objstore_init("s3://bucket", &set, &store, &error), -1);
	cr_assert(strstr(error, "invalid S3 region") != NULL, "%s", error);
}

Test(s3_url_and_credentials, path_style_for_custom_endpoint)
{
	struct s3_url url;
	const char *error;

	cr_assert_eq(s3_url_parse("my-bucket/users/prod/", "http://127.0.0.1:8080/",
				  "us-east-1", OBJSTORE_ADDRESSING_AUTO, &url,
				  &error), 0, "%s", error);
	cr_assert_str_eq(url.bucket, "my-bucket");
	cr_assert_str_eq(url.prefix, "users/prod");
	cr_assert_not(url.virtual_host);
	cr_assert_not(url.https);
	cr_assert_str_eq(url.host_header, "127.0.0.1:8080");
	cr_assert_str_eq(url.base_url, "http://127.0.0.1:8080");
	cr_assert_str_eq(url.bucket_path, "/my-bucket");
	s3_url_free(&url);
}

Test(s3_url_and_credentials, virtual_host_for_aws)
{
	struct s3_url url;
	const char *error;

	cr_assert_eq(s3_url_parse("mailbucket", NULL, "eu-west-1",
				  OBJSTORE_ADDRESSING_AUTO, &url, &error), 0,
		     "%s", error);
	cr_assert_str_eq(url.prefix, "");
	cr_assert(url.virtual_host);
	cr_assert(url.https);
	cr_assert_str_eq(url.host_header, "mailbucket.s3.eu-west-1.amazonaws.com");
	cr_assert_str_eq(url.bucket_path, "");
	s3_url_free(&url);

	/* forced path-style on AWS, forced virtual-host on a custom one */
	cr_assert_eq(s3_url_parse("mailbucket", NULL, "eu-west-1",
				  OBJSTORE_ADDRESSING_PATH, &url, &error), 0);
	cr_assert_not(url.virtual_host);
	cr_assert_str_eq(url.host_header, "s3.eu-west-1.amazonaws.com");
	cr_assert_str_eq(url.bucket_path, "/mailbucket");
	s3_url_free(&url);
	cr_assert_eq(s3_url_parse("mailbucket/p", "https://minio.local:9000",
				  "us-east-1", OBJSTORE_ADDRESSING_VIRTUAL,
				  &url, &error), 0);
	cr_assert(url.virtual_host);
	cr_assert_str_eq(url.host_header, "mailbucket.minio.local:9000");
	s3_url_free(&url);
	cr_assert_eq(s3_url_parse("mailbucket", "http://[::1]:9000",
				  "us-east-1", OBJSTORE_ADDRESSING_VIRTUAL,
				  &url, &error), -1);
	s3_url_free(&url);
}

static char *write_file(const char *name, const char *content, mode_t mode)
{
	char *path;
	int fd;

	cr_assert_gt(asprintf(&path, "%s/%s", tmpdir, name), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)),
		     (ssize_t)strlen(content));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

Test(s3_url_and_credentials, good_file_all_spellings)
{
	struct s3_credentials cred;
	const char *error;
	char *path;

	path = write_file("a.cred", "# oboxfs\n\naccess_key = AKID1\n"
			  "secret_key=s3cr3t/+x\n", 0600);
	cr_assert_eq(s3_credentials_load(path, &cred, &error), 0, "%s", error);
	cr_assert_str_eq(cred.access_key, "AKID1");
	cr_assert_str_eq(cred.secret_key, "s3cr3t/+x");
	cr_assert_null(cred.session_token);
	s3_credentials_free(&cred);
	free(path);

	path = write_file("b.cred", "[default]\r\naws_access_key_id = AKID2\r\n"
			  "aws_secret_access_key = sec2\r\n"
			  "aws_session_token = tok2\r\n", 0400);
	cr_assert_eq(s3_credentials_load(path, &cred, &error), 0, "%s", error);
	cr_assert_str_eq(cred.access_key, "AKID2");
	cr_assert_str_eq(cred.secret_key, "sec2");
	cr_assert_str_eq(cred.session_token, "tok2");
	s3_credentials_free(&cred);
	cr_assert_null(cred.access_key);
	free(path);
}

Test(s3_url_and_credentials, environment_fallback)
{
	struct s3_credentials cred;
	const char *error;

	setenv("AWS_SESSION_TOKEN", "tok", 1);
	cr_assert_eq(s3_credentials_load(NULL, &cred, &error), 0, "%s", error);
	cr_assert_str_eq(cred.access_key, "AKIDTEST");
	cr_assert_str_eq(cred.secret_key, "very-secret-value");
	cr_assert_str_eq(cred.session_token, "tok");
	s3_credentials_free(&cred);

	unsetenv("AWS_SECRET_ACCESS_KEY");
	cr_assert_eq(s3_credentials_load(NULL, &cred, &error), -1);
	cr_assert(strstr(error, "AWS_SECRET_ACCESS_KEY") != NULL, "%s", error);
}

struct bad_cred {
	char name[16];
	char content[128];
	unsigned int mode;
	char expect[48];
};

static struct bad_cred bad_creds[] = {
	{ "world", "access_key = A\nsecret_key = TOPSECRET\n", 0644,
	  "accessible by group or others" },
	{ "group", "access_key = A\nsecret_key = TOPSECRET\n", 0640,
	  "accessible by group or others" },
	{ "unknown", "access_key = A\nsecret_key = TOPSECRET\nregion = x\n",
	  0600, "line 3: unknown setting 'region'" },
	{ "noequals", "access_key A\nsecret_key = TOPSECRET\n", 0600,
	  "line 1: expected 'name = value'" },
	{ "nosecret", "access_key = A\n", 0600, "both required" },
	{ "empty", "", 0600, "both required" },
	{ "twice", "access_key = A\naccess_key = B\nsecret_key = TOPSECRET\n",
	  0600, "given twice" },
	{ "space", "access_key = A B\nsecret_key = TOPSECRET\n", 0600,
	  "line 1: empty value" },
};

ParameterizedTestParameters(s3_url_and_credentials, bad_credentials_file)
{
	return cr_make_param_array(struct bad_cred, bad_creds,
				   sizeof(bad_creds) / sizeof(bad_creds[0]));
}

ParameterizedTest(struct bad_cred *c, s3_url_and_credentials,
		  bad_credentials_file)
{
	struct objstore_settings set = { .endpoint = CLOSED_ENDPOINT };
	struct objstore *store;
	const char *error;
	char *path = write_file(c->name, c->content, c->mode);

	set.credentials_file = path;
	cr_assert_eq(objstore_init("s3://bucket", &set, &store, &error), -1);
	cr_assert(strstr(error, c->expect) != NULL, "%s: '%s' lacks '%s'",
		  c->name, error, c->expect);
	cr_assert(strstr(error, path) != NULL, "error does not name the "
		  "file: %s", error);
	cr_assert_null(strstr(error, "TOPSECRET"), "secret leaked: %s", error);
	cr_assert_null(strchr(error, '\n'));
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_AUTH);
	free(path);
}

Test(s3_url_and_credentials, missing_or_not_regular_file)
{
	struct s3_credentials cred;
	const char *error;
	char *path;

	cr_assert_gt(asprintf(&path, "%s/nonexistent", tmpdir), 0);
	cr_assert_eq(s3_credentials_load(path, &cred, &error), -1);
	cr_assert(strstr(error, path) != NULL, "%s", error);
	cr_assert(strstr(error, "No such file") != NULL, "%s", error);
	free(path);

	cr_assert_eq(s3_credentials_load(tmpdir, &cred, &error), -1);
	cr_assert(strstr(error, "not a regular file") != NULL, "%s", error);
}

/* fuzz/ (fuzz_options) found: a URL refused after the bucket name, prefix
   or endpoint was parsed left them allocated in url_r, leaked by a caller
   that frees only a parsed URL.  Each case fails at another step; nothing
   may be left. */
struct refused_url {
	char location[32];
	char endpoint[40];
	enum objstore_addressing addressing;
	char error[48];
};

ParameterizedTestParameters(s3_url_and_credentials, refused_url_leaves_nothing)
{
	static struct refused_url cases[] = {
		/* the fuzzer's input: a bucket name too short */
		{ "b/a/b/c", "", OBJSTORE_ADDRESSING_AUTO, "3..63" },
		{ "bucket/a//b", "", OBJSTORE_ADDRESSING_AUTO, "prefix" },
		{ "bucket/p", "ftp://host", OBJSTORE_ADDRESSING_AUTO,
		  "invalid S3 endpoint" },
		{ "my_bucket", "http://127.0.0.1:9000",
		  OBJSTORE_ADDRESSING_VIRTUAL, "virtual-host" },
		{ "bucket", "http://[::1]:9000", OBJSTORE_ADDRESSING_VIRTUAL,
		  "virtual-host" },
	};

	return cr_make_param_array(struct refused_url, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct refused_url *c, s3_url_and_credentials,
		  refused_url_leaves_nothing)
{
	struct s3_url url;
	const char *error;

	cr_assert_eq(s3_url_parse(c->location,
				  c->endpoint[0] == '\0' ? NULL : c->endpoint,
				  "us-east-1", c->addressing, &url, &error),
		     -1, "%s", c->location);
	cr_assert(strstr(error, c->error) != NULL, "%s: %s", c->location,
		  error);
	cr_assert_null(url.bucket, "%s", c->location);
	cr_assert_null(url.prefix, "%s", c->location);
	cr_assert_null(url.host, "%s", c->location);
	cr_assert_null(url.host_header, "%s", c->location);
	cr_assert_null(url.base_url, "%s", c->location);
	cr_assert_null(url.bucket_path, "%s", c->location);
}
