/* objstore-s3.c: the S3 backend ("s3://bucket[/prefix]"): object operations
 * on top of s3-request.c (signing, retries), s3-xml.c (replies) and
 * s3-http.c (libcurl).
 *
 * Keys are stored as "<prefix>/<key>".  Listings strip the prefix and check
 * every key the server returns with objstore_key_check(): a key that is not
 * valid (or not below the prefix) fails the listing with OBJSTORE_ERR_INVALID
 * naming the key, rather than being skipped silently; the one exception are
 * empty objects whose key ends in '/' ("directory markers" that S3 consoles
 * create), which are skipped.  Common prefixes are returned with their
 * trailing '/' ("a/b/").
 *
 * User metadata travels as x-amz-meta-<name> headers.  HTTP header values
 * cannot carry every byte, so values are percent-encoded on the way out:
 * '%', bytes outside 0x20..0x7e, and a space that is leading, trailing or
 * follows another space (HTTP and SigV4 would trim or collapse it) become
 * %XX; reading decodes %XX (a '%' not followed by two hex digits is kept).
 * So any byte string without NUL round-trips.  Swift caps a stored value at
 * 256 bytes, so a value longer than that once encoded is refused by PUT with
 * OBJSTORE_ERR_INVALID (ASCII text is not inflated; each byte outside
 * 0x20..0x7e counts three). */
#include "s3-private.h"
#include "s3-request.h"
#include "s3-xml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define DEFAULT_REGION "us-east-1"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_TIMEOUT_MS 60000
#define DEFAULT_RETRY_TIMEOUT_MS 60000
#define DEFAULT_MAX_CONNECTIONS 16
#define META_PREFIX "x-amz-meta-"
/* Swift refuses (with a 500) metadata values longer than this; AWS allows
   2 KiB in all.  Checked after encoding so that it fails fast and clearly. */
#define META_ENCODED_VALUE_MAX OBJSTORE_META_ENCODED_VALUE_MAX

static struct objstore *s3_alloc(void)
{
	struct s3_store *s3 = calloc(1, sizeof(*s3));

	return s3 == NULL ? NULL : &s3->store;
}

static void s3_deinit(struct objstore *store)
{
	struct s3_store *s3 = (struct s3_store *)store;

	s3_http_deinit(&s3->http);
	s3_credentials_free(&s3->cred);
	s3_url_free(&s3->url);
	free(s3->region);
	free(s3->ca_file);
	free(s3);
}

static const char hexdigits[] = "0123456789ABCDEF";

static char *meta_encode(const char *value)
{
	size_t len = strlen(value);
	char *out = malloc(len * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (objstore_meta_must_encode(value, i, len)) {
			*p++ = '%';
			*p++ = hexdigits[c >> 4];
			*p++ = hexdigits[c & 15];
		} else {
			*p++ = (char)c;
		}
	}
	*p = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* NULL if out of memory or the value decodes to a NUL byte */
static char *meta_decode(const char *value)
{
	char *out = malloc(strlen(value) + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (; *value != '\0'; value++) {
		int hi, lo;

		if (*value == '%' && (hi = hexval(value[1])) >= 0 &&
		    (lo = hexval(value[2])) >= 0) {
			if (hi == 0 && lo == 0) {
				free(out);
				return NULL;
			}
			*p++ = (char)(hi * 16 + lo);
			value += 2;
		} else {
			*p++ = *value;
		}
	}
	*p = '\0';
	return out;
}

static int hash_fd(const char *what, int fd, uint64_t size,
		   char out[S3_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[65536], md[32];
	unsigned int md_len = sizeof(md);
	uint64_t done = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: SHA-256 init failed",
					  what);
	}
	while (done < size) {
		size_t want = size - done > sizeof(buf) ? sizeof(buf) :
			(size_t)(size - done);
		ssize_t ret = pread(fd, buf, want, (off_t)done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0) {
			EVP_MD_CTX_free(ctx);
			if (ret == 0) {
				return objstore_set_error(OBJSTORE_ERR_INVALID,
					"%s failed: file is shorter than "
					"%llu bytes", what,
					(unsigned long long)size);
			}
			return objstore_set_error(OBJSTORE_ERR_PERMANENT,
						  "%s failed: pread() failed: "
						  "%s", what, strerror(errno));
		}
		EVP_DigestUpdate(ctx, buf, (size_t)ret);
		done += (uint64_t)ret;
	}
	EVP_DigestFinal_ex(ctx, md, &md_len);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < 32; i++) {
		out[i * 2] = hex[md[i] >> 4];
		out[i * 2 + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

static int s3_put(struct objstore *store, const char *key,
		  const struct objstore_source *src,
		  const struct objstore_meta *meta, unsigned int meta_count)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[OBJSTORE_KEY_MAX + 16], hash[S3_SHA256_HEX_LEN + 1];
	char *names[OBJSTORE_META_MAX_PAIRS] = { NULL };
	char *values[OBJSTORE_META_MAX_PAIRS] = { NULL };
	struct s3_request req;
	int ret = -1;

	snprintf(what, sizeof(what), "PUT(%s)", key);
	if (src->data != NULL)
		s3_sha256_hex(src->data, src->size, hash);
	else if (hash_fd(what, src->fd, src->size, hash) < 0)
		return -1;

	s3_request_init(&req, OBJSTORE_OP_PUT, "PUT", what, key);
	req.body = src;
	req.payload_hash = hash;
	for (unsigned int i = 0; i < meta_count; i++) {
		if (asprintf(&names[i], META_PREFIX "%s", meta[i].name) < 0)
			names[i] = NULL;
		values[i] = meta_encode(meta[i].value);
		if (names[i] == NULL || values[i] == NULL) {
			objstore_set_error(OBJSTORE_ERR_PERMANENT,
					   "%s failed: out of memory", what);
			goto out;
		}
		if (strlen(values[i]) > META_ENCODED_VALUE_MAX) {
			objstore_set_error(OBJSTORE_ERR_INVALID, "%s failed: "
				"metadata '%s' is %zu bytes once encoded, more "
				"than the %d S3 servers accept", what,
				meta[i].name, strlen(values[i]),
				META_ENCODED_VALUE_MAX);
			goto out;
		}
		req.headers[req.header_count++] =
			(struct s3_header){ names[i], values[i] };
	}
	ret = s3_request_run(s3, &req);
	s3_request_free(&req);
out:
	for (unsigned int i = 0; i < meta_count; i++) {
		free(names[i]);
		free(values[i]);
	}
	return ret;
}

static int s3_get(struct objstore *store, const char *key, uint64_t offset,
		  uint64_t length, struct objstore_sink *sink)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[OBJSTORE_KEY_MAX + 16], range[64];
	struct s3_request req;
	int ret;

	snprintf(what, sizeof(what), "GET(%s)", key);
	s3_request_init(&req, OBJSTORE_OP_GET, "GET", what, key);
	req.sink = sink;
	req.range_not_satisfiable_ok = true;
	req.range_skip = offset;
	if (length != OBJSTORE_TO_END && length - 1 > UINT64_MAX - offset)
		length = OBJSTORE_TO_END;
	req.range_length = length == OBJSTORE_TO_END ? UINT64_MAX : length;
	if (length != OBJSTORE_TO_END) {
		snprintf(range, sizeof(range), "bytes=%llu-%llu",
			 (unsigned long long)offset,
			 (unsigned long long)(offset + length - 1));
		req.headers[req.header_count++] =
			(struct s3_header){ "Range", range };
	} else if (offset > 0) {
		snprintf(range, sizeof(range), "bytes=%llu-",
			 (unsigned long long)offset);
		req.headers[req.header_count++] =
			(struct s3_header){ "Range", range };
	}
	ret = s3_request_run(s3, &req);
	if (ret == 0 && req.status == 416)
		objstore_sink_reset(sink);
	s3_request_free(&req);
	return ret;
}

static int parse_head_meta(const char *what, const struct s3_http_response *resp,
			   struct objstore_stat *stat_r)
{
	struct objstore_meta meta[OBJSTORE_META_MAX_PAIRS];
	unsigned int count = 0;
	const char *reason;
	int ret = 0;

	for (unsigned int i = 0; i < resp->header_count; i++) {
		const char *name = resp->headers[i].name;

		if (strncmp(name, META_PREFIX, strlen(META_PREFIX)) != 0)
			continue;
		if (count == OBJSTORE_META_MAX_PAIRS) {
			ret = objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s failed: too many metadata headers", what);
			goto out;
		}
		meta[count].name = name + strlen(META_PREFIX);
		meta[count].value = meta_decode(resp->headers[i].value);
		if (meta[count].value == NULL) {
			ret = objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s failed: metadata '%.64s' is not a valid "
				"encoded value", what, meta[count].name);
			goto out;
		}
		count++;
	}
	if (objstore_meta_check(meta, count, &reason) < 0) {
		ret = objstore_set_error(OBJSTORE_ERR_INVALID,
					 "%s failed: invalid metadata from "
					 "the store: %s", what, reason);
		goto out;
	}
	if (objstore_stat_set_meta(stat_r, meta, count) < 0)
		ret = -1;
out:
	for (unsigned int i = 0; i < count; i++)
		free((char *)meta[i].value);
	return ret;
}

int s3_head_parse(const char *what, const struct s3_http_response *resp,
		  struct objstore_stat *stat_r)
{
	const char *len, *mod;
	char *end;

	len = s3_http_response_header(resp, "content-length");
	mod = s3_http_response_header(resp, "last-modified");
	errno = 0;
	if (len == NULL || len[0] < '0' || len[0] > '9' ||
	    (stat_r->size = strtoull(len, &end, 10), *end != '\0') ||
	    errno != 0) {
		return objstore_set_error(OBJSTORE_ERR_INVALID, "%s failed: "
					  "missing or bad Content-Length",
					  what);
	}
	if (mod == NULL || (stat_r->mtime = curl_getdate(mod, NULL)) ==
	    (time_t)-1) {
		return objstore_set_error(OBJSTORE_ERR_INVALID, "%s failed: "
					  "missing or bad Last-Modified", what);
	}
	return parse_head_meta(what, resp, stat_r);
}

static int s3_head(struct objstore *store, const char *key,
		   struct objstore_stat *stat_r)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[OBJSTORE_KEY_MAX + 16];
	struct s3_request req;
	int ret;

	snprintf(what, sizeof(what), "HEAD(%s)", key);
	s3_request_init(&req, OBJSTORE_OP_HEAD, "HEAD", what, key);
	if (s3_request_run(s3, &req) < 0)
		return -1;
	ret = s3_head_parse(what, &req.resp, stat_r);
	s3_request_free(&req);
	return ret;
}

/* the key relative to the store prefix, or NULL if outside it */
static const char *strip_prefix(const struct s3_store *s3, const char *key)
{
	size_t plen = strlen(s3->url.prefix);

	if (plen == 0)
		return key;
	if (strncmp(key, s3->url.prefix, plen) != 0 || key[plen] != '/')
		return NULL;
	return key + plen + 1;
}

static int list_entry_check(const char *what, const struct s3_store *s3,
			    const char *prefix,
			    const struct s3_xml_list_entry *e,
			    const char **rel_r)
{
	const char *rel = strip_prefix(s3, e->key), *reason = NULL;
	char buf[OBJSTORE_KEY_MAX + 2];
	size_t len;

	if (rel != NULL && !e->is_prefix && e->size == 0 &&
	    rel[0] != '\0' && rel[strlen(rel) - 1] == '/')
		return 1;	/* a "directory marker" made by other tools */
	if (rel == NULL || strncmp(rel, prefix, strlen(prefix)) != 0)
		reason = "not below the requested prefix";
	else if ((len = strlen(rel)) > OBJSTORE_KEY_MAX)
		reason = "key too long";
	else if (e->is_prefix) {
		if (len < 2 || rel[len - 1] != '/')
			reason = "common prefix not ending in '/'";
		else {
			memcpy(buf, rel, len - 1);
			buf[len - 1] = '\0';
			(void)objstore_key_check(buf, &reason);
		}
	} else {
		(void)objstore_key_check(rel, &reason);
	}
	if (reason != NULL) {
		char safe[201];
		size_t i;

		for (i = 0; e->key[i] != '\0' && i < sizeof(safe) - 1; i++) {
			unsigned char c = (unsigned char)e->key[i];

			safe[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
		safe[i] = '\0';
		return objstore_set_error(OBJSTORE_ERR_INVALID, "%s failed: "
					  "invalid key '%s' in the listing: %s",
					  what, safe, reason);
	}
	*rel_r = rel;
	return 0;
}

static int s3_list(struct objstore *store, const char *prefix,
		   const char *delimiter, const char *start_after,
		   unsigned int first_page_keys,
		   objstore_list_cb *callback, void *context)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[OBJSTORE_KEY_MAX + 16], *full_prefix, *token = NULL;
	char first_keys[12];	/* a %u */
	const char *page_keys = s3->list_page_keys;
	char *full_start = NULL;
	const char *reason;
	int ret = 0;

	snprintf(what, sizeof(what), "LIST(%s)", prefix);
	full_prefix = s3_request_path(s3, prefix, false);
	if (full_prefix == NULL)
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: out of memory", what);
	if (start_after != NULL &&
	    (full_start = s3_request_path(s3, start_after, false)) == NULL) {
		free(full_prefix);
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: out of memory", what);
	}
	/* a small first page for a caller likely to stop early: S3 (and
	   Swift) take longer the more keys a page has */
	if (first_page_keys != 0 &&
	    first_page_keys < strtoul(s3->list_page_keys, NULL, 10)) {
		snprintf(first_keys, sizeof(first_keys), "%u",
			 first_page_keys);
		page_keys = first_keys;
	}
	/* s3_request_path() joins with '/': for an empty prefix keep the
	   store prefix's '/' (or nothing) */
	do {
		struct s3_request req;
		struct s3_xml_list list;
		bool stop = false;

		s3_request_init(&req, OBJSTORE_OP_LIST, "GET", what, NULL);
		req.query[req.query_count++] =
			(struct s3_query_param){ "list-type", "2" };
		req.query[req.query_count++] =
			(struct s3_query_param){ "max-keys", page_keys };
		if (full_prefix[0] != '\0')
			req.query[req.query_count++] =
				(struct s3_query_param){ "prefix",
							 full_prefix };
		if (delimiter != NULL)
			req.query[req.query_count++] =
				(struct s3_query_param){ "delimiter",
							 delimiter };
		if (token != NULL)
			req.query[req.query_count++] =
				(struct s3_query_param){ "continuation-token",
							 token };
		else if (full_start != NULL)	/* the first page only */
			req.query[req.query_count++] =
				(struct s3_query_param){ "start-after",
							 full_start };
		if (s3_request_run(s3, &req) < 0) {
			ret = -1;
			break;
		}
		if (s3_xml_parse_list(req.resp.body, req.resp.body_size, &list,
				      &reason) < 0) {
			s3_request_free(&req);
			ret = objstore_set_error(OBJSTORE_ERR_INVALID,
						 "%s failed: bad reply: %s",
						 what, reason);
			break;
		}
		s3_request_free(&req);
		for (unsigned int i = 0; i < list.count && !stop; i++) {
			struct objstore_list_entry entry;
			const char *rel = NULL;

			int check = list_entry_check(what, s3, prefix,
						     &list.entries[i], &rel);

			if (check < 0) {
				ret = -1;
				break;
			}
			if (check > 0)
				continue;
			entry.key = rel;
			entry.size = list.entries[i].size;
			entry.mtime = list.entries[i].mtime;
			entry.is_prefix = list.entries[i].is_prefix;
			stop = callback(&entry, context) != 0;
		}
		if (ret == 0 && !stop && list.is_truncated && token != NULL &&
		    strcmp(token, list.next_token) == 0) {
			ret = objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s failed: bad reply: the same continuation "
				"token twice", what);
		}
		free(token);
		token = NULL;
		if (ret == 0 && !stop && list.is_truncated) {
			token = list.next_token;
			list.next_token = NULL;
		}
		s3_xml_list_free(&list);
	} while (ret == 0 && token != NULL);
	free(token);
	free(full_prefix);
	free(full_start);
	return ret;
}

int s3_delete(struct objstore *store, const char *key)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[OBJSTORE_KEY_MAX + 16];
	struct s3_request req;
	int ret;

	snprintf(what, sizeof(what), "DELETE(%s)", key);
	s3_request_init(&req, OBJSTORE_OP_DELETE, "DELETE", what, key);
	req.not_found_ok = true;
	ret = s3_request_run(s3, &req);
	s3_request_free(&req);
	return ret;
}

static int s3_copy(struct objstore *store, const char *src_key,
		   const char *dst_key)
{
	struct s3_store *s3 = (struct s3_store *)store;
	char what[2 * OBJSTORE_KEY_MAX + 16], *src_path, *enc, *source = NULL;
	struct s3_request req;
	int ret;

	snprintf(what, sizeof(what), "COPY(%s, %s)", src_key, dst_key);
	src_path = s3_request_path(s3, src_key, false);
	enc = src_path == NULL ? NULL : s3_uri_encode(src_path, true);
	if (enc == NULL || asprintf(&source, "/%s/%s", s3->url.bucket,
				    enc) < 0) {
		free(src_path);
		free(enc);
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: out of memory", what);
	}
	s3_request_init(&req, OBJSTORE_OP_COPY, "PUT", what, dst_key);
	req.check_copy_result = true;
	req.headers[req.header_count++] =
		(struct s3_header){ "x-amz-copy-source", source };
	req.headers[req.header_count++] =
		(struct s3_header){ "x-amz-metadata-directive", "COPY" };
	ret = s3_request_run(s3, &req);
	s3_request_free(&req);
	free(source);
	free(src_path);
	free(enc);
	return ret;
}

static int region_check(const char *region)
{
	size_t len = strlen(region);

	if (len == 0 || len > 32)
		return -1;
	for (; *region != '\0'; region++) {
		char c = *region;

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return -1;
	}
	return 0;
}

static const char *init_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *init_fail(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	objstore_set_errorv(OBJSTORE_ERR_INVALID, fmt, args);
	va_end(args);
	return objstore_error();
}

/* one signed ListObjectsV2 (max-keys=1) below the prefix: checks the
   endpoint, the credentials and the bucket */
static int s3_probe(struct s3_store *s3, const char *url)
{
	char what[600], *prefix;
	struct s3_xml_list list;
	struct s3_request req;
	const char *reason;
	int ret;

	snprintf(what, sizeof(what), "S3 store %.200s at %.200s: LIST", url,
		 s3->url.base_url);
	prefix = s3_request_path(s3, "", false);
	if (prefix == NULL)
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "out of memory");
	s3_request_init(&req, OBJSTORE_OP_LIST, "GET", what, NULL);
	req.init_probe = true;
	req.query[req.query_count++] =
		(struct s3_query_param){ "list-type", "2" };
	req.query[req.query_count++] =
		(struct s3_query_param){ "max-keys", "1" };
	if (prefix[0] != '\0')
		req.query[req.query_count++] =
			(struct s3_query_param){ "prefix", prefix };
	ret = s3_request_run(s3, &req);
	free(prefix);
	if (ret < 0) {
		if (req.status == 404 && objstore_errcode() ==
		    OBJSTORE_ERR_PERMANENT) {
			char *msg;
			enum objstore_error err;

			objstore_error_save(&err, &msg);
			objstore_set_error(err, "%s (does bucket '%s' exist?)",
					   msg != NULL ? msg : "",
					   s3->url.bucket);
			free(msg);
		}
		return -1;
	}
	if (s3_xml_parse_list(req.resp.body, req.resp.body_size, &list,
			      &reason) < 0) {
		objstore_set_error(OBJSTORE_ERR_INVALID, "%s failed: bad reply "
				   "(not an S3 endpoint?): %s", what, reason);
		s3_request_free(&req);
		return -1;
	}
	s3_xml_list_free(&list);
	s3_request_free(&req);
	return 0;
}

static int s3_init(struct objstore *store, const char *location,
		   const struct objstore_settings *set, const char **error_r)
{
	struct s3_store *s3 = (struct s3_store *)store;
	const char *region = set->region != NULL && set->region[0] != '\0' ?
		set->region : DEFAULT_REGION;
	const char *error;
	char url[300];

	snprintf(url, sizeof(url), "s3://%.250s", location);
	if (region_check(region) < 0) {
		*error_r = init_fail("invalid S3 region '%.64s'", region);
		return -1;
	}
	s3->region = strdup(region);
	if (s3->region == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (s3_url_parse(location, set->endpoint, region, set->addressing,
			 &s3->url, &error) < 0) {
		*error_r = init_fail("%s", error);
		return -1;
	}
	s3->connect_timeout_ms = set->connect_timeout_ms != 0 ?
		set->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	s3->request_timeout_ms = set->request_timeout_ms != 0 ?
		set->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
	s3->retry_timeout_ms = set->retry_timeout_ms != 0 ?
		set->retry_timeout_ms : DEFAULT_RETRY_TIMEOUT_MS;
	if (set->list_page_keys > 1000) {
		*error_r = init_fail("list_page_keys %u: more than 1000",
				     set->list_page_keys);
		return -1;
	}
	snprintf(s3->list_page_keys, sizeof(s3->list_page_keys), "%u",
		 set->list_page_keys != 0 ? set->list_page_keys : 1000);
	s3->tls_insecure = set->tls_insecure;
	if (set->ca_file != NULL && set->ca_file[0] != '\0') {
		/* a wrong path would fail every request: say it now */
		if (access(set->ca_file, R_OK) < 0) {
			*error_r = init_fail("ca_file %s: %s", set->ca_file,
					     strerror(errno));
			return -1;
		}
		s3->ca_file = strdup(set->ca_file);
		if (s3->ca_file == NULL) {
			*error_r = "out of memory";
			return -1;
		}
	}
	if (s3_credentials_load(set->credentials_file, &s3->cred,
				&error) < 0) {
		objstore_set_error(OBJSTORE_ERR_AUTH, "%s", error);
		*error_r = objstore_error();
		return -1;
	}
	if (s3_http_init(set->max_connections != 0 ? set->max_connections :
			 DEFAULT_MAX_CONNECTIONS, &s3->http, &error) < 0) {
		*error_r = init_fail("%s", error);
		return -1;
	}
	if (s3_probe(s3, url) < 0) {
		*error_r = objstore_error();
		return -1;
	}
	return 0;
}

const struct objstore_class objstore_class_s3 = {
	.name = "s3",
	.alloc = s3_alloc,
	.init = s3_init,
	.deinit = s3_deinit,
	.v = {
		.put = s3_put,
		.get = s3_get,
		.head = s3_head,
		.list = s3_list,
		.delete_key = s3_delete,
		.delete_many = s3_delete_many,
		.copy = s3_copy,
	},
};
