/* test_yamldoc.c — the YAML tree builder and typed getters (yamldoc.c). */
#include "yamldoc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gw_diags diags;

static void reset(void)
{
    memset(&diags, 0, sizeof diags);
}

static void cleanup(void)
{
    gw_diags_cleanup(&diags);
}

TestSuite(yamldoc, .init = reset, .fini = cleanup);

static gw_yamldoc *parse_ok(const char *yaml)
{
    gw_yamldoc *doc = NULL;
    cr_assert_eq(gw_yamldoc_parse("t.yaml", yaml, strlen(yaml), &diags, &doc), GW_OK);
    cr_assert_not_null(doc);
    return doc;
}

static void parse_fails_with(const char *yaml, const char *expected)
{
    gw_yamldoc *doc = NULL;
    cr_assert_eq(gw_yamldoc_parse("t.yaml", yaml, strlen(yaml), &diags, &doc), GW_ERR_INVALID);
    cr_assert_null(doc);
    cr_assert_eq(diags.n, 1, "expected one diagnostic, got %zu", diags.n);
    char line[512];
    gw_diag_format(&diags.items[0], line, sizeof line);
    cr_assert_str_eq(line, expected);
}

/* The one diagnostic reported so far, formatted. */
static const char *only_diag(void)
{
    static char line[512];
    cr_assert_eq(diags.n, 1, "expected one diagnostic, got %zu", diags.n);
    gw_diag_format(&diags.items[0], line, sizeof line);
    return line;
}

Test(yamldoc, builds_a_tree_with_one_based_positions)
{
    gw_yamldoc *doc = parse_ok("a: 1\nb:\n  - x\n  - 'y'\n");
    const gw_yaml_node *root = doc->root;
    cr_assert_eq(root->kind, GW_YAML_MAP);
    cr_assert_eq(root->n, 2);
    cr_assert_str_eq(root->keys[0]->str, "a");
    const gw_yaml_node *b = gw_yamldoc_map_get(root, "b");
    cr_assert_eq(b->kind, GW_YAML_SEQ);
    cr_assert_eq(b->n, 2);
    cr_assert_eq(b->items[1]->line, 4);
    cr_assert_eq(b->items[1]->col, 5);
    cr_assert(b->items[0]->plain);
    cr_assert_not(b->items[1]->plain);
    cr_assert_eq(doc->errors, 0);
    gw_yamldoc_free(doc);
}

Test(yamldoc, empty_document_has_no_root)
{
    gw_yamldoc *doc = parse_ok("# only a comment\n");
    cr_assert_null(doc->root);
    gw_yamldoc_free(doc);
}

Test(yamldoc, duplicate_key_is_reported_at_the_second_key_and_the_first_kept)
{
    gw_yamldoc *doc = parse_ok("a: 1\nb: {c: 2}\na: [3]\n");
    cr_assert_str_eq(only_diag(), "t.yaml:3:1: duplicate key \"a\" (first at line 1)");
    cr_assert_eq(doc->errors, 1);
    cr_assert_eq(doc->root->n, 2);
    cr_assert_str_eq(gw_yamldoc_map_get(doc->root, "a")->str, "1");
    gw_yamldoc_free(doc);
}

Test(yamldoc, alias_is_refused)
{
    parse_fails_with("a: [1]\nb: *a\n", "t.yaml:2:4: aliases are not supported");
}

Test(yamldoc, anchor_is_refused_before_its_alias_is_reached)
{
    parse_fails_with("a: &x [1]\nb: *x\n", "t.yaml:1:4: anchors and aliases are not supported");
}

Test(yamldoc, twenty_thousand_nested_sequences_stop_at_the_depth_limit)
{
    char path[] = "/tmp/gw_deep_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 20000; i++)
        fputc('[', f);
    for (int i = 0; i < 20000; i++)
        fputc(']', f);
    fclose(f);
    gw_yamldoc *doc = NULL;
    gw_err err = gw_yamldoc_load(path, &diags, &doc);
    unlink(path);
    cr_assert_eq(err, GW_ERR_INVALID);
    cr_assert_null(doc);
    char expected[128];
    snprintf(expected, sizeof expected, "%s:1:65: nesting deeper than 64 levels is not supported",
             path);
    cr_assert_str_eq(only_diag(), expected);
}

Test(yamldoc, sixty_four_levels_are_allowed)
{
    char yaml[200];
    memset(yaml, '[', 64);
    memset(yaml + 64, ']', 64);
    yaml[128] = '\0';
    gw_yamldoc *doc = parse_ok(yaml);
    cr_assert_eq(doc->root->kind, GW_YAML_SEQ);
    gw_yamldoc_free(doc);
}

Test(yamldoc, buffer_over_the_size_limit_is_refused)
{
    size_t len = GW_YAMLDOC_MAX_BYTES + 1;
    char *buf = malloc(len);
    memset(buf, '#', len);
    gw_yamldoc *doc = NULL;
    cr_assert_eq(gw_yamldoc_parse("t.yaml", buf, len, &diags, &doc), GW_ERR_INVALID);
    free(buf);
    cr_assert_str_eq(only_diag(),
                     "t.yaml: file is too large (1048577 bytes; the limit is 1048576 bytes)");
}

Test(yamldoc, second_document_is_refused)
{
    parse_fails_with("a: 1\n---\nb: 2\n",
                     "t.yaml:2:1: only one YAML document per file is supported");
}

Test(yamldoc, syntax_error_is_located_with_its_context)
{
    parse_fails_with("a: [1, 2\nb: 3\n",
                     "t.yaml:2:2: did not find expected ',' or ']' (while parsing a flow sequence "
                     "at line 1, column 4)");
}

Test(yamldoc, a_tab_used_for_indentation_gets_a_hint)
{
    parse_fails_with("a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token: a "
                                     "tab; YAML forbids tabs for indentation, indent with spaces "
                                     "(while scanning for the next token at line 2, column 1)");
}

Test(yamldoc, a_tab_that_libyaml_names_gets_the_hint_without_naming_it_twice)
{
    parse_fails_with("a:\n  - b\n\t c: 1\n",
                     "t.yaml:3:1: found a tab character that violates indentation: YAML forbids "
                     "tabs for indentation, indent with spaces (while scanning a plain scalar at "
                     "line 2, column 5)");
}

Test(yamldoc, invalid_utf8_is_located_at_the_bad_byte)
{
    parse_fails_with("a: ok\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xff)");
}

Test(yamldoc, custom_tag_is_reported_but_the_tree_is_kept)
{
    gw_yamldoc *doc = parse_ok("a: !secret x\nb: !!binary aGk=\n");
    cr_assert_eq(doc->errors, 2);
    char line[256];
    gw_diag_format(&diags.items[0], line, sizeof line);
    cr_assert_str_eq(line, "t.yaml:1:4: unsupported tag \"!secret\"");
    gw_diag_format(&diags.items[1], line, sizeof line);
    cr_assert_str_eq(line, "t.yaml:2:4: unsupported tag \"!!binary\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, str_tag_makes_a_scalar_a_string)
{
    gw_yamldoc *doc = parse_ok("a: !!str 5\n");
    int64_t v;
    cr_assert_eq(doc->errors, 0);
    cr_assert_not(gw_yamldoc_scalar_int(gw_yamldoc_map_get(doc->root, "a"), &v));
    gw_yamldoc_free(doc);
}

Test(yamldoc, collection_as_a_mapping_key_is_refused)
{
    parse_fails_with("? [a]\n: 1\n", "t.yaml:1:3: mapping keys must be scalars");
}

Test(yamldoc, bool_accepts_only_plain_true_and_false)
{
    gw_yamldoc *doc = parse_ok("[true, false, yes, \"true\", True]");
    const gw_yaml_node *s = doc->root;
    bool b = false;
    cr_assert(gw_yamldoc_get_bool(doc, s->items[0], "x", &b));
    cr_assert(b);
    cr_assert(gw_yamldoc_get_bool(doc, s->items[1], "x", &b));
    cr_assert_not(b);
    cr_assert_not(gw_yamldoc_get_bool(doc, s->items[2], "x", &b));
    cr_assert_not(gw_yamldoc_get_bool(doc, s->items[3], "x", &b));
    cr_assert_not(gw_yamldoc_get_bool(doc, s->items[4], "x", &b));
    cr_assert_eq(diags.n, 3);
    char line[256];
    gw_diag_format(&diags.items[0], line, sizeof line);
    cr_assert_str_eq(line, "t.yaml:1:15: x: expected true or false, got \"yes\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, int_is_range_checked)
{
    gw_yamldoc *doc = parse_ok("[7, 70000]");
    int64_t v = 0;
    cr_assert(gw_yamldoc_get_int(doc, doc->root->items[0], "n", 1, 10, &v));
    cr_assert_eq(v, 7);
    cr_assert_not(gw_yamldoc_get_int(doc, doc->root->items[1], "n", 1, 65535, &v));
    cr_assert_eq(v, 7, "failed getters leave *out untouched");
    cr_assert_str_eq(only_diag(), "t.yaml:1:5: n: 70000 is out of range (1..65535)");
    gw_yamldoc_free(doc);
}

Test(yamldoc, int_overflow_is_not_an_integer)
{
    gw_yamldoc *doc = parse_ok("[9223372036854775807, 9223372036854775808, -9223372036854775808]");
    int64_t v;
    cr_assert(gw_yamldoc_scalar_int(doc->root->items[0], &v));
    cr_assert_eq(v, INT64_MAX);
    cr_assert_not(gw_yamldoc_scalar_int(doc->root->items[1], &v));
    cr_assert(gw_yamldoc_scalar_int(doc->root->items[2], &v));
    cr_assert_eq(v, INT64_MIN);
    gw_yamldoc_free(doc);
}

Test(yamldoc, null_value_is_reported_as_null)
{
    gw_yamldoc *doc = parse_ok("a:\n");
    int64_t v;
    cr_assert_not(gw_yamldoc_get_int(doc, gw_yamldoc_map_get(doc->root, "a"), "a", 0, 1, &v));
    cr_assert_str_eq(only_diag(), "t.yaml:1:3: a: expected an integer, got null");
    gw_yamldoc_free(doc);
}

Test(yamldoc, duration_out_of_range_names_the_bounds)
{
    gw_yamldoc *doc = parse_ok("t: 2h\n");
    uint64_t ms;
    cr_assert_not(
        gw_yamldoc_get_duration(doc, gw_yamldoc_map_get(doc->root, "t"), "t", 1, 3600000, &ms));
    cr_assert_str_eq(only_diag(), "t.yaml:1:4: t: 2h is out of range (1ms..1h)");
    gw_yamldoc_free(doc);
}

Test(yamldoc, duration_reads_each_unit)
{
    gw_yamldoc *doc = parse_ok("[250ms, 5s, 2m, 1h]");
    const uint64_t want[] = {250, 5000, 120000, 3600000};
    for (size_t i = 0; i < 4; i++) {
        uint64_t ms = 0;
        cr_assert(gw_yamldoc_get_duration(doc, doc->root->items[i], "d", 0, UINT64_MAX, &ms));
        cr_assert_eq(ms, want[i]);
    }
    gw_yamldoc_free(doc);
}

Test(yamldoc, enum_lists_the_allowed_words)
{
    static const char *const names[] = {"json", "text", NULL};
    gw_yamldoc *doc = parse_ok("[text, xml]");
    int v = -1;
    cr_assert(gw_yamldoc_get_enum(doc, doc->root->items[0], "log.format", names, &v));
    cr_assert_eq(v, 1);
    cr_assert_not(gw_yamldoc_get_enum(doc, doc->root->items[1], "log.format", names, &v));
    cr_assert_str_eq(only_diag(), "t.yaml:1:8: log.format: expected one of json|text, got \"xml\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, unknown_key_suggests_a_close_one)
{
    static const char *const keys[] = {"event", "to", "retry", NULL};
    gw_yamldoc *doc = parse_ok("event: a\ntoo: []\n");
    cr_assert_not(gw_yamldoc_check_keys(doc, doc->root, "route \"a\"", keys));
    cr_assert_str_eq(only_diag(),
                     "t.yaml:2:1: route \"a\": unknown key \"too\" (did you mean \"to\"?)");
    gw_yamldoc_free(doc);
}

Test(yamldoc, unknown_key_far_from_all_others_gets_no_suggestion)
{
    static const char *const keys[] = {"event", "to", "retry", NULL};
    gw_yamldoc *doc = parse_ok("destinations: []\n");
    cr_assert_not(gw_yamldoc_check_keys(doc, doc->root, NULL, keys));
    cr_assert_str_eq(only_diag(), "t.yaml:1:1: unknown key \"destinations\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, missing_required_key_is_located_at_the_mapping)
{
    gw_yamldoc *doc = parse_ok("queues:\n  - durable: true\n");
    const gw_yaml_node *q = gw_yamldoc_map_get(doc->root, "queues")->items[0];
    cr_assert_null(gw_yamldoc_map_require(doc, q, "queues[0]", "name"));
    cr_assert_str_eq(only_diag(), "t.yaml:2:5: queues[0]: missing required key \"name\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, name_must_be_non_empty_and_bounded)
{
    gw_yamldoc *doc = parse_ok("[\"\", abcdef]");
    const char *s = NULL;
    cr_assert_not(gw_yamldoc_get_name(doc, doc->root->items[0], "name", 5, &s));
    cr_assert_not(gw_yamldoc_get_name(doc, doc->root->items[1], "name", 5, &s));
    cr_assert_eq(diags.n, 2);
    char line[256];
    gw_diag_format(&diags.items[0], line, sizeof line);
    cr_assert_str_eq(line, "t.yaml:1:2: name: must not be empty");
    gw_diag_format(&diags.items[1], line, sizeof line);
    cr_assert_str_eq(line, "t.yaml:1:6: name: longer than 5 bytes");
    gw_yamldoc_free(doc);
}

Test(yamldoc, string_with_an_escaped_nul_is_refused)
{
    gw_yamldoc *doc = parse_ok("a: \"x\\0y\"\n");
    const char *s;
    cr_assert_not(gw_yamldoc_get_str(doc, gw_yamldoc_map_get(doc->root, "a"), "a", &s));
    cr_assert_str_eq(only_diag(), "t.yaml:1:4: a: contains a NUL byte");
    gw_yamldoc_free(doc);
}

Test(yamldoc, messages_escape_control_characters_in_values)
{
    gw_yamldoc *doc = parse_ok("a: \"\\e[31mred\"\n");
    bool b;
    cr_assert_not(gw_yamldoc_get_bool(doc, gw_yamldoc_map_get(doc->root, "a"), "a", &b));
    cr_assert_str_eq(only_diag(), "t.yaml:1:4: a: expected true or false, got \"\\x1b[31mred\"");
    gw_yamldoc_free(doc);
}

Test(yamldoc, diagnostics_sort_into_file_order)
{
    gw_yamldoc *doc = parse_ok("a: 1\nb: 2\n");
    gw_yamldoc_error(doc, doc->root->items[1], "second");
    gw_yamldoc_error(doc, doc->root->items[0], "first");
    gw_yamldoc_sort_diags(doc);
    cr_assert_str_eq(diags.items[0].msg, "first");
    cr_assert_str_eq(diags.items[1].msg, "second");
    gw_yamldoc_free(doc);
}

Test(yamldoc, directory_is_not_a_regular_file)
{
    char *buf = NULL;
    size_t len = 0;
    cr_assert_eq(gw_yamldoc_read_file("tests", &buf, &len, &diags), GW_ERR_INVALID);
    cr_assert_null(buf);
    cr_assert_str_eq(only_diag(), "tests: not a regular file");
}

Test(yamldoc, free_of_null_is_a_no_op)
{
    gw_yamldoc_free(NULL);
}
