/* s3-xml.h: parsing the XML bodies S3 returns (ListObjectsV2 results, error
 * bodies, DeleteObjects results, CopyObject results) with expat.  Everything
 * is untrusted: sizes, nesting and element counts are bounded and missing or
 * malformed fields are errors. */
#ifndef OBOXFS_S3_XML_H
#define OBOXFS_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct s3_xml_list_entry {
	char *key;		/* full key as returned (with the prefix) */
	uint64_t size;
	time_t mtime;
	bool is_prefix;
};

struct s3_xml_list {
	struct s3_xml_list_entry *entries;
	unsigned int count;
	bool is_truncated;
	char *next_token;	/* NextContinuationToken, or NULL */
};

struct s3_xml_error {
	char *code;		/* NULL if the body was not an S3 error */
	char *message;
};

struct s3_xml_delete_error {
	char *key, *code, *message;
};

struct s3_xml_delete_result {
	struct s3_xml_delete_error *errors;
	unsigned int error_count;
};

/* Parse an <Error><Code/><Message/></Error> body.  Never fails: code and
   message stay NULL if the body is not such a document. */
void s3_xml_parse_error(const char *body, size_t size,
			struct s3_xml_error *error_r);
void s3_xml_error_free(struct s3_xml_error *error);

/* Parse a ListObjectsV2 result.  Returns -1 and a reason in *reason_r
   (static string) if the body is malformed. */
int s3_xml_parse_list(const char *body, size_t size, struct s3_xml_list *list_r,
		      const char **reason_r);
void s3_xml_list_free(struct s3_xml_list *list);

/* Parse a DeleteObjects result (only <Error> entries are kept). */
int s3_xml_parse_delete_result(const char *body, size_t size,
			       struct s3_xml_delete_result *result_r,
			       const char **reason_r);
void s3_xml_delete_result_free(struct s3_xml_delete_result *result);

/* A CopyObject 200 reply: 0 if it is a <CopyObjectResult>, else -1 with
   error_r filled from an <Error> body (code "InvalidReply" if neither). */
int s3_xml_check_copy_result(const char *body, size_t size,
			     struct s3_xml_error *error_r);

/* "2009-10-12T17:50:30.000Z" -> time_t; -1 if malformed */
int s3_xml_parse_iso8601(const char *str, time_t *time_r);

/* Escape & < > " ' for element content; malloc()ed or NULL */
char *s3_xml_escape(const char *str);

#endif
