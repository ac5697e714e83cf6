/* s3-request.c: sign and send one S3 request, classify the outcome
 * (success, NOT_FOUND, AUTH, THROTTLED, TRANSIENT, PERMANENT, INVALID) and
 * retry what is worth retrying with exponential back-off and full jitter
 * within the store's retry time budget.  Every request sent is counted. */
#include "s3-request.h"
#include "s3-xml.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
/* don't start an attempt with less time than this left: one given less
   seldom gets a reply (a busy store, a loaded machine) */
#define ATTEMPT_MIN_MS 100

struct outcome {
	enum objstore_error error;	/* NONE = success */
	bool retry;
	char detail[700];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ms / 1000),
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) < 0)
		;
}

static uint64_t jitter_ms(uint64_t max)
{
	static _Thread_local unsigned int seed;

	if (seed == 0) {
		seed = (unsigned int)now_ms() ^
			(unsigned int)(uintptr_t)pthread_self();
		if (seed == 0)
			seed = 1;
	}
	if (max == 0)
		return 0;
	return (uint64_t)rand_r(&seed) % (max + 1);
}

char *s3_request_path(const struct s3_store *s3, const char *key,
		      bool encoded)
{
	char *full = NULL, *enc, *path = NULL;
	int ret;

	if (key == NULL) {
		if (s3->url.bucket_path[0] == '\0')
			return strdup("/");
		return strdup(s3->url.bucket_path);
	}
	if (s3->url.prefix[0] != '\0')
		ret = asprintf(&full, "%s/%s", s3->url.prefix, key);
	else
		ret = asprintf(&full, "%s", key);
	if (ret < 0)
		return NULL;
	if (!encoded)
		return full;
	enc = s3_uri_encode(full, true);
	free(full);
	if (enc == NULL)
		return NULL;
	if (asprintf(&path, "%s/%s", s3->url.bucket_path, enc) < 0)
		path = NULL;
	free(enc);
	return path;
}

/* a server-supplied text, made safe for a one-line message */
static void sanitize(char *str)
{
	for (; *str != '\0'; str++) {
		if ((unsigned char)*str < 0x20 || (unsigned char)*str == 0x7f)
			*str = ' ';
	}
}

static bool code_is(const char *code, const char *const *list)
{
	if (code == NULL)
		return false;
	for (; *list != NULL; list++) {
		if (strcmp(code, *list) == 0)
			return true;
	}
	return false;
}

static const char *const throttle_codes[] = {
	"SlowDown", "Throttling", "ThrottlingException",
	"RequestLimitExceeded", "TooManyRequests", "RequestThrottled", NULL
};
static const char *const auth_codes[] = {
	"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied",
	"ExpiredToken", "InvalidToken", "TokenRefreshRequired",
	"InvalidSecurity", "AuthorizationHeaderMalformed",
	"AccountProblem", NULL
};
static const char *const transient_codes[] = {
	"InternalError", "RequestTimeout", "ServiceUnavailable",
	"OperationAborted", NULL
};

static void classify_http(const struct s3_request *req, struct outcome *out)
{
	const struct s3_http_response *resp = &req->resp;
	long status = resp->status;
	struct s3_xml_error xerr;

	if (status >= 200 && status <= 299 && req->check_copy_result &&
	    s3_xml_check_copy_result(resp->body, resp->body_size,
				     &xerr) < 0) {
		sanitize(xerr.code);
		if (xerr.message != NULL)
			sanitize(xerr.message);
		snprintf(out->detail, sizeof(out->detail),
			 "%ld with error %.100s: %.400s", status, xerr.code,
			 xerr.message != NULL ? xerr.message : "");
		out->retry = false;
		if (code_is(xerr.code, throttle_codes)) {
			out->error = OBJSTORE_ERR_THROTTLED;
			out->retry = true;
		} else if (code_is(xerr.code, transient_codes)) {
			out->error = OBJSTORE_ERR_TRANSIENT;
			out->retry = true;
		} else if (code_is(xerr.code, auth_codes)) {
			out->error = OBJSTORE_ERR_AUTH;
		} else if (strcmp(xerr.code, "NoSuchKey") == 0) {
			out->error = OBJSTORE_ERR_NOT_FOUND;
		} else {
			out->error = OBJSTORE_ERR_PERMANENT;
		}
		s3_xml_error_free(&xerr);
		return;
	}
	if ((status >= 200 && status <= 299) ||
	    (status == 404 && req->not_found_ok) ||
	    (status == 416 && req->range_not_satisfiable_ok)) {
		out->error = OBJSTORE_ERR_NONE;
		return;
	}
	s3_xml_parse_error(resp->body, resp->body_size, &xerr);
	if (xerr.code != NULL)
		sanitize(xerr.code);
	if (xerr.message != NULL)
		sanitize(xerr.message);
	snprintf(out->detail, sizeof(out->detail), "%ld %.100s%s%.400s", status,
		 xerr.code != NULL ? xerr.code : "(no error code)",
		 xerr.message != NULL && xerr.message[0] != '\0' ? ": " : "",
		 xerr.message != NULL ? xerr.message : "");

	out->retry = false;
	if (status == 429 || code_is(xerr.code, throttle_codes)) {
		out->error = OBJSTORE_ERR_THROTTLED;
		out->retry = true;
	} else if (status == 403 || code_is(xerr.code, auth_codes)) {
		out->error = OBJSTORE_ERR_AUTH;
	} else if (status == 404) {
		out->error = xerr.code != NULL &&
			strcmp(xerr.code, "NoSuchBucket") == 0 ?
			OBJSTORE_ERR_PERMANENT : OBJSTORE_ERR_NOT_FOUND;
	} else if (status == 501 || status == 505) {
		out->error = OBJSTORE_ERR_PERMANENT;
	} else if (status >= 500 || status == 408 ||
		   code_is(xerr.code, transient_codes)) {
		out->error = OBJSTORE_ERR_TRANSIENT;
		out->retry = true;
	} else if (status == 400) {
		out->error = OBJSTORE_ERR_INVALID;
	} else {
		out->error = OBJSTORE_ERR_PERMANENT;
	}
	s3_xml_error_free(&xerr);
}

static void classify_transport(const struct s3_request *req,
			       struct outcome *out)
{
	const struct s3_http_response *resp = &req->resp;

	out->retry = false;
	if (resp->body_read_failed) {
		out->error = OBJSTORE_ERR_PERMANENT;
		snprintf(out->detail, sizeof(out->detail),
			 "pread() of the upload failed: %s",
			 strerror(resp->body_read_errno));
		return;
	}
	snprintf(out->detail, sizeof(out->detail), "%s",
		 resp->curl_error);
	sanitize(out->detail);
	switch (resp->curl_code) {
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_TOO_MANY_REDIRECTS:
		out->error = OBJSTORE_ERR_PERMANENT;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		/* at init, an unreachable store is reported at once */
		out->error = OBJSTORE_ERR_TRANSIENT;
		out->retry = !req->init_probe;
		break;
	default:
		/* timeouts, resets, truncated replies, TLS handshakes */
		out->error = OBJSTORE_ERR_TRANSIENT;
		out->retry = true;
		break;
	}
}

static int add_header(struct curl_slist **list, const char *name,
		      const char *value)
{
	struct curl_slist *l;
	char *line;

	/* curl drops a "Name:" header; "Name;" sends it with no value */
	if (value[0] == '\0' ? asprintf(&line, "%s;", name) < 0 :
	    asprintf(&line, "%s: %s", name, value) < 0)
		return -1;
	l = curl_slist_append(*list, line);
	free(line);
	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

static struct curl_slist *
build_headers(struct s3_store *s3, const struct s3_request *req,
	      const char *path, const char *query, const char *payload_hash)
{
	struct s3_header hdrs[S3_EXTRA_HEADERS_MAX + 4];
	struct s3_sigv4_request sreq;
	struct curl_slist *list = NULL;
	char amz_date[S3_AMZ_DATE_LEN + 1], *auth = NULL;
	unsigned int n = 0;
	bool failed = false;

	s3_amz_date(time(NULL), amz_date);
	hdrs[n++] = (struct s3_header){ "Host", s3->url.host_header };
	hdrs[n++] = (struct s3_header){ "x-amz-date", amz_date };
	hdrs[n++] = (struct s3_header){ "x-amz-content-sha256",
					payload_hash };
	if (s3->cred.session_token != NULL) {
		hdrs[n++] = (struct s3_header){ "x-amz-security-token",
						s3->cred.session_token };
	}
	for (unsigned int i = 0; i < req->header_count; i++)
		hdrs[n++] = req->headers[i];

	memset(&sreq, 0, sizeof(sreq));
	sreq.method = req->method;
	sreq.canonical_uri = path;
	sreq.canonical_query = query;
	sreq.headers = hdrs;
	sreq.header_count = n;
	sreq.payload_hash = payload_hash;
	sreq.amz_date = amz_date;
	sreq.region = s3->region;
	sreq.service = "s3";
	sreq.access_key = s3->cred.access_key;
	sreq.secret_key = s3->cred.secret_key;
	if (s3_sigv4_authorization(&sreq, &auth, NULL) < 0)
		return NULL;
	for (unsigned int i = 0; i < n && !failed; i++)
		failed = add_header(&list, hdrs[i].name, hdrs[i].value) < 0;
	if (!failed)
		failed = add_header(&list, "Authorization", auth) < 0;
	/* no 100-continue round trip; no default POST content type */
	if (!failed)
		failed = (list = curl_slist_append(list, "Expect:")) == NULL;
	if (!failed && req->body != NULL)
		failed = add_header(&list, "Content-Type",
				    strcmp(req->method, "POST") == 0 ?
				    "application/xml" :
				    "application/octet-stream") < 0;
	free(auth);
	if (failed) {
		curl_slist_free_all(list);
		return NULL;
	}
	return list;
}

/* the attempt just made timed out in a timeout shorter than the usual
   one: what was left of the retry budget */
static bool ret_is_budget_timeout(const struct s3_request *req,
				  const struct s3_http_request *hreq,
				  uint64_t request_timeout_ms)
{
	return req->resp.status == 0 &&
		req->resp.curl_code == CURLE_OPERATION_TIMEDOUT &&
		(uint64_t)hreq->timeout_ms < request_timeout_ms;
}

static int fail(const struct s3_request *req, const struct outcome *out,
		unsigned int attempts, uint64_t elapsed, bool last_cut)
{
	if (last_cut) {
		/* the last attempt timed out in what was left of the budget:
		   the store's own answer before it says more */
		return objstore_set_error(out->error, "%s failed: %s (after %u "
					  "attempts in %.1f s, the last cut "
					  "short by the retry time budget)",
					  req->what, out->detail, attempts,
					  (double)elapsed / 1000.0);
	}
	if (attempts <= 1) {
		return objstore_set_error(out->error, "%s failed: %s (after 1 "
					  "attempt)", req->what, out->detail);
	}
	return objstore_set_error(out->error, "%s failed: %s (after %u "
				  "attempts in %.1f s)", req->what,
				  out->detail, attempts,
				  (double)elapsed / 1000.0);
}

void s3_request_init(struct s3_request *req, enum objstore_op op,
		     const char *method, const char *what, const char *key)
{
	memset(req, 0, sizeof(*req));
	req->op = op;
	req->method = method;
	req->what = what;
	req->key = key;
}

int s3_request_run(struct s3_store *s3, struct s3_request *req)
{
	struct s3_http_request hreq;
	struct outcome out = { .error = OBJSTORE_ERR_PERMANENT };
	/* the last error reply of the store itself (HTTP status) */
	struct outcome reply_out = { .error = OBJSTORE_ERR_NONE };
	bool last_cut = false;
	char *path, *query, *url = NULL;
	const char *payload_hash = req->payload_hash != NULL ?
		req->payload_hash : S3_EMPTY_SHA256;
	uint64_t start = now_ms(), deadline = start + s3->retry_timeout_ms;
	unsigned int attempts = 0;
	int ret = -1;

	memset(&req->resp, 0, sizeof(req->resp));
	path = s3_request_path(s3, req->key, true);
	query = s3_canonical_query(req->query, req->query_count);
	if (path == NULL || query == NULL ||
	    asprintf(&url, "%s%s%s%s", s3->url.base_url, path,
		     query[0] != '\0' ? "?" : "", query) < 0) {
		free(path);
		free(query);
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "%s failed: out of memory",
					  req->what);
	}

	memset(&hreq, 0, sizeof(hreq));
	hreq.method = req->method;
	hreq.url = url;
	hreq.body = req->body;
	hreq.sink = req->sink;
	hreq.range_skip = req->range_skip;
	hreq.range_length = req->range_length;
	hreq.connect_timeout_ms = (long)s3->connect_timeout_ms;
	hreq.tls_insecure = s3->tls_insecure;
	hreq.ca_file = s3->ca_file;

	for (;;) {
		uint64_t now = now_ms(), left, backoff;

		/* a retry gets what is left of the budget (the back-off
		   left at least ATTEMPT_MIN_MS of it) */
		left = deadline > now ? deadline - now : 0;
		if (left < ATTEMPT_MIN_MS / 2)
			left = ATTEMPT_MIN_MS / 2;
		hreq.timeout_ms = (long)(s3->request_timeout_ms < left ||
					 attempts == 0 ?
					 s3->request_timeout_ms : left);
		last_cut = false;
		if (attempts > 0)
			objstore_count_retry(&s3->store);
		hreq.headers = build_headers(s3, req, path, query,
					     payload_hash);
		if (hreq.headers == NULL) {
			objstore_set_error(OBJSTORE_ERR_PERMANENT, "%s failed: "
					   "signing the request failed",
					   req->what);
			goto out;
		}
		if (req->sink != NULL)
			objstore_sink_reset(req->sink);
		s3_http_response_free(&req->resp);
		attempts++;
		objstore_count_request(&s3->store, req->op);
		ret = s3_http_perform(s3->http, &hreq, &req->resp);
		curl_slist_free_all(hreq.headers);
		objstore_count_bytes(&s3->store, req->resp.bytes_in,
				     req->resp.bytes_out);
		req->status = req->resp.status;
		memset(&out, 0, sizeof(out));
		if (ret == 0) {
			classify_http(req, &out);
			if (out.error != OBJSTORE_ERR_NONE)
				reply_out = out;
		} else if (req->resp.sink_failed) {
			/* the sink's own error (too big, pwrite) stands */
			char *msg;
			enum objstore_error err;

			objstore_error_save(&err, &msg);
			objstore_set_error(err, "%s failed: %s", req->what,
					   msg != NULL ? msg : "");
			free(msg);
			ret = -1;
			goto out;
		} else {
			classify_transport(req, &out);
		}
		if (out.error == OBJSTORE_ERR_NONE) {
			ret = 0;
			goto out;
		}
		ret = -1;
		now = now_ms();
		if (ret_is_budget_timeout(req, &hreq, s3->request_timeout_ms) &&
		    reply_out.error != OBJSTORE_ERR_NONE) {
			out = reply_out;
			last_cut = true;
		}
		if (!out.retry || now >= deadline)
			break;
		backoff = (uint64_t)BACKOFF_BASE_MS << (attempts < 16 ?
							attempts - 1 : 15);
		if (backoff > BACKOFF_CAP_MS)
			backoff = BACKOFF_CAP_MS;
		backoff = jitter_ms(backoff);
		if (now + ATTEMPT_MIN_MS >= deadline)
			break;
		if (now + backoff + ATTEMPT_MIN_MS > deadline)
			backoff = deadline - now - ATTEMPT_MIN_MS;
		sleep_ms(backoff);
	}
	fail(req, &out, attempts, now_ms() - start, last_cut);
out:
	if (ret < 0)
		s3_http_response_free(&req->resp);
	free(url);
	free(path);
	free(query);
	return ret;
}

void s3_request_free(struct s3_request *req)
{
	s3_http_response_free(&req->resp);
}
