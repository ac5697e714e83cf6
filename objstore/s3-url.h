/* s3-url.h: parsing and validating "s3://bucket[/prefix]" locations and
 * endpoint URLs, and choosing path-style or virtual-host addressing. */
#ifndef OBOXFS_S3_URL_H
#define OBOXFS_S3_URL_H

#include <stdbool.h>

#include "objstore.h"

struct s3_url {
	char *bucket;
	char *prefix;		/* "" or "a/b" (no leading/trailing '/') */
	bool https;
	char *host;		/* host name as sent (virtual: bucket.host) */
	char *host_header;	/* host[:port] for the Host header */
	unsigned int port;	/* 0 = scheme default */
	bool virtual_host;
	char *base_url;		/* "http[s]://host[:port]" */
	/* "" for virtual-host, "/bucket" (encoded) for path-style */
	char *bucket_path;
};

/* Parse location ("bucket/prefix", the URL without "s3://"), endpoint
   (NULL = AWS in region) and addressing.  Returns -1 with a one-line
   *error_r (thread-local) and url_r holding nothing to free. */
int s3_url_parse(const char *location, const char *endpoint,
		 const char *region, enum objstore_addressing addressing,
		 struct s3_url *url_r, const char **error_r);
void s3_url_free(struct s3_url *url);

#endif
