/* s3-credentials.h: loading S3 access keys from a private file or from the
 * AWS_* environment variables. */
#ifndef OBOXFS_S3_CREDENTIALS_H
#define OBOXFS_S3_CREDENTIALS_H

struct s3_credentials {
	char *access_key;
	char *secret_key;
	char *session_token;	/* NULL if none */
};

/* Load from path (lines "access_key = ...", "secret_key = ...", optional
   "session_token = ..."; the aws_access_key_id / aws_secret_access_key /
   aws_session_token spellings too; '#'/';' comments, blank lines and
   AWS-style "[section]" lines are ignored; any other line is an error).
   The file must be a regular file not accessible by group or others.  If
   path is NULL, use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
   AWS_SESSION_TOKEN.  Returns -1 with a one-line *error_r (thread-local
   buffer, never containing the secret). */
int s3_credentials_load(const char *path, struct s3_credentials *cred_r,
			const char **error_r);
/* Wipe and free the strings. */
void s3_credentials_free(struct s3_credentials *cred);

#endif
