/* fuzz_s3_xml: the expat parsers of S3 reply bodies (s3-xml.c), each run
 * on every input: ListObjectsV2 results (then every entry's mtime and key
 * as the backend checks them), <Error> bodies, DeleteObjects results and
 * CopyObject replies; and the input as an ISO 8601 time.  The body is
 * handed over with its exact size, as s3-request.c does. */
#include "s3-xml.h"
#include "objstore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data, *reason;
	struct s3_xml_list list;
	struct s3_xml_error err;
	struct s3_xml_delete_result del;
	char *str;
	time_t t;

	if (s3_xml_parse_list(body, size, &list, &reason) == 0) {
		for (unsigned int i = 0; i < list.count; i++) {
			const struct s3_xml_list_entry *e = &list.entries[i];

			if (e->key == NULL)
				abort();
			(void)objstore_key_check(e->key, &reason);
		}
		s3_xml_list_free(&list);
	}

	s3_xml_parse_error(body, size, &err);
	s3_xml_error_free(&err);

	if (s3_xml_parse_delete_result(body, size, &del, &reason) == 0)
		s3_xml_delete_result_free(&del);

	memset(&err, 0, sizeof(err));
	(void)s3_xml_check_copy_result(body, size, &err);
	s3_xml_error_free(&err);

	str = malloc(size + 1);
	memcpy(str, data, size);
	str[size] = '\0';
	(void)s3_xml_parse_iso8601(str, &t);
	free(str);
	return 0;
}
