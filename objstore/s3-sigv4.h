/* s3-sigv4.h: AWS Signature Version 4 for S3 requests (pure functions, no
 * network), plus the URI encoding and hashing helpers the S3 backend needs. */
#ifndef OBOXFS_S3_SIGV4_H
#define OBOXFS_S3_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define S3_SHA256_HEX_LEN 64
#define S3_AMZ_DATE_LEN 16	/* "20130524T000000Z" */
/* SHA-256 of the empty string */
#define S3_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_header {
	const char *name;	/* any case; lowercased for signing */
	const char *value;	/* trimmed, inner runs of spaces collapsed */
};

struct s3_query_param {
	const char *name;	/* raw (not yet encoded) */
	const char *value;	/* raw; "" for a value-less parameter */
};

struct s3_sigv4_request {
	const char *method;
	/* the already encoded path, e.g. "/test%24file.text" (see
	   s3_uri_encode(); S3 paths are not normalised) */
	const char *canonical_uri;
	/* canonical query string (s3_canonical_query()), "" if none */
	const char *canonical_query;
	/* every header to sign: must include host, x-amz-date and
	   x-amz-content-sha256 */
	const struct s3_header *headers;
	unsigned int header_count;
	const char *payload_hash;	/* hex SHA-256 of the body */
	const char *amz_date;		/* "YYYYMMDDTHHMMSSZ" */
	const char *region;
	const char *service;		/* "s3" */
	const char *access_key;
	const char *secret_key;
};

/* Percent-encode every byte except A-Za-z0-9-._~ (and '/' if keep_slash)
   with uppercase hex.  Returns a malloc()ed string or NULL (ENOMEM). */
char *s3_uri_encode(const char *str, bool keep_slash);

/* Build the canonical query string: names and values encoded (slash too),
   sorted by name then value, joined with '&'; malloc()ed or NULL. */
char *s3_canonical_query(const struct s3_query_param *params,
			 unsigned int count);

/* hex SHA-256 of data into out[S3_SHA256_HEX_LEN + 1] */
void s3_sha256_hex(const void *data, size_t size,
		   char out[S3_SHA256_HEX_LEN + 1]);

/* time -> "YYYYMMDDTHHMMSSZ" (UTC) */
void s3_amz_date(time_t t, char out[S3_AMZ_DATE_LEN + 1]);

/* Compute the Authorization header value ("AWS4-HMAC-SHA256
   Credential=...,SignedHeaders=...,Signature=...").  If canonical_request_r
   is not NULL it gets the canonical request (for tests and debugging).
   Returns 0, or -1 on a malformed request (errno = EINVAL) or ENOMEM.
   Both outputs are malloc()ed. */
int s3_sigv4_authorization(const struct s3_sigv4_request *req,
			   char **authorization_r,
			   char **canonical_request_r);

#endif
