#!/usr/bin/env python3
"""Writes tests/data/tokenizer/hard_strings.jsonl: strings that stress byte-level BPE tokenizers
(whitespace runs, digits, contractions, code, many scripts, emoji, combining marks, special-token
texts). One JSON string per line, valid UTF-8. Deterministic: running it twice gives the same file."""

import json
import os
import random
import sys

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "tokenizer", "hard_strings.jsonl")


def whitespace():
    s = ["", " ", "  ", "   ", "    ", " " * 17, "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r",
         "\r\r\n", " \n", "\n ", " \n ", "\t\n", "\n\t", " \t \n \r\n ", "a b", "a  b", "a   b", "a    b",
         "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\r\nb", "a \nb", "a\n b", "a \n b", "a\t \nb", " leading",
         "  two leading", "trailing ", "trailing  ", "trailing\n", "trailing \n", "both sides  ",
         "\n\nstarts with newlines", "ends with newlines\n\n\n", "mixed \t\r\n whitespace \t\r\n",
         "line one\nline two\r\nline three\rline four", "    indented code\n        more indented",
         "tab\tseparated\tvalues\t1\t2", "x" + " " * 40 + "y", "\u00a0non-breaking\u00a0space",
         "ideographic\u3000space", "em\u2003space and thin\u2009space", "line\u2028separator",
         "paragraph\u2029separator", "next\u0085line", "mongolian\u180evowel separator",
         "narrow\u202fno-break", "vertical\x0btab and form\x0cfeed", "ogham\u1680space",
         "  \u00a0  \u3000 mixed unicode spaces \u2002\u2003 ", "word \n\n\n\n\n word", " \r\n \r\n ",
         "end with space ", " ", "\n \n \n", "   \n   \n"]
    return s


def numbers():
    s = ["1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234",
         "3.14159", "2.718281828459045", "1,000,000", "1.000.000,00", "-42", "+7", "0", "00", "007",
         "0x1F", "0xDEADBEEF", "1e10", "6.022e23", "1/2", "50%", "$19.99", "\u20ac100", "\u00a3 5",
         "\u00a53000", "10:30", "2024-01-15", "12/31/1999", "v1.2.3", "192.168.0.1", "+1 (555) 123-4567",
         "\u0661\u0662\u0663", "\u0967\u0968\u0969", "\uff11\uff12\uff13", "\u00bd \u00bc \u00be",
         "\u2460\u2461\u2462", "\u2167 roman", "x\u00b2 + y\u00b3", "3rd 21st 42nd 100th",
         "9" * 30, "1 2 3 4 5 6 7 8 9 10", "a1b2c3", "abc123def456", "year2024", "24/7",
         "1st place", "call 911", "room 101, floor 3", "12 345 678", "3,14", "1_000_000", "0b1010",
         "1.2.3.4.5", "99.9%", "-0.0001", "\u221e", "NaN", "10\u00d710", "\u00b130"]
    return s


def contractions():
    s = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "THEY'RE",
         "WE'VE", "I'M", "YOU'LL", "HE'D", "It'S", "Don'T", "can't", "won't", "shouldn't've",
         "y'all", "o'clock", "rock 'n' roll", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "' s",
         "''", "'''", "'hello'", "\"quoted\"", "it\u2019s", "don\u2019t", "they\u2019re",
         "\u2018single\u2019 \u201cdouble\u201d", "James's book", "the students' papers",
         "'Twas the night", "ma'am", "'S 'T 'RE 'VE 'M 'LL 'D", "x'sy", "l'homme", "aujourd'hui",
         "'\u017f", "it's'", "'1", "'\u00e9t\u00e9"]
    return s


def code():
    s = [
        "def f(x):\n    return x * 2\n",
        "for i in range(10):\n\tprint(i, end='')\n",
        "class Foo(Bar):\n    def __init__(self, *args, **kwargs):\n        super().__init__()\n",
        "if (a && b || !c) { return; }",
        "#include <iostream>\nint main() {\n  std::cout << \"hi\" << std::endl;\n}\n",
        "template <typename T> T max(T a, T b) { return a > b ? a : b; }",
        "std::vector<std::pair<int, std::string>> v{{1, \"a\"}};",
        "x += 1; y -= 2; z *= 3; w /= 4; q %= 5; r <<= 1; s >>= 2; t ^= u; p |= 0x0F;",
        "a->b->c; ::std::move(x); ptr != nullptr && *ptr == 0",
        "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "[{\"id\":1,\"name\":\"x\"},{\"id\":2,\"name\":\"y\"}]",
        "<html><head><title>Page</title></head><body><p class=\"x\">Hi &amp; bye</p></body></html>",
        "<div id='main'>\n  <span>text</span>\n</div>",
        "<!-- comment --> <br/> &lt;tag&gt; &#x27; &nbsp;",
        "^\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*=\\s*(\\d+(?:\\.\\d+)?)$",
        "/(?<year>\\d{4})-(?<month>\\d{2})/g",
        "grep -rn \"TODO\" src/ | awk -F: '{print $1}' | sort -u",
        "ls -la ~/.config && cd /tmp && rm -rf ./build/*",
        "export PATH=$HOME/bin:$PATH; echo ${VAR:-default} $((1+2))",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
        "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }",
        "const f = async (x) => { await g(x ?? 0); return x?.y; };",
        "lambda x: x**2 if x > 0 else -x",
        "print(f\"{name!r:>10} {value:.2f}\")",
        "@decorator\ndef wrapped(): pass",
        "while True:\n    try:\n        break\n    except Exception as e:\n        raise\n",
        "\t\tdeeply\n\t\t\tindented\n",
        "    \n    \n    x = 1",
        "a==b!=c<=d>=e<f>g",
        "i++; --j; k**=2; ~x; !y; a?b:c;",
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n",
        "// comment\n/* block\n   comment */\n",
        "0x7f\\x00\\n\\t\\\\\\\"",
        "key: value\nlist:\n  - one\n  - two\n",
        "[section]\nname = \"value\"\n",
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old\n+new\n",
        "```python\nprint('hi')\n```",
        "| col1 | col2 |\n|------|------|\n| a    | b    |",
        "snake_case_name camelCaseName PascalCaseName SCREAMING_CASE kebab-case-name",
        "__init__ __main__ _private __dunder__",
        "http://example.com/path?query=1&other=two#fragment",
        "https://www.example.org:8080/a/b/c.html",
        "ftp://user:pass@host.example.com/file.txt",
        "mailto:someone@example.com",
        "user.name+tag@sub.example.co.uk",
        "first.last@example.com, other_person@test.io",
        "C:\\Users\\Name\\Documents\\file.txt",
        "/usr/local/lib/python3.12/site-packages/",
        "www.example.com",
        "@user #hashtag $TICKER %percent ^caret &amp *star",
        "!!!???...,,,;;;:::",
        "...", "\u2026", "---", "\u2014\u2014", "***bold*** __under__ ~~strike~~",
        "(((nested)))", "[[wiki link]]", "{{template}}", "<<<>>>",
        "a.b.c.d", "e.g. i.e. etc. Mr. Dr.",
    ]
    return s


def scripts():
    s = [
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
        "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
        "\u4e2d\u6587English\u6df7\u5408mixed\u6587\u672ctext",
        "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u4f53\u4e2d\u6587",
        "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a",
        "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",
        "\u543e\u8f29\u306f\u732b\u3067\u3042\u308b\u3002\u540d\u524d\u306f\u307e\u3060\u7121\u3044\u3002",
        "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85", "\u30fc\u30fb\u300c\u300d\u3001\u3002",
        "\uc548\ub155\ud558\uc138\uc694", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
        "\u1100\u1161\u11a8 (conjoining jamo)",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0644\u063a\u0629 \u062c\u0645\u064a\u0644\u0629",
        "\u0643\u064e\u062a\u064e\u0628\u064e (with harakat)",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u05e2\u05b4\u05d1\u05b0\u05e8\u05b4\u05d9\u05ea",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
        "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a",
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u03b1\u03b2\u03b3 \u0394\u0395\u0396",
        "\u0540\u0561\u0575\u0565\u0580\u0565\u0576", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8",
        "\u12a0\u121b\u122d\u129b", "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd", "\u09ac\u09be\u0982\u09b2\u09be",
        "\u0c24\u0c46\u0c32\u0c41\u0c17\u0c41", "\u0d2e\u0d32\u0d2f\u0d3e\u0d33\u0d02",
        "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42", "\u1019\u103c\u1014\u103a\u1019\u102c",
        "\u1781\u17d2\u1798\u17c2\u179a", "\u0ea5\u0eb2\u0ea7",
        "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u", "Vi\u00ea\u0323t Nam (decomposed)",
        "Stra\u00dfe gr\u00fc\u00dfen \u00c4\u00d6\u00dc", "fran\u00e7ais \u00e9l\u00e8ve na\u00efve",
        "espa\u00f1ol \u00bfpor qu\u00e9? \u00a1s\u00ed!", "portugu\u00eas a\u00e7\u00e3o",
        "polski \u017c\u00f3\u0142\u0107", "\u010de\u0161tina \u0159\u00ed\u010d", "T\u00fcrk\u00e7e \u0131\u0130\u015f\u011f",
        "\u00cdslenska \u00fe\u00f0", "Dansk \u00e6\u00f8\u00e5", "Rom\u00e2n\u0103 \u0219\u021b",
        "\u0130stanbul \u0131s\u0131",
        "English \u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940",
        "abc\u0430\u0431\u0432\u03b1\u03b2\u03b3",
        "\U00020000\U0002a6d6 (CJK extension B)", "\U0001d400\U0001d401 math bold",
        "\U00010000 linear b", "\ud7a3\u4e00\u9fa5",
    ]
    return s


def emoji():
    s = ["\U0001f600", "\U0001f602\U0001f602\U0001f602", "Hello \U0001f44b world \U0001f30d",
         "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f469\u200d\U0001f4bb",
         "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea",
         "\U0001f44d\U0001f3fb\U0001f44d\U0001f3fc\U0001f44d\U0001f3fd\U0001f44d\U0001f3fe\U0001f44d\U0001f3ff",
         "\u2764\ufe0f", "\u2764", "\u263a\ufe0f", "1\ufe0f\u20e3", "#\ufe0f\u20e3",
         "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "\U0001f9d1\u200d\U0001f91d\u200d\U0001f9d1", "\U0001f408\u200d\u2b1b",
         "emoji\U0001f525at\U0001f525end\U0001f525", "\U0001f4a9 happens", "\u2603\u2744\u2728",
         "\U0001f926\U0001f3fd\u200d\u2642\ufe0f", "text\U0001f600text", "\U0001f600 \U0001f600  \U0001f600",
         "\U0001fae0\U0001fae8 (new emoji)", "\u00a9\u00ae\u2122"]
    return s


def combining():
    s = ["e\u0301", "\u00e9", "cafe\u0301", "caf\u00e9", "n\u0303", "\u00f1", "a\u0308o\u0308u\u0308",
         "\u00e4\u00f6\u00fc", "A\u030a", "\u00c5", "\u212b (angstrom sign)", "\u2126 (ohm sign)",
         "\u1e9b\u0323", "q\u0307\u0323", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u0334\u0335\u031c\u0330\u0354L",
         "e\u0301\u0301\u0301", "\u0301 leading combining", " \u0301", "x\u20d7",
         "\u1100\u1161", "\uac00", "\ufb01 ligature", "\u2163", "\uff21\uff22\uff23 fullwidth",
         "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4a", "o\u031b\u0323", "\u01a1\u0323",
         "\u1ed9", "o\u0302\u0323", "\u0041\u030a\u0301", "\u00c5\u0301",
         "zero\u200bwidth\u200bspace", "zero\u200cwidth\u200cnon-joiner", "zero\u200dwidth\u200djoiner",
         "\ufeffbyte order mark", "word\u2060joiner", "soft\u00adhyphen", "left\u200eto\u200fright",
         "\u202eright-to-left override\u202c", "invisible\u2062times", "\u034f grapheme joiner",
         "variation\ufe0eselector", "\U000e0001 tag", "\ue000 private use", "\U000f0000 plane 15",
         "\ufffd replacement char", "\ufffe\uffff noncharacters", "\x00 nul \x01 \x1f \x7f controls",
         "bell\x07 escape\x1b[31m red\x1b[0m"]
    return s


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|python_tag|>",
            "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>",
            "<think>", "</think>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
            "<|fim_suffix|>", "<|vision_start|>", "<|image_pad|>", "<|box_start|>", "<|object_ref_end|>",
            "<tool_response>", "<|repo_name|>", "<|file_sep|>"]


def specials():
    s = list(SPECIALS)
    s += ["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
          "<|start_header_id|>assistant<|end_header_id|>\n\n",
          "<think>\nLet me think.\n</think>\n\nThe answer is 42.",
          "text<|endoftext|>more text", "text <|endoftext|> more text", "text  <|endoftext|>  more",
          "\n<|im_end|>\n", "<|im_end|><|im_end|>", "<|im_start|><|im_start|>assistant",
          "<|im_", "<|im_start", "<|im_start|", "<|endoftext", "|>", "<|", "<||>", "<|unknown|>",
          "<|begin_of_text", "<|eot_id", "<think", "</think", "<thinking>", "</ think>",
          "<|im_start|>>", "<<|im_start|>", "<|<|im_end|>|>", "x<think>y</think>z",
          "word<|eot_id|>word", "<|eot_id|>\n", " <|eot_id|> ", "<|EOT_ID|>", "<|Im_Start|>",
          "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
          "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
          "<|reserved_special_token_0|><|reserved_special_token_1|>", "<|reserved_special_token_999|>",
          "<s></s><unk><pad>", "[CLS] [SEP] [MASK]", "<|python_tag|>print(1)<|eom_id|>",
          "\u00e9<|im_end|>\u00e9", "\u4f60\u597d<|endoftext|>\u4e16\u754c", "\U0001f600<|eot_id|>\U0001f600",
          "e\u0301<|im_start|>e\u0301"]
    return s


def long_strings():
    rng = random.Random(1234)
    s = ["a" * 300, "ab" * 200, "abc" * 150, "Supercalifragilisticexpialidocious" * 5,
         "pneumonoultramicroscopicsilicovolcanoconiosis",
         "Rindfleischetikettierungs\u00fcberwachungsaufgaben\u00fcbertragungsgesetz",
         "\u00e9" * 200, "\u4e2d" * 150, "\U0001f600" * 60, " " * 500, "\n" * 200, "\t" * 100,
         ". " * 150, "-" * 200, "=" * 120, "0123456789" * 20, "a1" * 100, "x y " * 100,
         "A" * 100 + "a" * 100, "aaaaaaaaaa bbbbbbbbbb cccccccccc " * 10]
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(6):
        s.append("".join(rng.choice(letters) for _ in range(rng.randint(50, 200))))
    alphabet = ("abcXYZ 0189 \t\n.,;'\"-_()[]{}<>/\\|!?@#$%^&*+=~`\u00e9\u00fc\u00df\u4e2d\u6587\u3042\uac00"
                "\u0627\u05d0\u0905\u0e01\u0416\u03a9\U0001f600\u200d\u0301\u00a0\u3000\r")
    for _ in range(40):
        s.append("".join(rng.choice(alphabet) for _ in range(rng.randint(5, 80))))
    pieces = SPECIALS + ["hello", " world", "\n", "  ", "123", "\u00e9", "\U0001f600", "'s", "<|", "|>", "<"]
    for _ in range(20):
        s.append("".join(rng.choice(pieces) for _ in range(rng.randint(2, 10))))
    return s


def prose():
    return [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, world! How are you today?",
        "She said, \"I'll be there at 5 p.m.\" and left.",
        "In 1492, Columbus sailed the ocean blue; in 1969, Apollo 11 landed on the Moon.",
        "E = mc\u00b2 and a\u00b2 + b\u00b2 = c\u00b2",
        "\u2200x \u2208 \u211d: x\u00b2 \u2265 0 \u2227 \u2203y (y > x) \u21d2 \u2211\u1d62 a\u1d62 \u2264 \u222b f(x) dx",
        "\u03c0 \u2248 3.14159, \u221a2 \u2248 1.41421, \u2205 \u2282 \u2115 \u2286 \u2124",
        "\u2190 \u2191 \u2192 \u2193 \u2194 \u21d4 \u27f6",
        "\u00bc cup sugar, \u00bd tsp salt, 2\u00be cups flour",
        "It was the best of times, it was the worst of times.",
        "UPPERCASE lowercase MiXeD cAsE",
        "Don't stop believin'! Hold on to that feelin'.",
        "Q: What's 2+2?\nA: It's 4.",
        "Dear Sir/Madam,\n\nThank you for your letter of 3 March.\n\nYours faithfully,\nJ. Smith",
        "  Leading and trailing spaces around prose.  ",
        "Mr. O'Neil's dog's bone's gone.",
        "A\u00b7B \u00d7 C \u00f7 D \u2212 E \u00b1 F",
        "temperature: 25\u00b0C (77\u00b0F)",
        "\u00abguillemets\u00bb \u201equotes\u201c \u300cbrackets\u300d \u3010lenticular\u3011",
        "naive vs. na\u00efve, cooperate vs. co\u00f6perate",
    ]


def main():
    groups = [whitespace(), numbers(), contractions(), code(), scripts(), emoji(), combining(),
              specials(), long_strings(), prose()]
    seen = set()
    out = []
    for group in groups:
        for text in group:
            if text in seen:
                continue
            seen.add(text)
            text.encode("utf-8")  # no lone surrogates
            out.append(text)
    path = sys.argv[1] if len(sys.argv) > 1 else OUT
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for text in out:
            f.write(json.dumps(text, ensure_ascii=False) + "\n")
    print(f"{len(out)} strings -> {path}")


if __name__ == "__main__":
    main()
