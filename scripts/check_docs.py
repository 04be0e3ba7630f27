#!/usr/bin/env python3
"""Check that the documentation names only things the code has, and documents what it has.

Usage:
    python3 scripts/check_docs.py              # check the documents against the code
    python3 scripts/check_docs.py --self-test  # show that invented names are reported

The self-test copies the documents and the code to a temporary directory, checks that the
copy passes, then adds an invented environment variable, config key (with its variable),
route, route method and subcommand to the copied docs, removes the docs' row of a real key
and every mention of a real subcommand, and asserts that each of these is reported, and
nothing else. scripts/test runs both.

Reads source files only (no cargo build); standard library only. Each problem is printed as
`FILE:LINE: message`; the exit status is 1 if there is any.

Documents: README.md, deploy/README.md and docs/*.md. "Code" is every non-Markdown file
under crates/, scripts/, deploy/, tests/, bench/ and .ci/ (but not this script), with
full-line comments (`//`, `#`) left out.

Rules
-----

Environment variables. Every `RESTDOSE_X` named anywhere in a document (prose too: the
upper-case name is unambiguous) must either be a configuration key's variable (the
`Env::prefixed("RESTDOSE_")` prefix + the key in upper case, see config keys below) or occur
literally in the code. `RESTDOSE_FOO_*`, `RESTDOSE_FOO_` (a trailing `_`) and
`RESTDOSE_FOO_{A,B}` are prefixes/brace lists: a prefix must start some known variable, a
brace list is expanded and each name checked.

Config keys. The keys are the fields of `pub struct Config` in
crates/restdose/src/config.rs (serde `rename`/`skip` respected). A key is "named" in a
document where it stands, backticked, in the first column of a table whose header's first
cell is `Key` and which has an "Environment variable" column (the tables of
docs/configuration.md; the scenario-file table in docs/simulation.md has none); it must be a
field, and the environment variable column must be exactly its variable. Every field must
have such a row in docs/configuration.md. (Backticked `snake_case` words elsewhere are not taken
as keys: `request_id`, `current_key_id`, ... are not.)

Routes. A route mention is
  * a backticked span that is a path (`/portal/login`), optionally after an HTTP method
    (`POST /api/v1/offers`), or a table row whose cell is a method followed by a cell with a
    backticked path; paths under the usual file-system roots (/etc, /var, /usr, ...) are
    files, not routes;
  * a URL on the default listener, http://127.0.0.1:8080/... or http://localhost:8080/...,
    anywhere in a document.
The served routes are the `.route("...", web::METHOD())`, `web::resource("...")` and
`#[get("...")]`-style registrations anywhere under crates/restdose-web/src (recursively),
plus its `const NAME: &str = "/..."` path constants (served by GET; one ending in `/` serves
everything below it). `web::scope(` is not understood: the check fails, asking to extend it.
Matching, segment by segment after dropping `?query` and `#fragment`:
  * a code segment `{name}` is a parameter, `{name:.*}` matches the whole rest;
  * a doc segment `{anything}`, `<anything>`, `:name` or `$NAME`/`${NAME}` is a parameter and
    matches only a code parameter; a literal doc segment matches only the same literal;
  * a mention ending in `…` or `...` is a prefix: what precedes must begin some route
    (`/portal…`, `/invitations/…`); a mention ending in `/` (other than `/` itself) names the
    area below it (`/api/`): some route must lie below it; any other mention must match a
    route exactly;
  * with a method, a route matching the path must be registered for that method (HEAD: GET).

Subcommands. The clap tree is read from crates/restdose/src/**/*.rs: the `#[derive(Parser)]`
struct's `#[command(subcommand)]` field, and each `#[derive(Subcommand)]` enum's variants
(kebab-case, or `#[command(name = "...")]`), nested through `#[command(subcommand)]` fields.
A command mention is, in a backticked span or a line of a code block (not `mermaid`; `#`
comments dropped; code lines split at `&&`, `||`, `;` and ` | `), a command starting with
`restdose` (or a path ending in `/restdose`) or `cargo run [...] --`, after any leading
`VAR=value` words and `sudo [-u USER]`, `exec`, `env`, `time`. Its words are followed down the tree: a word that looks like a
subcommand (`[a-z][a-z0-9-]*`) where the tree expects one must exist; `a|b`, `a\\|b` and
`a \\| b` are alternatives at the same level. Flags, placeholders (`ID`, `<command>`, `…`) and
words after a command without subcommands end the walk. Every subcommand without
subcommands of its own (`serve`, `keys rotate`, `admin practices list`, ...) must be
mentioned this way somewhere in the documents.

Upgrade notes may name something that was removed on purpose: a comment
`<!-- check-docs: removed NAME -->` in a document lets that file name NAME (an environment
variable, key, route or command word); the check then insists that NAME really is gone.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

CODE_DIRS = ["crates", "scripts", "deploy", "tests", "bench", ".ci"]
SKIP_DIRS = {"target", "node_modules", "__pycache__", ".git", "vendor", "results"}
CONFIG_RS = "crates/restdose/src/config.rs"
WEB_SRC = "crates/restdose-web/src"
CLI_SRC = "crates/restdose/src"
CONFIG_DOC = "docs/configuration.md"
FS_ROOTS = {"etc", "var", "usr", "proc", "tmp", "home", "opt", "srv", "run", "dev", "sys",
            "lib", "bin", "mnt", "root", "boot", "nix", "sbin"}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
WORD = re.compile(r"^[a-z][a-z0-9-]*$")
ENV_RE = re.compile(r"RESTDOSE_[A-Z0-9_]*(?:\{[A-Z0-9_,]+\}|\*)?")
REMOVED_RE = re.compile(r"<!--\s*check-docs:\s*removed\s+([^>]*?)\s*-->")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


# --- reading Rust -------------------------------------------------------------------------

RUST_TOKENS = re.compile(
    r'(?P<raw>r(?P<h>#*)"[\s\S]*?"(?P=h))'
    r'|(?P<str>b?"(?:\\[\s\S]|[^"\\])*")'
    r"|(?P<chr>'(?:\\.|[^'\\])')"
    r"|(?P<line>//[^\n]*)"
    r"|(?P<block>/\*[\s\S]*?\*/)"
)


def strip_rust(text: str) -> tuple[str, list[str]]:
    """Comments removed, every string literal replaced by `"<n>"` (its text in the list)."""
    strings: list[str] = []

    def repl(m: re.Match) -> str:
        if m.group("line") is not None or m.group("block") is not None:
            return " " if m.group("line") is not None else "\n" * m.group(0).count("\n")
        if m.group("chr") is not None:
            return "' '"
        s = m.group(0)
        if m.group("raw") is not None:
            body = s[s.index('"') + 1: len(s) - 1 - len(m.group("h"))]
        else:
            body = s[s.index('"') + 1: -1]
        strings.append(body)
        return f'"{len(strings) - 1}"' + "\n" * s.count("\n")

    return RUST_TOKENS.sub(repl, text), strings


def braced(text: str, start: int) -> tuple[str, int]:
    """The text inside the bracket at `start` and the index after its closing partner."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = []
    for i in range(start, len(text)):
        c = text[i]
        if c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return text[start + 1: i], i + 1
    raise ValueError("unbalanced brackets")


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def rust_files(base: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in base.rglob("*.rs") if not SKIP_DIRS & set(p.parts))


def config_keys(root: pathlib.Path) -> tuple[list[str], str]:
    """The keys of `Config` and the environment prefix."""
    text, strings = strip_rust((root / CONFIG_RS).read_text())
    m = re.search(r"pub struct Config\s*\{", text)
    if not m:
        raise SystemExit(f"{CONFIG_RS}: `pub struct Config` not found")
    head = text[max(0, m.start() - 300): m.start()]
    if "rename_all" in head:
        raise SystemExit(f"{CONFIG_RS}: serde rename_all on Config is not understood; extend "
                         "scripts/check_docs.py")
    body, _ = braced(text, m.end() - 1)
    keys = []
    field = re.compile(r"(?:^|,)\s*((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:(?!:)")
    for f in field.finditer(body):
        attrs, name = f.group(1), f.group(2)
        if "flatten" in attrs:
            raise SystemExit(f"{CONFIG_RS}: serde flatten in Config is not understood")
        if re.search(r"\bskip\b", attrs):
            continue
        r = re.search(r'\brename\s*=\s*"(\d+)"', attrs)
        keys.append(strings[int(r.group(1))] if r else name)
    p = re.search(r'Env::prefixed\(\s*"(\d+)"', text)
    if not p:
        raise SystemExit(f"{CONFIG_RS}: Env::prefixed(...) not found")
    return keys, strings[int(p.group(1))]


def routes(root: pathlib.Path, problems: Problems) -> list[tuple[str, str]]:
    """(method or '*', pattern) for every served path."""
    found = []
    for path in rust_files(root / WEB_SRC):
        text, strings = strip_rust(path.read_text())
        rel = path.relative_to(root)
        if "web::scope(" in text or re.search(r"\bscope\(\s*\"", text):
            problems.add(str(rel), "web::scope is not understood by scripts/check_docs.py: "
                                   "extend its route reading")
        for m in re.finditer(r'\.route\(\s*"(\d+)"\s*,\s*web::(\w+)\(', text):
            found.append((m.group(2).upper(), strings[int(m.group(1))]))
        for m in re.finditer(r'web::resource\(\s*"(\d+)"', text):
            found.append(("*", strings[int(m.group(1))]))
        for m in re.finditer(r'#\[(get|post|put|patch|delete)\(\s*"(\d+)"', text):
            found.append((m.group(1).upper(), strings[int(m.group(2))]))
        for m in re.finditer(r'const\s+\w+\s*:\s*&(?:\'static\s+)?str\s*=\s*"(\d+)"', text):
            value = strings[int(m.group(1))]
            if value.startswith("/"):
                found.append(("GET", value + "{_:.*}" if value.endswith("/") else value))
    return found


def subcommands(root: pathlib.Path) -> dict[tuple[str, ...], bool]:
    """Every subcommand path -> whether it has subcommands of its own."""
    enums: dict[str, list[tuple[str, str | None]]] = {}
    root_type = None
    for path in rust_files(root / CLI_SRC):
        text, strings = strip_rust(path.read_text())
        for m in re.finditer(r"#\[derive\(([^)]*)\)\]", text):
            derives = {d.strip().split("::")[-1] for d in m.group(1).split(",")}
            rest = text[m.end():]
            d = re.match(r"(?:\s*#\[[^\]]*(?:\[[^\]]*\][^\]]*)*\])*\s*(?:pub(?:\([^)]*\))?\s+)?"
                         r"(struct|enum)\s+(\w+)[^{;(]*\{", rest)
            if not d:
                continue
            body, _ = braced(rest, d.end() - 1)
            if "Parser" in derives and d.group(1) == "struct":
                s = re.search(r"#\[command\(subcommand\)\][\s\S]*?\w+\s*:\s*([\w:<>]+)", body)
                if s:
                    root_type = re.sub(r"^Option<|>$", "", s.group(1)).split("::")[-1]
            if "Subcommand" in derives and d.group(1) == "enum":
                enums[d.group(2)] = variants(body, strings)
    if root_type is None or root_type not in enums:
        raise SystemExit(f"{CLI_SRC}: the clap Parser struct / its Subcommand enum not found")
    tree: dict[tuple[str, ...], bool] = {}

    def walk(type_name: str, prefix: tuple[str, ...]) -> None:
        for name, child in enums[type_name]:
            path = prefix + (name,)
            tree[path] = child is not None and child in enums
            if tree[path]:
                walk(child, path)

    walk(root_type, ())
    return tree


def variants(body: str, strings: list[str]) -> list[tuple[str, str | None]]:
    out = []
    i = 0
    attrs = ""
    while i < len(body):
        m = re.compile(r"\s*(#\[|([A-Z]\w*)|,)").match(body, i)
        if not m:
            i += 1
            continue
        if m.group(1) == "#[":
            inner, end = braced(body, m.end() - 1)
            attrs += inner + "\n"
            i = end
            continue
        if m.group(1) == ",":
            i = m.end()
            continue
        name = m.group(2)
        i = m.end()
        fields = ""
        nxt = re.compile(r"\s*([{(])").match(body, i)
        if nxt:
            fields, i = braced(body, nxt.end() - 1)
        n = re.search(r'command\([^)]*\bname\s*=\s*"(\d+)"', attrs)
        cli_name = strings[int(n.group(1))] if n else kebab(name)
        child = None
        s = re.search(r"command\(subcommand\)\][\s\S]*?\w+\s*:\s*([\w:<>]+)", fields)
        if s:
            child = re.sub(r"^Option<|>$", "", s.group(1)).split("::")[-1]
        elif nxt and nxt.group(1) == "(":
            child = fields.strip().split("::")[-1]  # a tuple variant holding an enum
        out.append((cli_name, child))
        attrs = ""
    return out


def code_env_vars(root: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for d in CODE_DIRS:
        base = root / d
        if not base.exists():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file() or SKIP_DIRS & set(path.relative_to(root).parts):
                continue
            if path.name == pathlib.Path(__file__).name:
                continue  # this checker names invented variables in its self-test
            if path.suffix in {".md", ".png", ".svg", ".csv", ".json", ".lock"}:
                continue
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            for line in text.splitlines():
                s = line.strip()
                if s.startswith("//") or s.startswith("#") and not s.startswith("#["):
                    continue
                found.update(re.findall(r"RESTDOSE_[A-Z0-9_]*[A-Z0-9]", line))
    return found


# --- reading Markdown ---------------------------------------------------------------------

def doc_files(root: pathlib.Path) -> list[pathlib.Path]:
    files = [root / "README.md", root / "deploy/README.md"]
    files += sorted((root / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


class Line:
    def __init__(self, file: str, no: int, text: str, code: str | None) -> None:
        self.file, self.no, self.text, self.code = file, no, text, code  # code: block lang

    @property
    def where(self) -> str:
        return f"{self.file}:{self.no}"


def read_doc(root: pathlib.Path, path: pathlib.Path) -> list[Line]:
    rel = str(path.relative_to(root))
    out = []
    fence = None
    lang = None
    for no, text in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", text)
        if m and (fence is None or m.group(1).startswith(fence)):
            if fence is None:
                fence, lang = m.group(1), m.group(2) or ""
            else:
                fence = lang = None
            continue
        out.append(Line(rel, no, text, lang if fence else None))
    return out


def spans(line: Line) -> list[str]:
    """The inline code spans of a prose line (table escapes `\\|` kept as `\\|`)."""
    if line.code is not None:
        return []
    return [s.strip() for s in re.findall(r"(?<!`)`([^`]+)`(?!`)", line.text)]


def strip_comment(text: str) -> str:
    return re.sub(r"(^|\s)#(?![\[!]).*$", "", text)


# --- the checks ---------------------------------------------------------------------------

def check_env(docs, known, keys, prefix, removed, problems):
    key_vars = {prefix + k.upper() for k in keys}
    allowed = known | key_vars
    for line in (ln for lines in docs for ln in lines):
        for m in ENV_RE.finditer(line.text):
            token = m.group(0)
            names = []
            b = re.match(r"(RESTDOSE_[A-Z0-9_]*)\{([A-Z0-9_,]+)\}$", token)
            if b:
                names = [b.group(1) + x for x in b.group(2).split(",")]
            elif token.endswith("*") or token.endswith("_"):
                pre = token.rstrip("*")
                if pre == prefix or any(v.startswith(pre) for v in allowed):
                    continue
                problems.add(line.where, f"{token}: no environment variable starting with "
                                         f"{pre} is read by the code")
                continue
            else:
                names = [token]
            for name in names:
                if name in removed.get(line.file, set()):
                    continue
                if name not in allowed:
                    problems.add(line.where, f"environment variable {name} is not read by the "
                                             f"code (not a config key's {prefix}<KEY> and not "
                                             "found in crates/, scripts/, deploy/, tests/)")


def check_config(docs, keys, prefix, removed, problems):
    documented: set[str] = set()
    for lines in docs:
        header = None
        for line in lines:
            if line.code is not None or not line.text.lstrip().startswith("|"):
                header = None
                continue
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.text.strip())[1:-1]]
            if header is None:
                header = cells
                continue
            env_col = next((i for i, h in enumerate(header) if "environment" in h.lower()), None)
            if (not header or header[0].lower() != "key" or env_col is None
                    or set("".join(cells)) <= set("-: ")):
                continue
            k = re.fullmatch(r"`([^`]+)`", cells[0])
            if not k:
                continue
            key = k.group(1)
            if key in removed.get(line.file, set()):
                continue
            if key not in keys:
                problems.add(line.where, f"config key `{key}` does not exist in Config "
                                         f"({CONFIG_RS})")
                continue
            if line.file == CONFIG_DOC:
                documented.add(key)
            if env_col < len(cells):
                want = f"`{prefix}{key.upper()}`"
                if cells[env_col] != want:
                    problems.add(line.where, f"config key `{key}`: environment variable column "
                                             f"says {cells[env_col]}, the code reads {want}")
    for key in keys:
        if key not in documented:
            problems.add(CONFIG_DOC, f"config key `{key}` (field of Config in {CONFIG_RS}) is "
                                     "not documented: add a row to a Key table")


def route_match(doc: str, code: str) -> bool:
    """Whether doc path `doc` (no query) names code pattern `code` (see the module doc)."""
    if doc.endswith("…") or doc.endswith("..."):
        mode, doc = "prefix", doc[:-1] if doc.endswith("…") else doc[:-3]
    elif doc.endswith("/") and doc != "/":
        mode, doc = "area", doc[:-1]
    else:
        mode = "exact"
    d = doc.split("/")
    c = code.split("/")

    def is_param(s: str) -> bool:
        return bool(re.fullmatch(r"\{.*\}|<.*>|:\w+|\$\{?\w+\}?", s))

    def seg(ds: str, cs: str) -> bool:
        return is_param(ds) == bool(re.fullmatch(r"\{[^}]*\}", cs)) and (is_param(ds) or ds == cs)

    for i, ds in enumerate(d):
        if i >= len(c):
            return False
        cs = c[i]
        if re.fullmatch(r"\{\w+:\.\*\}", cs):
            return True
        last = i == len(d) - 1
        if last and mode == "prefix":
            return cs.startswith(ds) if not is_param(ds) else seg(ds, cs)
        if not seg(ds, cs):
            return False
    if mode == "area":
        return len(c) > len(d)
    return len(c) == len(d) or (len(c) == len(d) + 1 and re.fullmatch(r"\{\w+:\.\*\}", c[-1]))


def split_path(text: str) -> str:
    """The path at the start of `text`: up to whitespace outside braces and angle brackets."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{<":
            depth += 1
        elif ch in "}>":
            depth -= 1
        elif ch.isspace() and depth <= 0:
            return text[:i]
    return text


def route_mentions(line: Line) -> list[tuple[str | None, str]]:
    out = []
    for m in re.finditer(r"https?://(?:127\.0\.0\.1|localhost):8080(/[^\s)>`'\"\]]*)?",
                         line.text):
        out.append((None, m.group(1) or "/"))
    method_cell = None
    if line.code is None and line.text.lstrip().startswith("|"):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.text.strip())[1:-1]]
        for i, cell in enumerate(cells[:-1]):
            if cell in METHODS and re.fullmatch(r"`/[^`]*`", cells[i + 1]):
                method_cell = (cell, cells[i + 1][1:-1])
    for span in spans(line):
        span = span.replace("\\|", "|")
        method = None
        m = re.match(r"([A-Z]+) (/.*)$", span)
        if m and m.group(1) in METHODS:
            method, span = m.group(1), m.group(2)
        if not span.startswith("/") or span.startswith("//"):
            continue
        path = split_path(span)
        if path.split("/")[1].rstrip("…") in FS_ROOTS or "*" in path:
            continue
        if method_cell and method_cell[1] == span:
            method = method_cell[0]
        out.append((method, path))
    return out


def check_routes(docs, served, removed, problems):
    for line in (ln for lines in docs for ln in lines):
        for method, path in route_mentions(line):
            clean = re.split(r"[?#]", path)[0].rstrip(".,;:")
            if not clean or clean in removed.get(line.file, set()):
                continue
            hits = [(m, p) for m, p in served if route_match(clean, p)]
            label = f"{method + ' ' if method else ''}{path}"
            if not hits:
                problems.add(line.where, f"route {label}: no such route registered in "
                                         f"{WEB_SRC}")
            elif method and not any(m in ("*", method, "GET" if method == "HEAD" else "")
                                    for m, _ in hits):
                have = ", ".join(sorted({f"{m} {p}" for m, p in hits}))
                problems.add(line.where, f"route {label}: registered only as {have}")


def command_words(text: str, inline: bool) -> list[list[str]]:
    """The argument words after `restdose` / `cargo run ... --` in each command of `text`."""
    out = []
    if inline:
        parts = [text]
    else:
        parts = re.split(r"&&|\|\||;|\s\|\s", strip_comment(text))
    for part in parts:
        part = part.replace("\\|", " | ") if inline else part
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words:  # VAR=value words and wrappers such as `sudo -u restdose`
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)
            elif words[0] in ("sudo", "exec", "time", "env"):
                words.pop(0)
                while words and words[0].startswith("-"):
                    if words.pop(0) in ("-u", "-g"):
                        words = words[1:]
            else:
                break
        if not words:
            continue
        if words[0] == "restdose" or words[0].endswith("/restdose"):
            out.append(words[1:])
        elif words[:2] == ["cargo", "run"]:
            out.append(words[words.index("--") + 1:] if "--" in words else [])
    return out


def check_commands(docs, tree, removed, problems):
    mentioned: set[tuple[str, ...]] = set()
    for line in (ln for lines in docs for ln in lines):
        if line.code == "mermaid":
            continue
        texts = [(line.text, False)] if line.code is not None else [(s, True) for s in
                                                                    spans(line)]
        for text, inline in texts:
            for words in command_words(text, inline):
                # `a | b` -> `a|b`
                joined: list[str] = []
                i = 0
                while i < len(words):
                    w = words[i]
                    while i + 2 < len(words) and words[i + 1] in ("|", "\\|"):
                        w += "|" + words[i + 2]
                        i += 2
                    joined.append(w)
                    i += 1
                path: tuple[str, ...] = ()
                for w in joined:
                    has_children = path == () or tree.get(path, False)
                    alts = [a for a in w.replace("\\|", "|").split("|")]
                    if not has_children or not all(WORD.match(a) for a in alts):
                        break
                    for a in alts:
                        if a in removed.get(line.file, set()):
                            continue
                        if path + (a,) not in tree:
                            shown = " ".join(("restdose",) + path + (a,))
                            problems.add(line.where, f"command `{shown}`: no such subcommand "
                                                     f"(clap definitions in {CLI_SRC})")
                        else:
                            mentioned.add(path + (a,))
                    if len(alts) != 1 or path + (alts[0],) not in tree:
                        break
                    path = path + (alts[0],)
    for path in sorted(p for p, has_children in tree.items() if not has_children):
        covered = any(m[:len(path)] == path for m in mentioned)
        if not covered:
            problems.add("README.md", f"subcommand `restdose {' '.join(path)}` is not documented "
                                      "(no `restdose ...` mention in README.md or docs/*.md)")


def check_removed(removed, known, keys, served, tree, problems):
    for file, names in removed.items():
        for name in names:
            exists = (name in known or name in keys
                      or any(p == name for _, p in served)
                      or any(name in path for path in tree))
            if exists:
                problems.add(file, f"`{name}` is declared removed (check-docs: removed) but the "
                                   "code still has it")


def check(root: pathlib.Path) -> list[str]:
    problems = Problems()
    keys, prefix = config_keys(root)
    served = routes(root, problems)
    tree = subcommands(root)
    known = code_env_vars(root)
    docs = [read_doc(root, f) for f in doc_files(root)]
    removed: dict[str, set[str]] = {}
    for lines in docs:
        for line in lines:
            for m in REMOVED_RE.finditer(line.text):
                removed.setdefault(line.file, set()).update(m.group(1).replace(",", " ").split())
    check_env(docs, known, keys, prefix, removed, problems)
    check_config(docs, keys, prefix, removed, problems)
    check_routes(docs, served, removed, problems)
    check_commands(docs, tree, removed, problems)
    check_removed(removed, known, keys, served, tree, problems)
    return problems.items


# --- self-test ----------------------------------------------------------------------------

def self_test() -> int:
    """Runs the check on a copy with invented names added to a doc; each must be reported."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp)
        for name in ["README.md", "deploy/README.md"]:
            if (ROOT / name).exists():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / name, copy / name)
        for d in ["docs"] + CODE_DIRS:
            if (ROOT / d).is_dir():
                shutil.copytree(ROOT / d, copy / d, ignore=shutil.ignore_patterns(*SKIP_DIRS),
                                dirs_exist_ok=True)
        baseline = check(copy)
        if baseline:
            print("self-test: the unmodified copy already has problems:", *baseline, sep="\n  ")
            return 1
        readme = copy / "README.md"
        text = readme.read_text()
        injected = (
            "\n## Invented\n\n"
            "Set `RESTDOSE_FLUX_CAPACITOR=1`, then `POST /api/v1/vouchers`, then visit\n"
            "`/portal/offers/{id}/teleport` and run `restdose admin practices promote ID`.\n"
        )
        readme.write_text(text + injected)
        config_doc = copy / CONFIG_DOC
        config_doc.write_text(config_doc.read_text().replace(
            "| `listen` |",
            "| `warp_factor` | `RESTDOSE_WARP_FACTOR` | `9` | Invented. | |\n| `listen` |", 1))
        # A key that exists but is undocumented: drop the row of `country`.
        config_doc.write_text("\n".join(
            ln for ln in config_doc.read_text().splitlines() if not ln.startswith("| `country` |")))
        # A subcommand that exists but is mentioned nowhere: rename every mention of `geo import`.
        for path in doc_files(copy):
            path.write_text(path.read_text().replace("restdose geo import", "restdose-geo import"))
        expected = [
            ("RESTDOSE_FLUX_CAPACITOR", "environment variable RESTDOSE_FLUX_CAPACITOR"),
            ("RESTDOSE_WARP_FACTOR", "environment variable RESTDOSE_WARP_FACTOR"),
            ("config key warp_factor", "config key `warp_factor` does not exist"),
            ("undocumented config key country", "config key `country` (field"),
            ("route POST /api/v1/vouchers", "route POST /api/v1/vouchers"),
            ("route /portal/offers/{id}/teleport", "route /portal/offers/{id}/teleport"),
            ("subcommand admin practices promote", "`restdose admin practices promote`"),
            ("undocumented subcommand geo import", "`restdose geo import` is not documented"),
        ]
        # A method that the route does not have.
        readme.write_text(readme.read_text() + "`DELETE /portal/login`\n")
        found = check(copy)
        expected.append(("DELETE /portal/login", "route DELETE /portal/login: registered only"))
        failed = [what for what, needle in expected if not any(needle in f for f in found)]
        for f in found:
            print(f"  reported: {f}")
        if failed:
            print("self-test FAILED; not reported:", ", ".join(failed))
            return 1
        if len(found) != len(expected):
            print(f"self-test FAILED: {len(found)} problems reported, {len(expected)} expected")
            return 1
        print(f"self-test passed: all {len(expected)} invented mistakes were reported")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="check that invented names in a copy of the docs are reported")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    found = check(ROOT)
    for f in found:
        print(f, file=sys.stderr)
    if found:
        print(f"check_docs: {len(found)} problem(s); the rules are at the top of "
              "scripts/check_docs.py", file=sys.stderr)
        return 1
    print("docs check: environment variables, config keys, routes and subcommands match the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
