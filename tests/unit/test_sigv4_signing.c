/* test_sigv4_signing.c: the S3 SigV4 signer reproduces the documented
 * examples of the AWS S3 API reference ("Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk": GET Object,
 * PUT Object, GET Bucket Lifecycle, Get Bucket (List Objects)) byte for
 * byte, and encodes paths and queries exactly as the spec says. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "s3-sigv4.h"

#define EX_ACCESS "AKIAIOSFODNN7EXAMPLE"
#define EX_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EX_DATE "20130524T000000Z"
#define EX_HOST "examplebucket.s3.amazonaws.com"
#define EX_CRED "AWS4-HMAC-SHA256 Credential=" EX_ACCESS \
	"/20130524/us-east-1/s3/aws4_request,"
#define WELCOME_SHA256 \
	"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

/* criterion may run each parameter in a fresh process: no pointers in
   parameters, only arrays */
struct pair {
	char name[32];
	char value[64];
};

struct example {
	char name[64];
	char method[8];
	char raw_path[64];		/* before encoding */
	struct pair query[2];
	unsigned int query_count;
	struct pair extra[3];		/* besides host/date/sha256 */
	unsigned int extra_count;
	char body[64];
	char expected_query[64];
	char expected[300];		/* the Authorization header */
};

static struct example examples[] = {
	{
		.name = "GET Object",
		.method = "GET",
		.raw_path = "/test.txt",
		.extra = { { "Range", "bytes=0-9" } },
		.extra_count = 1,
		.body = "",
		.expected_query = "",
		.expected = EX_CRED "SignedHeaders=host;range;"
			"x-amz-content-sha256;x-amz-date,Signature="
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	},
	{
		.name = "PUT Object",
		.method = "PUT",
		.raw_path = "/test$file.text",
		.extra = { { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
			   { "x-amz-storage-class", "REDUCED_REDUNDANCY" } },
		.extra_count = 2,
		.body = "Welcome to Amazon S3.",
		.expected_query = "",
		.expected = EX_CRED "SignedHeaders=date;host;"
			"x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
			"Signature="
			"98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
	},
	{
		.name = "GET Bucket Lifecycle",
		.method = "GET",
		.raw_path = "/",
		.query = { { "lifecycle", "" } },
		.query_count = 1,
		.body = "",
		.expected_query = "lifecycle=",
		.expected = EX_CRED "SignedHeaders=host;x-amz-content-sha256;"
			"x-amz-date,Signature="
			"fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
	},
	{
		.name = "Get Bucket (List Objects)",
		.method = "GET",
		.raw_path = "/",
		/* given unsorted: the canonical query must sort them */
		.query = { { "prefix", "J" }, { "max-keys", "2" } },
		.query_count = 2,
		.body = "",
		.expected_query = "max-keys=2&prefix=J",
		.expected = EX_CRED "SignedHeaders=host;x-amz-content-sha256;"
			"x-amz-date,Signature="
			"34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
	},
};

TestSuite(sigv4_signing);

ParameterizedTestParameters(sigv4_signing, aws_documented_examples)
{
	return cr_make_param_array(struct example, examples,
				   sizeof(examples) / sizeof(examples[0]));
}

ParameterizedTest(struct example *ex, sigv4_signing, aws_documented_examples)
{
	char hash[S3_SHA256_HEX_LEN + 1], *uri, *query, *auth, *creq;
	struct s3_query_param params[2];
	struct s3_header headers[6];
	struct s3_sigv4_request req;
	unsigned int n = 0;

	s3_sha256_hex(ex->body, strlen(ex->body), hash);
	uri = s3_uri_encode(ex->raw_path, true);
	for (unsigned int i = 0; i < ex->query_count; i++)
		params[i] = (struct s3_query_param){ ex->query[i].name,
						     ex->query[i].value };
	query = s3_canonical_query(params, ex->query_count);
	cr_assert_not_null(uri);
	cr_assert_not_null(query);
	cr_assert_str_eq(query, ex->expected_query, "%s: query", ex->name);

	headers[n++] = (struct s3_header){ "Host", EX_HOST };
	headers[n++] = (struct s3_header){ "x-amz-date", EX_DATE };
	headers[n++] = (struct s3_header){ "x-amz-content-sha256", hash };
	for (unsigned int i = 0; i < ex->extra_count; i++)
		headers[n++] = (struct s3_header){ ex->extra[i].name,
						   ex->extra[i].value };
	memset(&req, 0, sizeof(req));
	req.method = ex->method;
	req.canonical_uri = uri;
	req.canonical_query = query;
	req.headers = headers;
	req.header_count = n;
	req.payload_hash = hash;
	req.amz_date = EX_DATE;
	req.region = "us-east-1";
	req.service = "s3";
	req.access_key = EX_ACCESS;
	req.secret_key = EX_SECRET;
	cr_assert_eq(s3_sigv4_authorization(&req, &auth, &creq), 0);
	cr_assert_str_eq(auth, ex->expected, "%s: Authorization", ex->name);
	free(auth);
	free(creq);
	free(uri);
	free(query);
}

/* the canonical request of the GET Object example, as printed in the
   documentation */
Test(sigv4_signing, get_object_canonical_request)
{
	struct s3_header headers[] = {
		{ "x-amz-date", EX_DATE },
		{ "Range", "bytes=0-9" },
		{ "host", EX_HOST },
		{ "X-Amz-Content-Sha256", S3_EMPTY_SHA256 },
	};
	struct s3_sigv4_request req = {
		.method = "GET", .canonical_uri = "/test.txt",
		.canonical_query = "", .headers = headers, .header_count = 4,
		.payload_hash = S3_EMPTY_SHA256, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
		.access_key = EX_ACCESS, .secret_key = EX_SECRET,
	};
	char *auth, *creq;

	cr_assert_eq(s3_sigv4_authorization(&req, &auth, &creq), 0);
	cr_assert_str_eq(creq,
		"GET\n/test.txt\n\n"
		"host:examplebucket.s3.amazonaws.com\n"
		"range:bytes=0-9\n"
		"x-amz-content-sha256:" S3_EMPTY_SHA256 "\n"
		"x-amz-date:20130524T000000Z\n\n"
		"host;range;x-amz-content-sha256;x-amz-date\n"
		S3_EMPTY_SHA256);
	/* header order and name case do not change the signature */
	cr_assert(strstr(auth, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba"
			 "48dd91039c6036bdb41") != NULL);
	free(auth);
	free(creq);
}

Test(sigv4_signing, payload_hash_of_the_put_example)
{
	char hash[S3_SHA256_HEX_LEN + 1];

	s3_sha256_hex("Welcome to Amazon S3.", 21, hash);
	cr_assert_str_eq(hash, WELCOME_SHA256);
	s3_sha256_hex("", 0, hash);
	cr_assert_str_eq(hash, S3_EMPTY_SHA256);
}

struct encode_case {
	char in[32];
	bool keep_slash;
	char out[64];
};

static struct encode_case encode_cases[] = {
	{ "a/b c", true, "a/b%20c" },
	{ "a/b c", false, "a%2Fb%20c" },
	{ "user@example.com/x", true, "user%40example.com/x" },
	{ "A-Z_a.z~09", true, "A-Z_a.z~09" },
	{ "test$file.text", true, "test%24file.text" },
	{ "+=&?#%", true, "%2B%3D%26%3F%23%25" },
	{ "\xe2\x82\xac\xc3\xbc", true, "%E2%82%AC%C3%BC" },
	{ "!*'()", true, "%21%2A%27%28%29" },
	{ "a//./../b", true, "a//./../b" },	/* never normalised */
};

ParameterizedTestParameters(sigv4_signing, uri_encoding)
{
	return cr_make_param_array(struct encode_case, encode_cases,
				   sizeof(encode_cases) /
				   sizeof(encode_cases[0]));
}

ParameterizedTest(struct encode_case *c, sigv4_signing, uri_encoding)
{
	char *out = s3_uri_encode(c->in, c->keep_slash);

	cr_assert_str_eq(out, c->out, "encode(%s)", c->in);
	free(out);
}

Test(sigv4_signing, canonical_query_sorts_and_encodes)
{
	struct s3_query_param params[] = {
		{ "prefix", "a b/c@d" },
		{ "list-type", "2" },
		{ "continuation-token", "1/x+y=" },
		{ "delimiter", "/" },
		{ "delete", "" },
	};
	char *q = s3_canonical_query(params, 5);

	cr_assert_str_eq(q, "continuation-token=1%2Fx%2By%3D&delete=&"
			 "delimiter=%2F&list-type=2&prefix=a%20b%2Fc%40d");
	free(q);
	q = s3_canonical_query(NULL, 0);
	cr_assert_str_eq(q, "");
	free(q);
}

Test(sigv4_signing, header_values_trimmed_and_collapsed)
{
	struct s3_header h1[] = {
		{ "Host", "h" }, { "x-amz-date", EX_DATE },
		{ "x-amz-meta-a", "  one   two  " },
	};
	struct s3_header h2[] = {
		{ "Host", "h" }, { "x-amz-date", EX_DATE },
		{ "X-Amz-Meta-A", "one two" },
	};
	struct s3_sigv4_request req = {
		.method = "PUT", .canonical_uri = "/k", .canonical_query = "",
		.headers = h1, .header_count = 3,
		.payload_hash = S3_EMPTY_SHA256, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
		.access_key = EX_ACCESS, .secret_key = EX_SECRET,
	};
	char *a1, *a2, *creq;

	cr_assert_eq(s3_sigv4_authorization(&req, &a1, &creq), 0);
	cr_assert(strstr(creq, "\nx-amz-meta-a:one two\n") != NULL, "%s", creq);
	free(creq);
	req.headers = h2;
	cr_assert_eq(s3_sigv4_authorization(&req, &a2, NULL), 0);
	cr_assert_str_eq(a1, a2);
	free(a1);
	free(a2);
}

Test(sigv4_signing, duplicate_header_and_bad_date_refused)
{
	struct s3_header h[] = { { "Host", "h" }, { "host", "h" } };
	struct s3_sigv4_request req = {
		.method = "GET", .canonical_uri = "/", .canonical_query = "",
		.headers = h, .header_count = 2,
		.payload_hash = S3_EMPTY_SHA256, .amz_date = EX_DATE,
		.region = "us-east-1", .service = "s3",
		.access_key = EX_ACCESS, .secret_key = EX_SECRET,
	};
	char *auth;

	cr_assert_eq(s3_sigv4_authorization(&req, &auth, NULL), -1);
	cr_assert_null(auth);
	req.header_count = 1;
	req.amz_date = "2013-05-24";
	cr_assert_eq(s3_sigv4_authorization(&req, &auth, NULL), -1);
}

Test(sigv4_signing, amz_date_format)
{
	char out[S3_AMZ_DATE_LEN + 1];

	s3_amz_date(1369353600, out);
	cr_assert_str_eq(out, EX_DATE);
}
