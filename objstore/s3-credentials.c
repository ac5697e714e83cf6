/* s3-credentials.c: read S3 credentials from a private key file (refused if
 * group/world accessible) or from the environment.  Error messages name the
 * file and line but never contain a secret. */
#include "s3-credentials.h"
#include "s3-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define CRED_FILE_MAX (64 * 1024)

static _Thread_local char cred_error[512];

static int cred_fail(const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int cred_fail(const char **error_r, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(cred_error, sizeof(cred_error), fmt, args);
	va_end(args);
	*error_r = cred_error;
	return -1;
}

static void wipe_free(char *str)
{
	if (str != NULL) {
		OPENSSL_cleanse(str, strlen(str));
		free(str);
	}
}

void s3_credentials_free(struct s3_credentials *cred)
{
	wipe_free(cred->access_key);
	wipe_free(cred->secret_key);
	wipe_free(cred->session_token);
	cred->access_key = cred->secret_key = cred->session_token = NULL;
}

static bool value_ok(const char *value)
{
	if (*value == '\0')
		return false;
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f)
			return false;
	}
	return true;
}

static char *trim(char *str)
{
	char *end;

	while (*str == ' ' || *str == '\t')
		str++;
	end = str + strlen(str);
	while (end > str && (end[-1] == ' ' || end[-1] == '\t' ||
			     end[-1] == '\r'))
		end--;
	*end = '\0';
	return str;
}

int s3_credentials_parse(const char *path, char *text, size_t size,
			 struct s3_credentials *cred, const char **error_r)
{
	unsigned int linenum = 0;
	char *line, *next;

	if (strlen(text) != size) {
		return cred_fail(error_r, "credentials file %s: contains a "
				 "NUL byte", path);
	}
	for (line = text; line != NULL; line = next) {
		char *eq, *name, *value, **dest;

		linenum++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			/* an AWS-style "[default]" section header */
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL) {
			return cred_fail(error_r, "credentials file %s line "
					 "%u: expected 'name = value'", path,
					 linenum);
		}
		*eq = '\0';
		name = trim(line);
		value = trim(eq + 1);
		if (strcmp(name, "access_key") == 0 ||
		    strcmp(name, "aws_access_key_id") == 0)
			dest = &cred->access_key;
		else if (strcmp(name, "secret_key") == 0 ||
			 strcmp(name, "aws_secret_access_key") == 0)
			dest = &cred->secret_key;
		else if (strcmp(name, "session_token") == 0 ||
			 strcmp(name, "aws_session_token") == 0)
			dest = &cred->session_token;
		else {
			return cred_fail(error_r, "credentials file %s line "
					 "%u: unknown setting '%.64s'", path,
					 linenum, name);
		}
		if (*dest != NULL) {
			return cred_fail(error_r, "credentials file %s line "
					 "%u: '%s' given twice", path, linenum,
					 name);
		}
		if (!value_ok(value)) {
			return cred_fail(error_r, "credentials file %s line "
					 "%u: empty value or value with spaces "
					 "or control characters for '%s'", path,
					 linenum, name);
		}
		*dest = strdup(value);
		if (*dest == NULL)
			return cred_fail(error_r, "out of memory");
	}
	if (cred->access_key == NULL || cred->secret_key == NULL) {
		return cred_fail(error_r, "credentials file %s: access_key and "
				 "secret_key are both required", path);
	}
	return 0;
}

static int load_file(const char *path, struct s3_credentials *cred,
		     const char **error_r)
{
	struct stat st;
	char *text;
	ssize_t ret;
	size_t done = 0;
	int fd, result;

	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		return cred_fail(error_r, "credentials file %s: open() "
				 "failed: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		int err = errno;

		close(fd);
		return cred_fail(error_r, "credentials file %s: fstat() "
				 "failed: %s", path, strerror(err));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return cred_fail(error_r, "credentials file %s: not a regular "
				 "file", path);
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		return cred_fail(error_r, "credentials file %s: mode %04o is "
				 "accessible by group or others; chmod 600 it",
				 path, (unsigned int)(st.st_mode & 07777));
	}
	if (st.st_size > CRED_FILE_MAX) {
		close(fd);
		return cred_fail(error_r, "credentials file %s: too large",
				 path);
	}
	text = calloc(1, (size_t)st.st_size + 1);
	if (text == NULL) {
		close(fd);
		return cred_fail(error_r, "out of memory");
	}
	while (done < (size_t)st.st_size) {
		ret = read(fd, text + done, (size_t)st.st_size - done);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			break;
		done += (size_t)ret;
	}
	close(fd);
	text[done] = '\0';
	result = s3_credentials_parse(path, text, done, cred, error_r);
	OPENSSL_cleanse(text, done);
	free(text);
	return result;
}

static int load_env(struct s3_credentials *cred, const char **error_r)
{
	const char *access = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (access == NULL || *access == '\0' || secret == NULL ||
	    *secret == '\0') {
		return cred_fail(error_r, "no S3 credentials: give a "
				 "credentials file or set AWS_ACCESS_KEY_ID "
				 "and AWS_SECRET_ACCESS_KEY");
	}
	if (!value_ok(access) || !value_ok(secret) ||
	    (token != NULL && *token != '\0' && !value_ok(token))) {
		return cred_fail(error_r, "invalid S3 credentials in the "
				 "environment: spaces or control characters");
	}
	cred->access_key = strdup(access);
	cred->secret_key = strdup(secret);
	if (token != NULL && *token != '\0')
		cred->session_token = strdup(token);
	if (cred->access_key == NULL || cred->secret_key == NULL ||
	    (token != NULL && *token != '\0' && cred->session_token == NULL))
		return cred_fail(error_r, "out of memory");
	return 0;
}

int s3_credentials_load(const char *path, struct s3_credentials *cred_r,
			const char **error_r)
{
	int ret;

	memset(cred_r, 0, sizeof(*cred_r));
	ret = path != NULL ? load_file(path, cred_r, error_r) :
		load_env(cred_r, error_r);
	if (ret < 0)
		s3_credentials_free(cred_r);
	return ret;
}
