/* test_s3_xml_replies.c: S3 reply bodies (ListObjectsV2, errors,
 * DeleteObjects, CopyObject) are parsed with expat into validated values;
 * malformed, oversized or hostile (DOCTYPE/entity) bodies are refused with
 * a reason instead of crashing or being half-used. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-xml.h"

TestSuite(s3_xml_replies);

#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

Test(s3_xml_replies, list_result)
{
	static const char body[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult" NS "><Name>b</Name><Prefix>p/</Prefix>"
		"<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>"
		"<IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>1/x+y=</NextContinuationToken>"
		"<Contents><Key>p/a&amp;b \xc3\xbc</Key>"
		"<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
		"<ETag>&quot;x&quot;</ETag><Size>434234</Size>"
		"<StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>p/b</Key><Size>0</Size>"
		"<LastModified>2024-02-29T00:00:00Z</LastModified></Contents>"
		"<CommonPrefixes><Prefix>p/dir/</Prefix></CommonPrefixes>"
		"</ListBucketResult>";
	struct s3_xml_list list;
	const char *reason = NULL;

	cr_assert_eq(s3_xml_parse_list(body, strlen(body), &list, &reason), 0,
		     "%s", reason);
	cr_assert_eq(list.count, 3);
	cr_assert_str_eq(list.entries[0].key, "p/a&b \xc3\xbc");
	cr_assert_eq(list.entries[0].size, 434234);
	cr_assert_eq(list.entries[0].mtime, 1255369830);
	cr_assert_not(list.entries[0].is_prefix);
	cr_assert_eq(list.entries[1].size, 0);
	cr_assert_eq(list.entries[1].mtime, 1709164800);
	cr_assert_str_eq(list.entries[2].key, "p/dir/");
	cr_assert(list.entries[2].is_prefix);
	cr_assert(list.is_truncated);
	cr_assert_str_eq(list.next_token, "1/x+y=");
	s3_xml_list_free(&list);
}

struct bad_body {
	char body[400];
	char reason[64];
};

#define LBR(x) "<ListBucketResult>" x "</ListBucketResult>"
#define C(k, s, m) "<Contents><Key>" k "</Key><Size>" s "</Size>" \
	"<LastModified>" m "</LastModified></Contents>"
#define T "2024-01-01T00:00:00.000Z"

static struct bad_body bad_lists[] = {
	{ "", "malformed XML" },
	{ "<ListBucketResult>", "malformed XML" },
	{ "<Error><Code>x</Code></Error>", "not a ListBucketResult" },
	{ LBR("<IsTruncated>true</IsTruncated>" C("a", "1", T)),
	  "IsTruncated without a NextContinuationToken" },
	{ LBR("<IsTruncated>true</IsTruncated><NextContinuationToken>"
	      "</NextContinuationToken>"),
	  "IsTruncated without a NextContinuationToken" },
	{ LBR("<IsTruncated>maybe</IsTruncated>"), "bad IsTruncated" },
	{ LBR(C("", "1", T)), "Contents without a Key" },
	{ LBR("<Contents><Size>1</Size></Contents>"), "Contents without a Key" },
	{ LBR(C("a", "-1", T)), "missing or bad Size" },
	{ LBR(C("a", "1x", T)), "missing or bad Size" },
	{ LBR(C("a", "99999999999999999999999", T)), "missing or bad Size" },
	{ LBR("<Contents><Key>a</Key><LastModified>" T "</LastModified>"
	      "</Contents>"), "missing or bad Size" },
	{ LBR(C("a", "1", "yesterday")), "missing or bad LastModified" },
	{ LBR(C("a", "1", "2024-13-01T00:00:00Z")),
	  "missing or bad LastModified" },
	{ LBR("<Contents><Key>a</Key><Size>1</Size></Contents>"),
	  "missing or bad LastModified" },
	{ LBR("<CommonPrefixes></CommonPrefixes>"),
	  "CommonPrefixes without a Prefix" },
	{ "<!DOCTYPE l [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
	  LBR(C("&b;", "1", T)), "DOCTYPE not allowed" },
	{ "<a><b><c><d><e><f><g><h><i>x</i></h></g></f></e></d></c></b></a>",
	  "nested too deeply" },
	{ LBR("") "<x/>", "malformed XML" },
};

ParameterizedTestParameters(s3_xml_replies, bad_list_results)
{
	return cr_make_param_array(struct bad_body, bad_lists,
				   sizeof(bad_lists) / sizeof(bad_lists[0]));
}

ParameterizedTest(struct bad_body *c, s3_xml_replies, bad_list_results)
{
	struct s3_xml_list list;
	const char *reason = NULL;

	cr_assert_eq(s3_xml_parse_list(c->body, strlen(c->body), &list,
				       &reason), -1, "accepted: %s", c->body);
	cr_assert_not_null(reason);
	cr_assert(strstr(reason, c->reason) != NULL, "%s: got '%s'", c->body,
		  reason);
	cr_assert_eq(list.count, 0);
	cr_assert_null(list.entries);
}

Test(s3_xml_replies, oversized_text_refused)
{
	size_t size = 10000;
	char *body = malloc(size + 100), *p = body;
	struct s3_xml_list list;
	const char *reason;

	p += sprintf(p, "<ListBucketResult><Contents><Key>");
	memset(p, 'k', size);
	p += size;
	sprintf(p, "</Key></Contents></ListBucketResult>");
	cr_assert_eq(s3_xml_parse_list(body, strlen(body), &list, &reason), -1);
	cr_assert_str_eq(reason, "XML element text too long");
	free(body);
}

Test(s3_xml_replies, error_body)
{
	static const char body[] = "<?xml version='1.0' encoding='UTF-8'?>\n"
		"<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
		"signature we calculated does not match</Message><RequestId>"
		"tx1</RequestId></Error>";
	struct s3_xml_error err;

	s3_xml_parse_error(body, strlen(body), &err);
	cr_assert_str_eq(err.code, "SignatureDoesNotMatch");
	cr_assert_str_eq(err.message, "The request signature we calculated "
			 "does not match");
	s3_xml_error_free(&err);

	/* not XML, or not an Error: no code, no crash */
	s3_xml_parse_error("<html>502 Bad Gateway</html>", 28, &err);
	cr_assert_null(err.code);
	s3_xml_parse_error("garbage<", 8, &err);
	cr_assert_null(err.code);
	s3_xml_parse_error("", 0, &err);
	cr_assert_null(err.code);
}

Test(s3_xml_replies, delete_result)
{
	static const char body[] = "<DeleteResult" NS ">"
		"<Deleted><Key>a</Key></Deleted>"
		"<Error><Key>b&lt;1</Key><Code>AccessDenied</Code>"
		"<Message>Access Denied</Message></Error>"
		"<Error><Key>c</Key><Code>InternalError</Code></Error>"
		"</DeleteResult>";
	struct s3_xml_delete_result res;
	const char *reason = NULL;

	cr_assert_eq(s3_xml_parse_delete_result(body, strlen(body), &res,
						&reason), 0, "%s", reason);
	cr_assert_eq(res.error_count, 2);
	cr_assert_str_eq(res.errors[0].key, "b<1");
	cr_assert_str_eq(res.errors[0].code, "AccessDenied");
	cr_assert_str_eq(res.errors[0].message, "Access Denied");
	cr_assert_str_eq(res.errors[1].message, "");
	s3_xml_delete_result_free(&res);

	cr_assert_eq(s3_xml_parse_delete_result("<DeleteResult><Error><Code>x"
		"</Code></Error></DeleteResult>", 58, &res, &reason), -1);
	cr_assert_str_eq(reason, "DeleteResult Error without Key or Code");
	cr_assert_eq(s3_xml_parse_delete_result("<Other/>", 8, &res,
						&reason), -1);
}

Test(s3_xml_replies, copy_result)
{
	static const char ok[] = "<CopyObjectResult><LastModified>" T
		"</LastModified><ETag>\"x\"</ETag></CopyObjectResult>";
	static const char late[] = "<Error><Code>InternalError</Code>"
		"<Message>We encountered an internal error</Message></Error>";
	struct s3_xml_error err;

	cr_assert_eq(s3_xml_check_copy_result(ok, strlen(ok), &err), 0);
	cr_assert_null(err.code);
	cr_assert_eq(s3_xml_check_copy_result(late, strlen(late), &err), -1);
	cr_assert_str_eq(err.code, "InternalError");
	s3_xml_error_free(&err);
	cr_assert_eq(s3_xml_check_copy_result("", 0, &err), -1);
	cr_assert_str_eq(err.code, "InvalidReply");
	s3_xml_error_free(&err);
}

Test(s3_xml_replies, escape_for_delete_body)
{
	char *esc = s3_xml_escape("a&b<c>d\"e'f");

	cr_assert_str_eq(esc, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	free(esc);
}
