/* fuzz_credentials: the S3 credentials file (credentials=FILE, given by
 * the user): s3_credentials_parse(), the text parser of
 * s3_credentials_load() (lines "name = value", comments, AWS-style
 * sections and spellings, NUL bytes refused).  A file that parses has an
 * access and a secret key without spaces or control characters. */
#include "s3-private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *value)
{
	if (value == NULL || value[0] == '\0')
		abort();
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_credentials cred;
	const char *error;
	char *text = malloc(size + 1);

	memcpy(text, data, size);
	text[size] = '\0';
	memset(&cred, 0, sizeof(cred));
	if (s3_credentials_parse("fuzz.cred", text, size, &cred,
				 &error) == 0) {
		check_value(cred.access_key);
		check_value(cred.secret_key);
		if (cred.session_token != NULL)
			check_value(cred.session_token);
	}
	s3_credentials_free(&cred);
	free(text);
	return 0;
}
