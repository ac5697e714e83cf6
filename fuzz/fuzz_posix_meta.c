/* fuzz_posix_meta: the object metadata of the file:// store, read back
 * from the user.oboxfs.meta xattr (JSON, untrusted): posix_meta_decode(),
 * then putback_mail_from_stat() on it as a load putting mails back does,
 * and metadata that decoded must encode (posix_meta_encode()) to JSON that
 * decodes to the same pairs. */
#include "posix-meta.h"
#include "putback-private.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct putback_mail mail;
	struct objstore_stat again;
	const char *reason;
	char *json;

	if (size > POSIX_META_XATTR_MAX)
		return 0;	/* the backend reads no more */
	memset(&mail, 0, sizeof(mail));
	if (posix_meta_decode((const char *)data, size, &mail.st,
			      &reason) < 0)
		return 0;
	json = posix_meta_encode(mail.st.meta, mail.st.meta_count);
	if (json == NULL) {
		fprintf(stderr, "decoded metadata does not encode\n");
		abort();
	}
	memset(&again, 0, sizeof(again));
	if (posix_meta_decode(json, strlen(json), &again, &reason) < 0) {
		fprintf(stderr, "re-encoded metadata does not decode: %s\n",
			reason);
		abort();
	}
	if (again.meta_count != mail.st.meta_count)
		abort();
	for (unsigned int i = 0; i < again.meta_count; i++) {
		const char *v = objstore_stat_meta(&mail.st,
						   again.meta[i].name);

		if (v == NULL || strcmp(v, again.meta[i].value) != 0) {
			fprintf(stderr, "re-encoded metadata differs at %s\n",
				again.meta[i].name);
			abort();
		}
	}
	objstore_stat_free(&again);
	free(json);
	(void)putback_mail_from_stat(&mail);
	putback_mail_free(&mail);
	return 0;
}
