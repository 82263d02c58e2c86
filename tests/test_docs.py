"""The docs cannot drift from the CLI: every `arp ...` command shown in the Markdown docs (fenced
and indented code blocks, inline code) names a real command and only options that command has;
and every relative link between the docs points at a file (and heading) that exists.

Pure text and the CLI's own click objects: nothing is run, nothing trains."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from autoresearch_portable.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [ROOT / "README.md", ROOT / "program.md", ROOT / "program_parallel.md", ROOT / "benchmarks" / "README.md",
     ROOT / "benchmarks" / "results" / "README.md"] + list((ROOT / "docs").glob("*.md"))
)

CLI = typer.main.get_command(app)  # a click Group: .commands[name].params
HELP = "--help"

FENCE = re.compile(r"^\s*(```|~~~)")
INDENTED_ARP = re.compile(r"^ {4,}(\$ )?arp\b")  # an indented code block's command line
# an inline code span: a run of backticks, anything but a blank line, the same run again
INLINE = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.S)
COMMENT = re.compile(r"(^|\s)#.*$")
PLACEHOLDER = re.compile(r"<[^<>\s]+>")  # <dir>, <commit>: an argument, not a redirection
SEPARATOR = re.compile(r"&&|\|\||;|\s\|\s|[()]")  # shell operators between commands
REDIRECT = re.compile(r"\s\d*[<>]")


def snippets(text: str) -> list[str]:
    """The code in a Markdown text: each line of fenced code blocks, each indented code line that
    is an `arp` command, and each inline code span (table escapes `\\|` undone)."""
    found, prose, in_fence = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            prose.append("")
        elif in_fence:
            found.append(line)
            prose.append("")
        else:
            if INDENTED_ARP.match(line):
                found.append(line)
            prose.append(line)
    found += [m.group(2).replace("\n", " ") for m in INLINE.finditer("\n".join(prose))]
    return [s.replace("\\|", "|") for s in found]


def commands_in(snippet: str) -> list[str]:
    """The `arp ...` commands in one line or span of code: after an optional `$ `, or after a shell
    operator (`&&`, `;`, `|`, a parenthesis); comments and redirections dropped."""
    line = COMMENT.sub("", PLACEHOLDER.sub("ARG", snippet))
    out = []
    for part in SEPARATOR.split(line):
        part = REDIRECT.split(" " + part)[0].strip()
        if part.startswith("$ "):
            part = part[2:].strip()
        if part == "arp" or part.startswith("arp "):
            out.append(part)
    return out


def _tokens(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote in prose-like code
        words = command.split()
    # usage notation: [--json], [COMMIT...], wall|work|matched
    words = [w.strip("[]") for w in words]
    return [w for w in words if w and w not in ("...", "|")]


def _is_option(param) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def check_command(command: str) -> list[str]:
    """What is wrong with one `arp ...` command line against the real CLI: an unknown command, an
    option the command does not have, more arguments than it takes. Empty when it is right."""
    words = _tokens(command)
    assert words and words[0] == "arp", command
    rest = words[1:]
    if not rest:
        return []
    if rest[0].startswith("-"):  # `arp --help`
        known = {o for p in CLI.params if _is_option(p) for o in p.opts + p.secondary_opts} | {HELP}
        return [f"{command!r}: unknown option {w.split('=')[0]} of arp" for w in rest
                if w.startswith("-") and w.split("=")[0] not in known]
    name, args = rest[0], rest[1:]
    if name not in CLI.commands:
        return [f"{command!r}: unknown command arp {name} (commands: {', '.join(sorted(CLI.commands))})"]
    cmd = CLI.commands[name]
    options = {o: p for p in cmd.params if _is_option(p) for o in p.opts + p.secondary_opts}
    arguments = [p for p in cmd.params if not _is_option(p)]
    problems, positional, i = [], 0, 0
    while i < len(args):
        word = args[i]
        i += 1
        if word.startswith("-") and len(word) > 1:
            flag = word.split("=")[0]
            if flag == HELP:
                continue
            if flag not in options:
                problems.append(f"{command!r}: arp {name} has no option {flag} (it has: {', '.join(sorted(options))})")
                continue
            param = options[flag]
            takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
            if takes_value and "=" not in word and i < len(args):
                i += 1  # the option's value (a placeholder such as N or FILE is fine)
        else:
            positional += 1
    if any(p.nargs == -1 for p in arguments):
        return problems
    allowed = sum(p.nargs for p in arguments)
    if positional > allowed:
        problems.append(f"{command!r}: arp {name} takes {allowed} argument(s), the docs give {positional}")
    return problems


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) for every `arp` command in the docs."""
    return [(str(md.relative_to(ROOT)), c) for md in DOCS for s in snippets(md.read_text()) for c in commands_in(s)]


# ---- the extraction and the check themselves


def test_snippets_and_commands_are_found():
    md = (
        "Run `arp train --budget 60` or\n`arp\ncalibrate` here.\n\n"
        "```bash\n$ arp init ~/w && cd ~/w   # a comment --not-a-flag\n"
        "(cd /tmp/x && arp calibrate --budget 30)\narp train > run.log 2>&1\n```\n\n"
        "    arp results --last 1\n\n| `arp show RUN\\|REV [--json]` | x |\n"
    )
    found = [c for s in snippets(md) for c in commands_in(s)]
    assert found == ["arp init ~/w", "arp calibrate --budget 30", "arp train", "arp results --last 1",
                     "arp train --budget 60", "arp calibrate", "arp show RUN|REV [--json]"]
    assert all(check_command(c) == [] for c in found)


def test_an_unknown_flag_is_reported():
    problems = check_command("arp train --no-such-flag")
    assert len(problems) == 1 and "--no-such-flag" in problems[0]
    assert check_command("arp train --budget 60 --no-such-flag=3")  # with a value too
    assert check_command("arp queue --budget 60")  # an option of another command


def test_an_unknown_command_or_extra_argument_is_reported():
    assert "unknown command" in check_command("arp no-such-command")[0]
    assert check_command("arp queue extra")  # queue takes no argument
    assert check_command("arp show 1 2")  # show takes one


def test_placeholders_values_and_usage_notation_pass():
    for ok in ("arp submit <commit> --repeat N", "arp show HEAD~1 --json", "arp compare a b c --plot FILE.png",
               "arp train [FILE] [--budget S] [--budget-mode wall|work|matched] [--again] [--no-abandon]",
               "arp submit [COMMIT...]", "arp init DIR --budget 60 --parallel", "arp train --help",
               "arp submit --address HEAD_IP:6379", "arp results --plot=progress.png"):
        assert check_command(ok) == [], ok


# ---- the docs against the CLI


def test_the_docs_show_commands():
    found = doc_commands()
    assert len(found) > 50, "the extractor found almost no arp commands: is it broken?"
    names = {c.split()[1] for _, c in found if len(c.split()) > 1}
    assert {"train", "init", "calibrate", "bench", "results", "submit"} <= names


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_arp_command_in_the_docs_exists(md):
    problems = [p for s in snippets(md.read_text()) for c in commands_in(s) for p in check_command(c)]
    assert problems == []


# ---- links between the docs

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The text outside code blocks and inline code (links there are not links)."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return INLINE.sub("", "\n".join(lines))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    lines, in_fence = [], False
    for line in md.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            lines.append(_slug(line.lstrip("#")))
    return set(lines)


def broken_links(md: Path) -> list[str]:
    out = []
    for target in LINK.findall(_prose(md.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            out.append(f"{target}: no heading #{anchor}")
    return out


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "b.md").write_text("# A heading, here\n")
    a = tmp_path / "a.md"
    a.write_text("[ok](b.md) [ok](b.md#a-heading-here) [web](https://x.org) `[code](nowhere.md)`\n"
                 "[gone](missing.md) [bad anchor](b.md#nope)\n")
    assert broken_links(a) == ["missing.md: no such file", "b.md#nope: no heading #nope"]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(md):
    assert broken_links(md) == []
