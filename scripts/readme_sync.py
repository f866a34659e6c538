#!/usr/bin/env python3
"""readme_sync.py - keeps README.md's measured figures equal to the results files.

The README quotes results between markers, never by hand:

    <!-- BEGIN results/sweep.md#irreg -->
    ... (the "## irreg" section of results/sweep.md, verbatim) ...
    <!-- END results/sweep.md#irreg -->

Without "#section" the whole file is quoted; a .txt or .csv file is quoted as a code block.

    python3 scripts/readme_sync.py          # rewrites the quoted blocks from the files
    python3 scripts/readme_sync.py --check  # exit 1 naming every stale block, and every
                                            # percentage, 4+-digit number or decimal in the
                                            # README's own prose (outside code) that no
                                            # results file contains (a figure typed by hand)

Standard library only.
"""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- BEGIN (\S+) -->\n)(.*?)(<!-- END \2 -->)", re.S)
PERCENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?%")
# Other figures in the prose: numbers of four or more digits (with or without thousands
# commas) and decimals. Years and tool versions are not measurements:
NUMBER = re.compile(r"(?<![\w.,/-])(\d{1,3}(?:,\d{3})+|\d{4,}|\d+\.\d+)(?![\w%])")
YEAR = re.compile(r"^(19|20)\d\d$")
NOT_FIGURES = {"3.19"}  # valgrind's version


def quoted(ref):
    """The text a marker ref (path[#section]) stands for."""
    path, _, section = ref.partition("#")
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    if section:
        m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(section), text, re.S | re.M)
        if not m:
            raise SystemExit("readme_sync: %s has no section '## %s'" % (path, section))
        text = m.group(1)
    text = text.strip("\n") + "\n"
    if path.endswith((".txt", ".csv")):
        text = "```\n" + text + "```\n"
    return text


def prose(readme):
    """The README without its quoted blocks and code blocks: what a person typed."""
    text = BLOCK.sub("", readme)
    return re.sub(r"```.*?```", "", text, flags=re.S)


def main():
    check = "--check" in sys.argv[1:]
    path = os.path.join(ROOT, "README.md")
    readme = open(path, encoding="utf-8").read()
    stale = []

    def fill(m):
        want = quoted(m.group(2))
        if m.group(3) != want:
            stale.append(m.group(2))
        return m.group(1) + want + m.group(4)
    new = BLOCK.sub(fill, readme)
    if not check:
        if new != readme:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(new)
            os.replace(path + ".tmp", path)
        print("readme_sync: %d block(s) updated" % len(stale))
        return 0
    results = ""
    for p in sorted(glob.glob(os.path.join(ROOT, "results", "*.*"))):
        if p.endswith((".md", ".csv", ".txt", ".json")):
            results += open(p, encoding="utf-8").read()
    typed = sorted({p for p in PERCENT.findall(prose(readme)) if p not in results})
    # numbers outside inline code (commands and flags are not figures), compared without commas
    text = re.sub(r"`[^`]*`", "", prose(readme))
    bare = results.replace(",", "")
    typed += sorted({n for n in NUMBER.findall(text)
                     if not YEAR.match(n) and n not in NOT_FIGURES and n.replace(",", "") not in bare})
    for ref in stale:
        print("README.md: the block of %s differs from the file (run scripts/readme_sync.py)" % ref)
    for p in typed:
        print("README.md: %s is in no results file (a figure typed by hand?)" % p)
    return 1 if stale or typed else 0


if __name__ == "__main__":
    sys.exit(main())
