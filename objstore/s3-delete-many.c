/* s3-delete-many.c: DeleteObjects (POST ?delete, batches of up to 1000 keys,
 * Content-MD5 as S3 requires) with a per-key error check; keys the server
 * reports as failed with a retryable code, and whole batches on servers
 * without DeleteObjects, fall back to one DELETE per key. */
#include "s3-request.h"
#include "s3-xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DELETE_BATCH_MAX 1000

static int single_deletes(struct objstore *store, const char *const *keys,
			  unsigned int count)
{
	for (unsigned int i = 0; i < count; i++) {
		if (s3_delete(store, keys[i]) < 0)
			return -1;
	}
	return 0;
}

static char *build_body(struct s3_store *s3, const char *const *keys,
			unsigned int count)
{
	char *body = NULL;
	size_t size = 0;
	bool failed = false;
	FILE *f = open_memstream(&body, &size);

	if (f == NULL)
		return NULL;
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete>"
	      "<Quiet>true</Quiet>", f);
	for (unsigned int i = 0; i < count && !failed; i++) {
		char *full = s3_request_path(s3, keys[i], false);
		char *esc = full == NULL ? NULL : s3_xml_escape(full);

		if (esc == NULL)
			failed = true;
		else
			fprintf(f, "<Object><Key>%s</Key></Object>", esc);
		free(full);
		free(esc);
	}
	fputs("</Delete>", f);
	if (fclose(f) != 0 || failed) {
		free(body);
		return NULL;
	}
	return body;
}

static bool retryable_code(const char *code)
{
	return strcmp(code, "InternalError") == 0 ||
		strcmp(code, "SlowDown") == 0 ||
		strcmp(code, "ServiceUnavailable") == 0 ||
		strcmp(code, "OperationAborted") == 0;
}

/* the caller's key for a full key in a DeleteResult, or NULL */
static const char *find_key(struct s3_store *s3, const char *const *keys,
			    unsigned int count, const char *full_key)
{
	size_t plen = strlen(s3->url.prefix);
	const char *rel = full_key;

	if (plen > 0) {
		if (strncmp(full_key, s3->url.prefix, plen) != 0 ||
		    full_key[plen] != '/')
			return NULL;
		rel = full_key + plen + 1;
	}
	for (unsigned int i = 0; i < count; i++) {
		if (strcmp(keys[i], rel) == 0)
			return keys[i];
	}
	return NULL;
}

static int check_result(struct s3_store *s3, const char *what,
			const char *const *keys, unsigned int count,
			const struct s3_http_response *resp)
{
	struct s3_xml_delete_result result;
	const char *reason;
	int ret = 0;

	if (s3_xml_parse_delete_result(resp->body, resp->body_size, &result,
				       &reason) < 0) {
		return objstore_set_error(OBJSTORE_ERR_INVALID,
					  "%s failed: bad reply: %s", what,
					  reason);
	}
	for (unsigned int i = 0; i < result.error_count && ret == 0; i++) {
		const struct s3_xml_delete_error *e = &result.errors[i];
		const char *key = find_key(s3, keys, count, e->key);

		if (key == NULL) {
			ret = objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s failed: bad reply: error for a key that "
				"was not asked for", what);
		} else if (strcmp(e->code, "NoSuchKey") == 0) {
			continue;
		} else if (retryable_code(e->code)) {
			ret = s3_delete(&s3->store, key);
		} else {
			ret = objstore_set_error(
				strcmp(e->code, "AccessDenied") == 0 ?
				OBJSTORE_ERR_AUTH : OBJSTORE_ERR_PERMANENT,
				"DELETE(%s) failed: %.100s: %.300s", key,
				e->code, e->message);
		}
	}
	s3_xml_delete_result_free(&result);
	return ret;
}

static int delete_batch(struct s3_store *s3, const char *const *keys,
			unsigned int count)
{
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned int md5_len = 0;
	char md5_b64[32], hash[S3_SHA256_HEX_LEN + 1], what[64];
	struct objstore_source src = { .fd = -1 };
	struct s3_request req;
	char *body;
	int ret;

	snprintf(what, sizeof(what), "DELETE(%u keys)", count);
	body = build_body(s3, keys, count);
	if (body == NULL)
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: out of memory", what);
	src.data = body;
	src.size = strlen(body);
	EVP_Digest(body, src.size, md5, &md5_len, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5_len);
	s3_sha256_hex(body, src.size, hash);

	s3_request_init(&req, OBJSTORE_OP_DELETE, "POST", what, NULL);
	req.query[req.query_count++] = (struct s3_query_param){ "delete", "" };
	req.headers[req.header_count++] =
		(struct s3_header){ "Content-MD5", md5_b64 };
	req.body = &src;
	req.payload_hash = hash;
	ret = s3_request_run(s3, &req);
	if (ret < 0 && (req.status == 501 || req.status == 405)) {
		/* no DeleteObjects here: remember and delete one by one */
		atomic_store(&s3->no_multi_delete, true);
		ret = single_deletes(&s3->store, keys, count);
	} else if (ret == 0) {
		ret = check_result(s3, what, keys, count, &req.resp);
	}
	s3_request_free(&req);
	free(body);
	return ret;
}

int s3_delete_many(struct objstore *store, const char *const *keys,
		   unsigned int count)
{
	struct s3_store *s3 = (struct s3_store *)store;

	while (count > 0) {
		unsigned int n = count > DELETE_BATCH_MAX ? DELETE_BATCH_MAX :
			count;

		if (atomic_load(&s3->no_multi_delete)) {
			if (single_deletes(store, keys, n) < 0)
				return -1;
		} else if (delete_batch(s3, keys, n) < 0) {
			return -1;
		}
		keys += n;
		count -= n;
	}
	return 0;
}
