/* s3-sigv4.c: AWS Signature Version 4 (header-based, signed payload) with
 * OpenSSL, written as pure functions so that the documented AWS examples can
 * be checked without a network (tests/unit/test_sigv4_signing.c). */
#include "s3-sigv4.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hexdigits_upper[] = "0123456789ABCDEF";
static const char hexdigits_lower[] = "0123456789abcdef";

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		c == '~';
}

char *s3_uri_encode(const char *str, bool keep_slash)
{
	size_t len = strlen(str);
	char *out = malloc(len * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];

		if (is_unreserved(c) || (keep_slash && c == '/')) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hexdigits_upper[c >> 4];
			*p++ = hexdigits_upper[c & 15];
		}
	}
	*p = '\0';
	return out;
}

struct encoded_param {
	char *name, *value;
};

static int encoded_param_cmp(const void *a, const void *b)
{
	const struct encoded_param *pa = a, *pb = b;
	int ret = strcmp(pa->name, pb->name);

	return ret != 0 ? ret : strcmp(pa->value, pb->value);
}

char *s3_canonical_query(const struct s3_query_param *params,
			 unsigned int count)
{
	struct encoded_param *enc;
	char *buf = NULL;
	size_t size = 0;
	FILE *f;
	bool failed = false;

	if (count == 0)
		return strdup("");
	enc = calloc(count, sizeof(*enc));
	if (enc == NULL)
		return NULL;
	for (unsigned int i = 0; i < count; i++) {
		enc[i].name = s3_uri_encode(params[i].name, false);
		enc[i].value = s3_uri_encode(params[i].value != NULL ?
					     params[i].value : "", false);
		if (enc[i].name == NULL || enc[i].value == NULL)
			failed = true;
	}
	if (!failed) {
		qsort(enc, count, sizeof(*enc), encoded_param_cmp);
		f = open_memstream(&buf, &size);
		if (f == NULL) {
			failed = true;
		} else {
			for (unsigned int i = 0; i < count; i++) {
				fprintf(f, "%s%s=%s", i > 0 ? "&" : "",
					enc[i].name, enc[i].value);
			}
			if (fclose(f) != 0)
				failed = true;
		}
	}
	for (unsigned int i = 0; i < count; i++) {
		free(enc[i].name);
		free(enc[i].value);
	}
	free(enc);
	if (failed) {
		free(buf);
		errno = ENOMEM;
		return NULL;
	}
	return buf;
}

static void hex_lower(const unsigned char *data, size_t size, char *out)
{
	for (size_t i = 0; i < size; i++) {
		out[i * 2] = hexdigits_lower[data[i] >> 4];
		out[i * 2 + 1] = hexdigits_lower[data[i] & 15];
	}
	out[size * 2] = '\0';
}

void s3_sha256_hex(const void *data, size_t size,
		   char out[S3_SHA256_HEX_LEN + 1])
{
	unsigned char md[32];
	unsigned int md_len = sizeof(md);

	EVP_Digest(data, size, md, &md_len, EVP_sha256(), NULL);
	hex_lower(md, 32, out);
}

void s3_amz_date(time_t t, char out[S3_AMZ_DATE_LEN + 1])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, S3_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

static void hmac_sha256(const void *key, size_t key_len, const char *msg,
			unsigned char out[32])
{
	unsigned int out_len = 32;

	HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
	     strlen(msg), out, &out_len);
}

struct canon_header {
	char *name;
	char *value;
};

static int canon_header_cmp(const void *a, const void *b)
{
	const struct canon_header *ha = a, *hb = b;

	return strcmp(ha->name, hb->name);
}

/* lowercase name; value trimmed with inner space runs collapsed */
static int canon_header_init(struct canon_header *h,
			     const struct s3_header *src)
{
	size_t nlen = strlen(src->name), vlen = strlen(src->value);
	const char *v = src->value;
	char *p;

	h->name = malloc(nlen + 1);
	h->value = malloc(vlen + 1);
	if (h->name == NULL || h->value == NULL)
		return -1;
	for (size_t i = 0; i <= nlen; i++) {
		char c = src->name[i];

		h->name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	while (*v == ' ' || *v == '\t')
		v++;
	p = h->value;
	for (; *v != '\0'; v++) {
		if (*v == ' ' || *v == '\t') {
			if (p > h->value && p[-1] == ' ')
				continue;
			*p++ = ' ';
		} else {
			*p++ = *v;
		}
	}
	while (p > h->value && p[-1] == ' ')
		p--;
	*p = '\0';
	return 0;
}

int s3_sigv4_authorization(const struct s3_sigv4_request *req,
			   char **authorization_r,
			   char **canonical_request_r)
{
	struct canon_header *hdrs;
	char *creq = NULL, *signed_headers = NULL, *auth = NULL;
	size_t creq_size = 0, sh_size = 0, auth_size = 0;
	char creq_hash[S3_SHA256_HEX_LEN + 1], date[9], *sts = NULL;
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	char sig_hex[65], *secret_key = NULL;
	int ret = -1;
	FILE *f;

	*authorization_r = NULL;
	if (canonical_request_r != NULL)
		*canonical_request_r = NULL;
	if (strlen(req->amz_date) != S3_AMZ_DATE_LEN ||
	    req->header_count == 0) {
		errno = EINVAL;
		return -1;
	}
	hdrs = calloc(req->header_count, sizeof(*hdrs));
	if (hdrs == NULL)
		return -1;
	for (unsigned int i = 0; i < req->header_count; i++) {
		if (canon_header_init(&hdrs[i], &req->headers[i]) < 0)
			goto out;
	}
	qsort(hdrs, req->header_count, sizeof(*hdrs), canon_header_cmp);
	for (unsigned int i = 1; i < req->header_count; i++) {
		if (strcmp(hdrs[i - 1].name, hdrs[i].name) == 0) {
			/* duplicate names must be joined by the caller */
			errno = EINVAL;
			goto out;
		}
	}

	/* SignedHeaders */
	f = open_memstream(&signed_headers, &sh_size);
	if (f == NULL)
		goto out;
	for (unsigned int i = 0; i < req->header_count; i++)
		fprintf(f, "%s%s", i > 0 ? ";" : "", hdrs[i].name);
	if (fclose(f) != 0)
		goto out;

	/* CanonicalRequest */
	f = open_memstream(&creq, &creq_size);
	if (f == NULL)
		goto out;
	fprintf(f, "%s\n%s\n%s\n", req->method, req->canonical_uri,
		req->canonical_query);
	for (unsigned int i = 0; i < req->header_count; i++)
		fprintf(f, "%s:%s\n", hdrs[i].name, hdrs[i].value);
	fprintf(f, "\n%s\n%s", signed_headers, req->payload_hash);
	if (fclose(f) != 0)
		goto out;
	s3_sha256_hex(creq, strlen(creq), creq_hash);

	/* StringToSign */
	memcpy(date, req->amz_date, 8);
	date[8] = '\0';
	if (asprintf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
		     req->amz_date, date, req->region, req->service,
		     creq_hash) < 0) {
		sts = NULL;
		goto out;
	}

	/* signing key: HMAC chain over date, region, service */
	if (asprintf(&secret_key, "AWS4%s", req->secret_key) < 0) {
		secret_key = NULL;
		goto out;
	}
	hmac_sha256(secret_key, strlen(secret_key), date, k1);
	hmac_sha256(k1, 32, req->region, k2);
	hmac_sha256(k2, 32, req->service, k3);
	hmac_sha256(k3, 32, "aws4_request", k4);
	hmac_sha256(k4, 32, sts, sig);
	hex_lower(sig, 32, sig_hex);

	f = open_memstream(&auth, &auth_size);
	if (f == NULL)
		goto out;
	fprintf(f, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request,"
		"SignedHeaders=%s,Signature=%s", req->access_key, date,
		req->region, req->service, signed_headers, sig_hex);
	if (fclose(f) != 0) {
		free(auth);
		auth = NULL;
		goto out;
	}
	*authorization_r = auth;
	if (canonical_request_r != NULL) {
		*canonical_request_r = creq;
		creq = NULL;
	}
	ret = 0;
out:
	if (secret_key != NULL) {
		OPENSSL_cleanse(secret_key, strlen(secret_key));
		free(secret_key);
	}
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k4, sizeof(k4));
	for (unsigned int i = 0; i < req->header_count; i++) {
		free(hdrs[i].name);
		free(hdrs[i].value);
	}
	free(hdrs);
	free(creq);
	free(signed_headers);
	free(sts);
	if (ret < 0 && errno == 0)
		errno = ENOMEM;
	return ret;
}
