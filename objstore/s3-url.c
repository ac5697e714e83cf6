/* s3-url.c: validate the bucket, prefix and endpoint of an s3:// store and
 * work out the host and base path every request uses. */
#include "s3-url.h"
#include "s3-sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char url_error[512];

static int url_fail(const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int url_fail(const char **error_r, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(url_error, sizeof(url_error), fmt, args);
	va_end(args);
	*error_r = url_error;
	return -1;
}

void s3_url_free(struct s3_url *url)
{
	free(url->bucket);
	free(url->prefix);
	free(url->host);
	free(url->host_header);
	free(url->base_url);
	free(url->bucket_path);
	memset(url, 0, sizeof(*url));
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* S3 bucket naming rules: 3..63 of [a-z0-9.-], starting and ending with a
   letter or digit (plus '_', which older buckets and Swift allow) */
static const char *bucket_check(const char *bucket)
{
	size_t len = strlen(bucket);

	if (len == 0)
		return "empty bucket name";
	if (len < 3 || len > 63)
		return "bucket name must be 3..63 characters";
	for (size_t i = 0; i < len; i++) {
		char c = bucket[i];

		if (!is_lower_alnum(c) && c != '.' && c != '-' && c != '_')
			return "bucket name may only contain a-z, 0-9, '.', "
				"'-' and '_'";
	}
	if (!is_lower_alnum(bucket[0]) || !is_lower_alnum(bucket[len - 1]))
		return "bucket name must start and end with a letter or digit";
	if (strstr(bucket, "..") != NULL)
		return "bucket name must not contain '..'";
	return NULL;
}

static bool host_char_ok(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '.' ||
		c == '-' || c == '_';
}

/* endpoint: http[s]://host[:port][/] with host a name, IPv4 or [IPv6] */
static int endpoint_parse(const char *endpoint, struct s3_url *url,
			  const char **error_r)
{
	const char *p, *host_start, *host_end;
	unsigned long port = 0;

	if (strncmp(endpoint, "https://", 8) == 0) {
		url->https = true;
		p = endpoint + 8;
	} else if (strncmp(endpoint, "http://", 7) == 0) {
		url->https = false;
		p = endpoint + 7;
	} else {
		return url_fail(error_r, "invalid S3 endpoint '%.200s': must "
				"start with http:// or https://", endpoint);
	}
	host_start = p;
	if (*p == '[') {
		while (*p != '\0' && *p != ']') {
			if (!(*p == '[' || *p == ':' || *p == '.' ||
			      (*p >= '0' && *p <= '9') ||
			      (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F')))
				break;
			p++;
		}
		if (*p != ']')
			goto bad_host;
		p++;
	} else {
		while (host_char_ok(*p))
			p++;
	}
	host_end = p;
	if (host_end == host_start)
		goto bad_host;
	if (*p == ':') {
		char *end;

		p++;
		if (*p < '0' || *p > '9')
			goto bad_port;
		port = strtoul(p, &end, 10);
		if (port == 0 || port > 65535 || (*end != '\0' && *end != '/'))
			goto bad_port;
		p = end;
	}
	if (*p == '/')
		p++;
	if (*p != '\0') {
		return url_fail(error_r, "invalid S3 endpoint '%.200s': "
				"unexpected '%.20s' after the host (no path, "
				"query or user allowed)", endpoint, p);
	}
	url->host = strndup(host_start, (size_t)(host_end - host_start));
	url->port = (unsigned int)port;
	return 0;
bad_host:
	return url_fail(error_r, "invalid S3 endpoint '%.200s': bad host name",
			endpoint);
bad_port:
	return url_fail(error_r, "invalid S3 endpoint '%.200s': bad port",
			endpoint);
}

static int prefix_parse(const char *prefix, struct s3_url *url,
			const char **error_r)
{
	size_t len = strlen(prefix);
	char *copy;
	const char *reason;

	/* one trailing '/' is allowed: s3://bucket/prefix/ */
	if (len > 0 && prefix[len - 1] == '/')
		len--;
	copy = strndup(prefix, len);
	if (copy == NULL)
		return url_fail(error_r, "out of memory");
	url->prefix = copy;
	if (len == 0) {
		if (prefix[0] == '/')
			return url_fail(error_r, "invalid S3 URL: empty "
					"prefix segment");
		return 0;
	}
	if (len > OBJSTORE_KEY_MAX / 2) {
		return url_fail(error_r, "invalid S3 URL: prefix longer than "
				"%d bytes", OBJSTORE_KEY_MAX / 2);
	}
	if (objstore_key_check(copy, &reason) < 0) {
		return url_fail(error_r, "invalid S3 URL prefix '%.200s': %s",
				copy, reason);
	}
	return 0;
}

static int url_parse(const char *location, const char *endpoint,
		     const char *region, enum objstore_addressing addressing,
		     struct s3_url *url_r, const char **error_r)
{
	const char *slash = strchr(location, '/'), *reason;
	char *aws_endpoint = NULL, *enc_bucket;
	bool is_aws;
	int ret;

	memset(url_r, 0, sizeof(*url_r));
	url_r->bucket = slash == NULL ? strdup(location) :
		strndup(location, (size_t)(slash - location));
	if (url_r->bucket == NULL)
		return url_fail(error_r, "out of memory");
	if ((reason = bucket_check(url_r->bucket)) != NULL) {
		return url_fail(error_r, "invalid S3 URL 's3://%.200s': %s "
				"(expected s3://BUCKET[/PREFIX])", location,
				reason);
	}
	if (prefix_parse(slash == NULL ? "" : slash + 1, url_r, error_r) < 0)
		return -1;

	is_aws = endpoint == NULL || endpoint[0] == '\0';
	if (is_aws) {
		if (asprintf(&aws_endpoint, "https://s3.%s.amazonaws.com",
			     region) < 0)
			return url_fail(error_r, "out of memory");
		endpoint = aws_endpoint;
	}
	ret = endpoint_parse(endpoint, url_r, error_r);
	free(aws_endpoint);
	if (ret < 0)
		return -1;

	switch (addressing) {
	case OBJSTORE_ADDRESSING_AUTO:
		url_r->virtual_host = is_aws && strchr(url_r->bucket, '.') ==
			NULL && strchr(url_r->bucket, '_') == NULL;
		break;
	case OBJSTORE_ADDRESSING_PATH:
		url_r->virtual_host = false;
		break;
	case OBJSTORE_ADDRESSING_VIRTUAL:
		if (url_r->host[0] == '[' || strchr(url_r->bucket, '_') != NULL)
			return url_fail(error_r, "virtual-host addressing "
					"needs a host name endpoint and a "
					"bucket name valid in DNS");
		url_r->virtual_host = true;
		break;
	default:
		return url_fail(error_r, "invalid S3 addressing setting");
	}
	if (url_r->virtual_host) {
		char *host;

		if (asprintf(&host, "%s.%s", url_r->bucket, url_r->host) < 0)
			return url_fail(error_r, "out of memory");
		free(url_r->host);
		url_r->host = host;
		url_r->bucket_path = strdup("");
	} else {
		enc_bucket = s3_uri_encode(url_r->bucket, false);
		if (enc_bucket == NULL ||
		    asprintf(&url_r->bucket_path, "/%s", enc_bucket) < 0)
			url_r->bucket_path = NULL;
		free(enc_bucket);
	}
	if (url_r->port != 0)
		ret = asprintf(&url_r->host_header, "%s:%u", url_r->host,
			       url_r->port);
	else
		ret = asprintf(&url_r->host_header, "%s", url_r->host);
	if (ret < 0)
		url_r->host_header = NULL;
	else if (asprintf(&url_r->base_url, "%s://%s",
			  url_r->https ? "https" : "http",
			  url_r->host_header) < 0)
		url_r->base_url = NULL;
	if (url_r->bucket_path == NULL || url_r->host_header == NULL ||
	    url_r->base_url == NULL)
		return url_fail(error_r, "out of memory");
	return 0;
}

int s3_url_parse(const char *location, const char *endpoint,
		 const char *region, enum objstore_addressing addressing,
		 struct s3_url *url_r, const char **error_r)
{
	/* on failure, nothing is left for the caller to free */
	if (url_parse(location, endpoint, region, addressing, url_r,
		      error_r) < 0) {
		s3_url_free(url_r);
		return -1;
	}
	return 0;
}
