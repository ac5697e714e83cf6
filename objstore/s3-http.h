/* s3-http.h: a thread-safe libcurl client for the S3 backend: a bounded pool
 * of reusable easy handles (keeping their connections alive) sharing DNS and
 * TLS sessions, and one blocking request function. */
#ifndef OBOXFS_S3_HTTP_H
#define OBOXFS_S3_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "objstore-private.h"

struct s3_http;

struct s3_http_request {
	const char *method;	/* GET, HEAD, PUT, POST, DELETE */
	const char *url;
	/* all headers to send (Host, Authorization, x-amz-* ...) */
	struct curl_slist *headers;
	/* request body (PUT/POST): memory if src->data != NULL, else
	   pread() from src->fd; NULL = no body */
	const struct objstore_source *body;
	/* 2xx response bodies go here if set (else to the response buffer);
	   if the server ignores a Range and answers 200, skip the first
	   range_skip bytes and keep at most range_length */
	struct objstore_sink *sink;
	uint64_t range_skip, range_length;
	long connect_timeout_ms, timeout_ms;
	bool tls_insecure;
	const char *ca_file;	/* CURLOPT_CAINFO, or NULL */
};

struct s3_http_header {
	char *name;	/* lowercased */
	char *value;	/* trimmed */
};

struct s3_http_response {
	long status;			/* 0 if no HTTP reply */
	CURLcode curl_code;
	char curl_error[CURL_ERROR_SIZE];
	bool sink_failed;		/* objstore error already set */
	bool body_read_failed;		/* pread() of the body failed */
	int body_read_errno;
	char *body;			/* non-sink body, NUL-terminated */
	size_t body_size;
	struct s3_http_header *headers;
	unsigned int header_count;
	uint64_t bytes_in, bytes_out;	/* payload bytes moved */
};

int s3_http_init(unsigned int max_connections, struct s3_http **http_r,
		 const char **error_r);
void s3_http_deinit(struct s3_http **http);

/* Send one request and wait for the reply.  Returns 0 if an HTTP reply was
   received (any status), -1 on a transport failure (see curl_code). */
int s3_http_perform(struct s3_http *http, const struct s3_http_request *req,
		    struct s3_http_response *resp_r);
void s3_http_response_free(struct s3_http_response *resp);
/* a response header by lowercase name, or NULL */
const char *s3_http_response_header(const struct s3_http_response *resp,
				    const char *name);

#endif
