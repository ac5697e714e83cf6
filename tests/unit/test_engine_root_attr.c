/* test_engine_root_attr.c: the tree root's owner and mode in the store
 * (engine/rootattr.c): the stored text round-trips and anything else is
 * refused (it is read back from the store: untrusted); an engine on an
 * empty cache dir gives its root what another engine stored after a
 * chown/chmod, and the root_* settings override it without storing. */
#include "test_engine.h"
#include "keys.h"
#include "rootattr.h"

#include <criterion/parameterized.h>

TestSuite(engine_root_attr, .init = eng_init, .fini = eng_fini,
	  .timeout = 60);

Test(engine_root_attr, text_round_trip)
{
	struct rootattr in = { .uid = 5000, .gid = 4294967294U,
			       .mode = 02750 }, out;
	char text[ROOTATTR_TEXT_MAX];
	const char *error;
	size_t len = rootattr_format(&in, text);

	cr_assert_str_eq(text, "oboxfs-root 1\nuid 5000\ngid 4294967294\n"
			 "mode 2750\n");
	cr_assert_eq(rootattr_parse(text, len, &out, &error), 0, "%s", error);
	cr_assert_eq(out.uid, in.uid);
	cr_assert_eq(out.gid, in.gid);
	cr_assert_eq(out.mode, in.mode);
}

/* arrays, not pointers: criterion runs each case in a new process */
struct bad_text {
	char text[120];
};

ParameterizedTestParameters(engine_root_attr, hostile_text_refused)
{
	static struct bad_text cases[] = {
		{ "" },
		{ "oboxfs-root 2\nuid 1\ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid 1\ngid 1\nmode 0755" },
		{ "oboxfs-root 1\nuid 1\ngid 1\nmode 0755\nextra 1\n" },
		{ "oboxfs-root 1\ngid 1\nuid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid -1\ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid 4294967295\ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid 99999999999\ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid 1\ngid 1\nmode 10000\n" },
		{ "oboxfs-root 1\nuid 1\ngid 1\nmode 0789\n" },
		{ "oboxfs-root 1\nuid \ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid 1 \ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\nuid  1\ngid 1\nmode 0755\n" },
		{ "oboxfs-root 1\r\nuid 1\r\ngid 1\r\nmode 0755\r\n" },
		{ "oboxfs-root 1\nuid 0x10\ngid 1\nmode 0755\n" },
	};
	return cr_make_param_array(struct bad_text, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_text *c, engine_root_attr, hostile_text_refused)
{
	struct rootattr attr;
	const char *error = NULL;

	cr_assert_eq(rootattr_parse(c->text, strlen(c->text), &attr, &error),
		     -1, "accepted: %s", c->text);
	cr_assert_not_null(error);
}

Test(engine_root_attr, nul_inside_refused)
{
	static const char text[] = "oboxfs-root 1\nuid 1\0\ngid 1\nmode 0755\n";
	struct rootattr attr;
	const char *error;

	cr_assert_eq(rootattr_parse(text, sizeof(text) - 1, &attr, &error),
		     -1);
}

static void root_stat(struct obox *obox, struct stat *st)
{
	cr_assert_eq(fstatat(obox_meta_fd(obox), "", st, AT_EMPTY_PATH), 0);
}

Test(engine_root_attr, stored_owner_and_mode_follow_to_a_fresh_cache)
{
	struct obox *a = eng_open("cache-a"), *b, *c;
	char proc[64];
	struct stat st;

	/* a front end's chown/chmod of the root, then it tells the engine */
	cr_assert_eq(fchownat(obox_meta_fd(a), "", 4321, 4322,
			      AT_EMPTY_PATH), 0);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", obox_meta_fd(a));
	cr_assert_eq(chmod(proc, 0750), 0);
	cr_assert_eq(obox_root_attr_changed(a), 0);
	obox_deinit(&a);

	b = eng_open("cache-b");
	root_stat(b, &st);
	cr_assert_eq(st.st_uid, 4321);
	cr_assert_eq(st.st_gid, 4322);
	cr_assert_eq(st.st_mode & 07777, 0750);
	obox_deinit(&b);

	/* the settings override, and are not stored */
	eng_root_mode = 0711;
	c = eng_open("cache-c");
	root_stat(c, &st);
	cr_assert_eq(st.st_uid, 4321);
	cr_assert_eq(st.st_mode & 07777, 0711);
	obox_deinit(&c);
	eng_root_mode = -1;
	c = eng_open("cache-d");
	root_stat(c, &st);
	cr_assert_eq(st.st_mode & 07777, 0750);
	obox_deinit(&c);
}

Test(engine_root_attr, invalid_stored_object_is_ignored)
{
	struct obox *a;
	struct stat st;

	cr_assert_eq(objstore_put(eng_store, KEYS_ROOT_ATTR, "junk", 4, NULL,
				  0), 0);
	a = eng_open("cache-a");
	root_stat(a, &st);
	cr_assert_eq(st.st_uid, geteuid());
	obox_deinit(&a);
}
