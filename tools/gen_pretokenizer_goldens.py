#!/usr/bin/env python3
"""Regenerates tests/data/pretokenizers.json: the token ids the reference tokenizer (llama.cpp's
llama-tokenize) gives for a set of test strings, for one synthetic byte-level BPE vocabulary per
tokenizer.ggml.pre name. tests/test_pretokenizers.cpp writes the same vocabularies
(tests/synthetic_bpe_vocab.hpp) and checks that chorus gives exactly these ids.

Usage:
    tools/gen_pretokenizer_goldens.py --llama-tokenize /path/to/llama.cpp/build/bin/llama-tokenize \
        [--shared /work/shared] [--out tests/data/pretokenizers.json]

Steps: compile tools/gen_pretokenizer_goldens.cpp (chorus's GGUF writer + the synthetic vocab
header) into a temporary directory, write NAME.gguf for every name in PRE_NAMES, then run
    llama-tokenize -m NAME.gguf -f TEXT_FILE --ids --no-escape --log-disable --no-bos --no-parse-special
once per (vocab, text). The texts are the inputs of the golden vocab tests
(SHARED/golden/tokenizer/*.gguf.inp and the valid-UTF-8 cases of *.extra.json) plus HARD_CASES
below and a few random strings (fixed seed). A name the reference rejects is reported and left out.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

PRE_NAMES = [
    "gpt-2", "llama-bpe", "dbrx", "qwen2", "stablelm2", "deepseek-coder", "deepseek-llm", "falcon",
    "smollm", "starcoder", "command-r", "tekken", "default",
]

HARD_CASES = [
    # contractions, both cases
    "it's can't we're I've I'm we'll I'd",
    "IT'S CAN'T WE'RE I'VE I'M WE'LL I'D",
    "It'S Can'T We'Re I'Ve We'Ll I'D we'RE they'lL",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
    "''s '''t 'x 'ss 'lll ' s 're'd",
    "rock'n'roll O'Neil McDonald's HELLO'S",
    "don\u2019t it\u2019s",
    "'", "''", "'s", " 's", "x'", "'\n's",
    # digit runs
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
    " 1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890",
    "a1b22c333d4444e55555f",
    "x=12345678;y=9",
    "3.14159 1,000,000 -42 +7 1e10 0x1F",
    "\u0663\u0664\u0665 \u0661\u0662",  # Arabic-Indic digits
    "\uff11\uff12\uff13\uff14 \u2460\u2461\u2462 \u216b \u00bd \u00b2\u00b3",
    "v1.2.3-beta C++20 covid-19 3rd 21st 5G",
    # CJK, Hangul, kana
    "\u4f60\u597d\u4e16\u754c",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587",
    "\u4e2d\u6587\uff0c\u6807\u70b9\u3002\u518d\u89c1\uff01",
    " \u4e2d\u6587 abc\u4e2d\u6587def 123\u4e2d",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\ud55c\uad6d\uc5b4abc123\ud55c",
    "\u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a\u3002",
    # emoji and symbols
    "\U0001f642", "a\U0001f642b", " \U0001f642 \U0001f642", "\U0001f680\U0001f680\U0001f680",
    "\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "\u00a9\u00ae\u2122 \u20ac\u00a3\u00a5 \u00b0\u00b1\u00d7\u00f7 \u00a7\u00b6",
    # accented letters, other scripts, combining marks
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcn\u00efc\u00f6d\u00e9",
    "\u00c0\u00c9\u00ce\u00d5\u00dc \u00e0\u00e9\u00ee\u00f5\u00fc \u015e\u0130\u011e \u00df\u1e9e",
    "cafe\u0301 e\u0301cole A\u030a",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0939\u093f\u0928\u094d\u0926\u0940",
    "\ufb01 \u01c5 \u01c8 \u02b0\u02b2 \u00aa\u00ba",
    # mixed case (tekken splits on case)
    "HTTPServer", "camelCase", "XMLHttpRequest", "getHTTPResponseCode", "iPhone iOS macOS",
    "ABCdef aBC ABC abc A a Ab aB",
    "\u00c9cole \u00c9COLE \u00e9cole \u00c9coleNormale na\u00efveBayes",
    "\u01c5ungla \u0391\u03b2\u0393\u03b4 \u0414\u043e\u0431\u0440\u044b\u0439\u0414\u0435\u043d\u044c",
    "snake_case kebab-case PascalCase SCREAMING_CASE",
    "x2Y3z ABC123def456 a1B",
    # whitespace
    " ", "  ", "   word", "\t\tword", "  \n  word", "a  b", "a   \n\n  b", "word   ", "word \n",
    "word\t", "\n\n\nword", "\r\n", "line1\r\nline2\r\n", "a\r\n\r\nb", "\n \n", " \t \n", "\r \r",
    "\t", "\t\t \t", "a \t b", "  \t\n  \t",
    "\u00a0word \u00a0 x", "\u3000word\u3000\u3000", "a\u2028b\u2029c", "x\u000b\u000cy",
    "a\u001c\u001d\u001e\u001fb", "a\u0085b", "\u2003\u2009thin",
    "end with space ", "end with two  ", "end with newline\n", "end with tab\t",
    # punctuation runs, slashes
    "!!!", "...", "?!", " --- ", "a.b.c", "(a)", "[x]{y}",
    "@user #tag $5 %20 ^ & * _ + = | \\ ~ `",
    "<<>> a->b x==y x!=y a<=b",
    "/usr/bin a/b/c //comment http://x.y/z?q=1 C:\\dir\\file",
    ".\n", ".\r\n", "!/\n", "...\n\n", "?\r\n/", "a/\nb", " /\n/x", "Foo/Bar/\nBaz",
    "\u00abquoted\u00bb \u00bfQu\u00e9? \u00a1Hola!",
    "\u201cquoted\u201d \u2018single\u2019 \u2014em dash\u2013 \u2026",
    "\u3002\u3001\uff0c\uff01\uff1f \u00b7 \u203b",
    "$$$ +++ <=> ^^^ ~~~ ||| ``` === ###",
    # code and mixed text
    "def foo(x):\n    return x+1\n",
    "int main() {\n\treturn 0;\n}\n",
    "if (a && b) || c: x = [1, 2, 3]",
    "<html><body>Hi</body></html>",
    "#include <stdio.h>\n",
    "The year 2024 was great! Price: $1,234.56 user@example.com e.g. i.e.",
    "Hello World!\nHow are you?\r\n\tFine, thanks.  ",
    # code points of Unicode 15.0/15.1 (the reference's tables), unassigned and private use
    "Kawi \U00011f04\U00011f05\U00011f06 \U00011f50\U00011f51\U00011f52\U00011f53 \U00011f43\U00011f44!",
    "CJK-H \U00031350\U00031351\U00031352 CJK-I \U0002ebf0\U0002ebf1 x\U0002ebf0y 1\U00031350",
    "\U0001d2c0\U0001d2c1\U0001d2c2\U0001d2c3\U0001d2c4 \U0001e4d0\U0001e4d1 \U0001e4f0\U0001e4f1\U0001e4f2\U0001e4f3",
    "a\u0378b \ue000\ue001 \U000e0001x \u1c89y \U0010ffff z\ufeff",
]

# Random strings over an alphabet of the characters the patterns treat differently (fixed seed,
# so the set is reproducible); each exercises many word boundaries at once.
RANDOM_ALPHABET = (
    list("aAbBsStTzZmdlrve") + list("0123456789") + [" "] * 6 + ["\t", "\n", "\r", "\r\n", "\v", "\f", "\x1c"]
    + list("'''!?.,;:-_/\\()[]{}@#$%^&*+=<>|~`\"")
    + ["\u00e9", "\u00c9", "\u00df", "\u03a9", "\u03c9", "\u65e5", "\u4e2d", "\ud55c", "\u3042", "\u30ab", "\u0301",
       "\U0001f642", "\u2764", "\u00a0", "\u3000", "\u0085", "\u2028", "\u0663", "\u2460", "\u216b", "\uff11",
       "\u00bd", "\u201c", "\u3002", "\uff01", "\u00b7", "\u00a9", "\u01c5", "\u02b0", "\u00aa", "\u0939",
       "\u093f", "\u2019", "\uff21", "\U00031350", "\U00011f50", "\ue000", "\u200b"])


def random_cases(count=12, max_length=60, seed=20250):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(8, max_length))) for _ in range(count)]


def golden_texts(shared):
    texts = []
    inp = pathlib.Path(shared) / "golden" / "tokenizer" / "ggml-vocab-gpt-2.gguf.inp"
    data = inp.read_text(encoding="utf-8")
    sep = "\n__ggml_vocab_test__\n"
    parts = data.split(sep)
    texts.extend(parts[:-1])  # the file ends with a separator
    extra = json.loads((inp.parent / "ggml-vocab-gpt-2.extra.json").read_text(encoding="utf-8"))
    for case in extra["cases"]:
        raw = bytes.fromhex(case["text_hex"])
        try:
            texts.append(raw.decode("utf-8", errors="strict"))
        except UnicodeDecodeError:
            pass  # invalid UTF-8 stays with the golden vocab tests
    return texts


def tokenize(binary, vocab, text_file):
    out = subprocess.run(
        [binary, "-m", str(vocab), "-f", str(text_file), "--ids", "--no-escape", "--log-disable", "--no-bos",
         "--no-parse-special"],
        check=True, capture_output=True, text=True)
    line = out.stdout.strip().splitlines()[-1]
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-tokenize", required=True, help="path to a locally built llama-tokenize")
    ap.add_argument("--shared", default=os.environ.get("CHORUS_SHARED_DIR", "/work/shared"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "pretokenizers.json"))
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    texts = []
    for t in golden_texts(args.shared) + HARD_CASES + random_cases():
        if "\0" in t:
            sys.exit("a test text contains NUL")
        if t not in texts:
            texts.append(t)

    with tempfile.TemporaryDirectory(prefix="chorus-pretok-") as tmp:
        tmp = pathlib.Path(tmp)
        gen = tmp / "gen_vocab"
        subprocess.run([args.cxx, "-std=c++20", "-O1", f"-I{ROOT / 'include'}", f"-I{ROOT / 'tests'}",
                        str(ROOT / "tools" / "gen_pretokenizer_goldens.cpp"), "-o", str(gen)], check=True)
        subprocess.run([str(gen), str(tmp / "vocab")] + PRE_NAMES, check=True)
        text_files = []
        for i, t in enumerate(texts):
            p = tmp / f"text{i}.txt"
            p.write_bytes(t.encode("utf-8"))
            text_files.append(p)

        vocabs = {}
        for name in PRE_NAMES:
            vocab = tmp / "vocab" / f"{name}.gguf"
            try:
                tokenize(args.llama_tokenize, vocab, text_files[0])
            except subprocess.CalledProcessError as e:
                print(f"{name}: the reference does not load it, left out ({e.stderr.strip()[-200:]})", file=sys.stderr)
                continue
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                vocabs[name] = list(pool.map(lambda f: tokenize(args.llama_tokenize, vocab, f), text_files))
            print(f"{name}: {len(texts)} texts", file=sys.stderr)

    producer = subprocess.run(["git", "-C", str(pathlib.Path(args.llama_tokenize).resolve().parent), "describe",
                               "--always"], capture_output=True, text=True).stdout.strip()
    lines = ["{",
             ' "schema": "chorus-pretokenizer-goldens/1",',
             f' "producer": {json.dumps("llama-tokenize, llama.cpp " + (producer or "unknown"))},',
             ' "command": "llama-tokenize -m NAME.gguf -f TEXT_FILE --ids --no-escape --log-disable --no-bos --no-parse-special",',
             ' "vocab": "tests/synthetic_bpe_vocab.hpp, tokenizer.ggml.pre = NAME",',
             ' "texts": [']
    lines.append(",\n".join("  " + json.dumps(t, ensure_ascii=False) for t in texts))
    lines.append(" ],")
    lines.append(' "ids": {')
    blocks = []
    for name, ids in vocabs.items():
        rows = ",\n".join("   " + json.dumps(row, separators=(",", ":")) for row in ids)
        blocks.append(f"  {json.dumps(name)}: [\n{rows}\n  ]")
    lines.append(",\n".join(blocks))
    lines.append(" }")
    lines.append("}")
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(texts)} texts x {len(vocabs)} vocabularies", file=sys.stderr)


if __name__ == "__main__":
    main()
