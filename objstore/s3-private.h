/* s3-private.h: internal parsing steps of the S3 backend, exposed (and
 * only used outside their files) so that fuzz/ can drive them alone:
 * every byte they read comes from the server or the user. */
#ifndef OBOXFS_S3_PRIVATE_H
#define OBOXFS_S3_PRIVATE_H

#include "s3-credentials.h"
#include "s3-http.h"

/* s3-http.c: add one raw response header line (as libcurl hands it over,
   CRLF included, maybe without a ':' or a status line) to resp.  Returns
   0, or -1 if out of memory. */
int s3_http_response_add_header(struct s3_http_response *resp,
				const char *data, size_t len);

/* objstore-s3.c: a HEAD reply's headers (Content-Length, Last-Modified,
   x-amz-meta-*) into stat_r.  Returns 0, or -1 with objstore_error() set
   (what names the request in the message). */
int s3_head_parse(const char *what, const struct s3_http_response *resp,
		  struct objstore_stat *stat_r);

/* s3-credentials.c: parse the size bytes of a credentials file's text
   (NUL-terminated at text[size]; modified in place); path names it in
   messages.  Returns -1 with *error_r as s3_credentials_load(). */
int s3_credentials_parse(const char *path, char *text, size_t size,
			 struct s3_credentials *cred, const char **error_r);

#endif
