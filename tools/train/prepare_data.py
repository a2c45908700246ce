"""The corpus: the King James Bible from Debian's `bible-kjv` (program) and
`bible-kjv-text` (data) packages, one chapter per document, one verse per line.
Every 20th chapter is held out. Part of the training chapters also become chats
in DeepSeek-V3's template: a verse's opening as the user turn, the rest of the
verse (and sometimes the next one) as the assistant's answer.

Writes WORK/train.txt, WORK/heldout.txt (chapters separated by blank lines) and
WORK/chats.jsonl ({"user": ..., "assistant": ...} per line).
"""

import argparse
import json
import os
import random
import re
import subprocess

HEADER = re.compile(r"^(?:[1-3] )?[A-Z][A-Za-z ]+ \d+$")
VERSE = re.compile(r"^\s+(\d+) (.*)$")


def read_bible():
    text = subprocess.run(["bible", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
    chapters, verses, prev_blank = [], None, True
    for line in text.splitlines():
        if not line.strip():
            prev_blank = True
            continue
        if prev_blank and HEADER.match(line):
            if verses:
                chapters.append(verses)
            verses = []
        elif (m := VERSE.match(line)) and verses is not None:
            verses.append(m.group(2).strip())
        elif verses:
            verses[-1] += " " + line.strip()
        prev_blank = False
    if verses:
        chapters.append(verses)
    return chapters


def chats(chapters, rng, per_chapter):
    out = []
    for verses in chapters:
        for _ in range(per_chapter):
            i = rng.randrange(len(verses))
            words = verses[i].split()
            if len(words) < 6:
                continue
            cut = rng.randint(2, min(12, len(words) - 3))
            answer = " ".join(words[cut:])
            if i + 1 < len(verses) and rng.random() < 0.4:
                answer += "\n" + verses[i + 1]
            out.append({"user": " ".join(words[:cut]), "assistant": answer})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chats-per-chapter", type=int, default=6)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    chapters = read_bible()
    if len(chapters) != 1189:
        raise SystemExit(f"expected the 1189 chapters of the KJV, read {len(chapters)}")
    train = [c for k, c in enumerate(chapters) if k % 20 != 10]
    held = [c for k, c in enumerate(chapters) if k % 20 == 10]
    for name, part in (("train.txt", train), ("heldout.txt", held)):
        with open(os.path.join(a.work, name), "w", encoding="utf-8") as f:
            f.write("\n\n".join("\n".join(v) for v in part) + "\n")
    rng = random.Random(a.seed)
    with open(os.path.join(a.work, "chats.jsonl"), "w", encoding="utf-8") as f:
        for c in chats(train, rng, a.chats_per_chapter):
            f.write(json.dumps(c) + "\n")
    print(f"prepare_data: {len(train)} training chapters, {len(held)} held out")


if __name__ == "__main__":
    main()
