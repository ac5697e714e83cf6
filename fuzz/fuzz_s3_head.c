/* fuzz_s3_head: a HEAD reply of the S3 backend as the server sends it:
 * the input is split into header lines ('\n' ends one, kept as libcurl
 * hands them over), each parsed by s3_http_response_add_header() (status
 * lines, trimming, lowercasing), then s3_head_parse() (Content-Length,
 * Last-Modified, percent-decoded x-amz-meta-* values checked by
 * objstore_meta_check()), then, as a load putting mails back does,
 * putback_mail_from_stat() on the decoded metadata ("path", "name",
 * "mtime"). */
#include "s3-private.h"
#include "putback-private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_http_response resp;
	struct putback_mail mail;
	const char *p = (const char *)data, *end = p + size;

	memset(&resp, 0, sizeof(resp));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl == NULL ? (size_t)(end - p) :
			(size_t)(nl - p) + 1;
		/* a copy of exactly the line: reads past it are caught */
		char *line = malloc(len);

		memcpy(line, p, len);
		if (s3_http_response_add_header(&resp, line, len) < 0)
			abort();
		free(line);
		p += len;
	}
	memset(&mail, 0, sizeof(mail));
	if (s3_head_parse("HEAD(fuzz)", &resp, &mail.st) == 0) {
		(void)putback_mail_from_stat(&mail);
		putback_mail_free(&mail);
	}
	s3_http_response_free(&resp);
	return 0;
}
