/* fuzz_options: the command line of oboxfs / mount.fuse (what a user or
 * fstab gives): the input is split into arguments at '\n' (argv[0] is
 * "oboxfs"), parsed by oboxfs_options_parse() (fuse_opt and oboxfs's own
 * checks: sizes, intervals, addressing, refused dev/suid), then turned
 * into store settings, and an s3:// STORE with its endpoint and region
 * is parsed by s3_url_parse() as objstore_open() would. */
#include "options.h"
#include "s3-url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ARGS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct oboxfs_options opts;
	struct objstore_settings set;
	const char *error;
	char *text = malloc(size + 1);
	int count = 0;

	memcpy(text, data, size);
	text[size] = '\0';
	if (fuse_opt_add_arg(&args, "oboxfs") < 0)
		abort();
	/* an argument stops at '\n' (or at a NUL, as in a real argv) */
	for (char *arg = text; arg != NULL && count < FUZZ_ARGS_MAX; count++) {
		char *nl = strchr(arg, '\n');

		if (nl != NULL)
			*nl = '\0';
		if (fuse_opt_add_arg(&args, arg) < 0)
			abort();
		arg = nl == NULL ? NULL : nl + 1;
	}
	if (oboxfs_options_parse(&args, &opts, &error) == 0) {
		oboxfs_options_to_settings(&opts, &set);
		if (opts.store_url != NULL &&
		    strncmp(opts.store_url, "s3://", 5) == 0) {
			struct s3_url url;

			if (s3_url_parse(opts.store_url + 5, opts.endpoint,
					 opts.region, opts.addressing, &url,
					 &error) == 0)
				s3_url_free(&url);
		}
	}
	oboxfs_options_free(&opts);
	fuse_opt_free_args(&args);
	free(text);
	return 0;
}
