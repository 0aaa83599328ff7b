"""
The documentation tells the truth: keys, plugins, examples and outputs.

These tests read ``docs/`` and ``conf/`` without building the documentation:
every kind of section has its generated key list, every built-in plugin and
each of its options has its section, every INI example is accepted by the
loader, every file in ``conf/`` loads and builds, and the command outputs the
quickstart shows are the ones the commands print.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeproxy.config.loader import load_config, parse_config
from edgeproxy.config.model import SECTION_KINDS, Config, SectionKind
from edgeproxy.config.values import parse_bool, parse_duration, parse_size
from edgeproxy.errors import ConfigError, OptionError
from edgeproxy.registry import PluginInfo, discover
from edgeproxy.snapshot import build_snapshot
from edgeproxy.tap import check, list_plugins
from edgeproxy.testing import environment

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CONFIGURATION = (DOCS / "configuration.rst").read_text(encoding="utf-8")
QUICKSTART = (DOCS / "quickstart.rst").read_text(encoding="utf-8")
PAGES = sorted(DOCS.glob("*.rst"))
CONFIGS = sorted((REPO / "conf").glob("*.ini"))
BUILTIN_MODULE = "twisted.plugins.edgeproxy_builtins"
ACME_PLUGINS = REPO / "tests/integration/thirdparty/twisted/plugins/acme_edge.py"

# The options each built-in plugin accepts.  Plugins have no public list of
# their options (each reads its own), so this table is the documentation's
# checklist, and test_option_table_matches_the_plugin holds it to what each
# plugin names in its own "unknown option" message.
PLUGIN_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("filter", "headers"): (
        "request.set",
        "request.add",
        "request.remove",
        "response.set",
        "response.add",
        "response.remove",
    ),
    ("filter", "request_id"): ("header", "trust_incoming"),
    ("filter", "cors"): (
        "allow_origins",
        "allow_methods",
        "allow_headers",
        "expose_headers",
        "allow_credentials",
        "max_age",
    ),
    ("filter", "ip_acl"): ("allow", "deny"),
    ("filter", "api_key"): ("key_from", "keys", "keys_file", "strip_key", "realm"),
    ("filter", "basic_auth"): ("htpasswd_file", "realm", "strip_credentials"),
    ("filter", "jwt"): (
        "algorithms",
        "secret",
        "public_key_file",
        "jwks_file",
        "jwks_url",
        "jwks_cache_ttl",
        "jwks_refresh_interval",
        "jwks_timeout",
        "issuer",
        "audience",
        "leeway",
        "required_claims",
        "scopes",
        "token_from",
        "consumer_claim",
        "claims_to_headers",
        "strip_token",
        "realm",
    ),
    ("filter", "rate_limit"): (
        "rate",
        "burst",
        "key",
        "mode",
        "status",
        "store",
        "store_timeout",
        "on_store_error",
        "max_keys",
        "headers",
        "policy",
    ),
    ("filter", "circuit_breaker"): (
        "failure_threshold",
        "failure_rate",
        "window",
        "min_requests",
        "failure_statuses",
        "open_for",
        "half_open_requests",
        "open_status",
    ),
    ("health check", "tcp"): (),
    ("health check", "http_get"): ("path", "status", "body", "host", "method"),
    ("balancing strategy", "round_robin"): (),
    ("balancing strategy", "weighted"): (),
    ("balancing strategy", "least_conn"): (),
    ("balancing strategy", "random_two"): ("seed",),
    ("balancing strategy", "hash"): ("key",),
    ("balancing strategy", "least_time"): ("decay",),
    ("balancing strategy", "sticky"): ("cookie",),
}

# How a configuration file writes an option of each kind of plugin, and the
# part of configuration.rst that documents that kind.
OPTION_PREFIX = {
    "filter": "",
    "health check": "health.",
    "balancing strategy": "balance.",
}
DOCS_PART = {
    "filter": "Built-in filters",
    "health check": "Health checks",
    "balancing strategy": "Balancing strategies",
}

_DIRECTIVE = re.compile(r"^\.\. config-keys:: *(\S+) *$", re.MULTILINE)
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>_:.])\1*$")
_PROBE = "zz_not_an_option"


def load_module(name: str, path: Path) -> ModuleType:
    """Import the file at ``path`` as module ``name`` (not kept in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = load_module("config_reference", DOCS / "_ext" / "config_reference.py")
REGISTRY = discover()
BUILTINS = [info for info in REGISTRY.plugins if info.module == BUILTIN_MODULE]


@dataclasses.dataclass(frozen=True)
class Heading:
    """A section heading of a reStructuredText page."""

    text: str
    level: int
    line: int


def headings(text: str) -> list[Heading]:
    """The headings of ``text``, levels numbered in order of first use."""
    lines = text.splitlines()
    levels: list[str] = []
    found = []
    for number, (title, under) in enumerate(itertools.pairwise(lines)):
        match = _UNDERLINE.match(under)
        if not title.strip() or title[:1].isspace() or match is None:
            continue
        if len(under) < len(title.rstrip()) or _UNDERLINE.match(title):
            continue
        char = match.group(1)
        if char not in levels:
            levels.append(char)
        found.append(Heading(title.strip(), levels.index(char), number))
    return found


def section_text(text: str, title: str) -> str:
    """The text of the section headed ``title``, up to the next one as high."""
    lines = text.splitlines()
    marks = headings(text)
    for index, heading in enumerate(marks):
        if heading.text == title:
            end = next(
                (h.line for h in marks[index + 1 :] if h.level <= heading.level),
                len(lines),
            )
            return "\n".join(lines[heading.line : end])
    raise AssertionError(f"configuration.rst has no section {title!r}")


def subsection_titles(text: str, title: str) -> set[str]:
    """The titles of the sections directly inside the section ``title``."""
    inner = headings(section_text(text, title))
    return {h.text for h in inner[1:] if h.level == inner[0].level + 1}


def code_blocks(text: str, language: str) -> list[str]:
    """The contents of every ``.. code-block:: LANGUAGE`` of ``text``."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != f".. code-block:: {language}":
            continue
        directive_indent = len(line) - len(line.lstrip())
        body: list[str] = []
        indent: int | None = None
        for following in lines[number + 1 :]:
            stripped = following.strip()
            current = len(following) - len(following.lstrip())
            if indent is None:
                if not stripped or stripped.startswith(":"):
                    continue
                if current <= directive_indent:
                    break
                indent = current
            if stripped and current < indent:
                break
            body.append(following[indent:])
        blocks.append("\n".join(body).strip() + "\n")
    return blocks


def advertised_options(message: str) -> frozenset[str] | None:
    """The options an "unknown option" message lists, or ``None`` if it lists none."""
    listed = re.search(r"\((?:known options: |use )([^)]*)\)", message)
    if listed is not None:
        return frozenset(option.strip() for option in listed.group(1).split(","))
    if "takes no options" in message:
        return frozenset()
    return None


def plugin_id(info: PluginInfo) -> str:
    """A test id for a plugin."""
    return f"{info.kind}:{info.name}"


# --- the configuration reference -------------------------------------------------


@pytest.mark.parametrize("kind", SECTION_KINDS, ids=lambda kind: kind.prefix)
def test_every_section_kind_has_its_key_list(kind: SectionKind) -> None:
    """configuration.rst renders the keys of every kind of section."""
    assert kind.prefix in _DIRECTIVE.findall(CONFIGURATION)


def test_key_lists_name_real_section_kinds() -> None:
    """Every config-keys directive names a section kind the loader knows, once."""
    named = _DIRECTIVE.findall(CONFIGURATION)
    assert sorted(named) == sorted(kind.prefix for kind in SECTION_KINDS)


@pytest.mark.parametrize("kind", SECTION_KINDS, ids=lambda kind: kind.prefix)
def test_key_list_documents_every_key(kind: SectionKind) -> None:
    """The rendered list has a documented entry for every key and key prefix."""
    lines: list[str] = REFERENCE.reference_lines(kind)
    entries = {
        line: lines[index + 1].strip()
        for index, line in enumerate(lines)
        if line.startswith("``")
    }
    expected = [f"``{field.name}``" for field in kind.settings()]
    expected += [f"``{prefix}NAME``" for prefix in kind.prefixed_keys]
    for entry in expected:
        assert entries.get(entry), f"{entry} is missing or has no documentation"


def _documented_defaults() -> list[tuple[SectionKind, dataclasses.Field[Any]]]:
    return [
        (kind, field)
        for kind in SECTION_KINDS
        for field in kind.settings()
        if REFERENCE.value_syntax(field) in ("duration", "size", "yes/no")
        and field.default is not dataclasses.MISSING
    ]


@pytest.mark.parametrize(
    ("kind", "field"),
    _documented_defaults(),
    ids=[f"{kind.prefix}.{field.name}" for kind, field in _documented_defaults()],
)
def test_printed_defaults_mean_the_defaults(
    kind: SectionKind, field: dataclasses.Field[Any]
) -> None:
    """A default as the reference prints it, written in a file, is the default."""
    printed = REFERENCE.format_default(field).strip("`")
    parse = {"duration": parse_duration, "size": parse_size, "yes/no": parse_bool}
    assert parse[REFERENCE.value_syntax(field)](printed) == field.default


# --- the built-in plugins ----------------------------------------------------------


def test_option_table_lists_exactly_the_builtins() -> None:
    """Every built-in plugin is in the option table, and nothing else is."""
    assert BUILTINS, "discover() found no built-in plugin"
    assert {(info.kind, info.name) for info in BUILTINS} == set(PLUGIN_OPTIONS)


@pytest.mark.parametrize("info", BUILTINS, ids=plugin_id)
def test_option_table_matches_the_plugin(info: PluginInfo) -> None:
    """The table's options are those the plugin names when refusing an unknown one."""
    build: Any = info.factory.build  # type: ignore[attr-defined]
    with pytest.raises(OptionError) as raised:
        build({_PROBE: "x"}, environment())
    messages = [message for key, message in raised.value.problems if key == _PROBE]
    assert messages, f"{info.name} accepted the option {_PROBE!r}"
    expected = frozenset(PLUGIN_OPTIONS[info.kind, info.name])
    assert advertised_options(messages[0]) == expected, messages[0]


@pytest.mark.parametrize("info", BUILTINS, ids=plugin_id)
def test_plugin_accepts_each_listed_option(info: PluginInfo) -> None:
    """Each option in the table, given alone, is not refused as unknown."""
    build: Any = info.factory.build  # type: ignore[attr-defined]
    for option in PLUGIN_OPTIONS[info.kind, info.name]:
        try:
            build({option: "x"}, environment())
        except OptionError as error:
            unknown = [m for k, m in error.problems if m.startswith("unknown option")]
            assert not unknown, f"{info.name} refuses {option}: {unknown}"


@pytest.mark.parametrize("kind", sorted(DOCS_PART))
def test_plugin_sections_are_the_builtins(kind: str) -> None:
    """configuration.rst documents every built-in plugin of a kind, and no other."""
    documented = subsection_titles(CONFIGURATION, DOCS_PART[kind])
    assert documented == {f"``{name}``" for name in REGISTRY.names(kind)}


@pytest.mark.parametrize("info", BUILTINS, ids=plugin_id)
def test_plugin_section_mentions_every_option(info: PluginInfo) -> None:
    """A built-in plugin's section names each option as a config file writes it."""
    text = section_text(
        section_text(CONFIGURATION, DOCS_PART[info.kind]), f"``{info.name}``"
    )
    prefix = OPTION_PREFIX[info.kind]
    for option in PLUGIN_OPTIONS[info.kind, info.name]:
        assert f"``{prefix}{option}``" in text


# --- configuration files and examples -------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_example_config_loads_and_builds(path: Path) -> None:
    """Every file in conf/ loads and builds every plugin it names."""
    config = load_config(str(path))
    snapshot = build_snapshot(config, REGISTRY, environment(base_dir=path.parent))
    assert snapshot.config.listeners


def _build_plugins(config: Config) -> list[str]:
    """Build each plugin ``config`` names; the guide's acme_* plugins are skipped."""
    wanted = [
        ("filter", section.plugin, section.options)
        for section in config.filters.values()
    ]
    for upstream in config.upstreams.values():
        wanted.append(
            ("balancing strategy", upstream.balance, upstream.balance_options)
        )
        if upstream.health is not None:
            wanted.append(("health check", upstream.health, upstream.health_options))
    problems = []
    for kind, name, options in wanted:
        if name.startswith("acme_"):
            continue
        try:
            build: Any = REGISTRY.lookup(kind, name).factory.build  # type: ignore[attr-defined]
            # Files that examples name (staff.htpasswd) are in docs/examples.
            build(options, environment(base_dir=DOCS / "examples"))
        except (KeyError, OptionError) as error:
            problems.append(f"{kind} {name}: {error}")
    return problems


def _ini_examples() -> list[tuple[str, str]]:
    return [
        (f"{page.name}#{number}", block)
        for page in PAGES
        for number, block in enumerate(
            code_blocks(page.read_text(encoding="utf-8"), "ini")
        )
    ]


@pytest.mark.parametrize(
    ("where", "text"), _ini_examples(), ids=[where for where, _ in _ini_examples()]
)
def test_ini_examples_use_real_keys(where: str, text: str) -> None:
    """Each INI example in the docs is accepted, but for sections it leaves out."""
    try:
        config = parse_config(text, where)
        problems = []
    except ConfigError as error:
        # An example shows a few sections; the ones it refers to may be elsewhere.
        problems = [
            str(problem)
            for problem in error.problems
            if not re.fullmatch(r"no \[\w+:[\w.\-]+\] section", problem.message)
        ]
        assert isinstance(error.partial, Config)
        config = error.partial
    problems += _build_plugins(config)
    assert not problems, "\n".join(problems)


def test_ini_examples_are_found() -> None:
    """The example finder sees the examples (a test that finds none tests nothing)."""
    assert len(_ini_examples()) >= 10


def test_example_finder_reads_indented_blocks() -> None:
    """code_blocks returns a block's body, without its options, ending at dedent."""
    text = ".. code-block:: ini\n   :caption: x\n\n    [a]\n    b = c\n\nafter\n"
    assert code_blocks(text, "ini") == ["[a]\nb = c\n"]


# --- outputs shown in the quickstart ------------------------------------------


def test_quickstart_shows_the_real_check_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The --check summary of conf/quickstart.ini is the one the quickstart shows."""
    monkeypatch.chdir(REPO)
    out, err = io.StringIO(), io.StringIO()
    assert check("conf/quickstart.ini", REGISTRY, out, err) == 0, err.getvalue()
    assert f"    {out.getvalue()}" in QUICKSTART


def test_quickstart_shows_the_real_check_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The --check errors of the broken example are the ones the quickstart shows."""
    monkeypatch.chdir(DOCS / "examples")
    out, err = io.StringIO(), io.StringIO()
    assert check("broken.ini", REGISTRY, out, err) == 1
    for line in err.getvalue().splitlines():
        assert f"    {line}\n" in QUICKSTART


def test_quickstart_shows_the_real_plugin_list() -> None:
    """The --list-plugins lines of the built-ins are the ones the quickstart shows."""
    out = io.StringIO()
    list_plugins(REGISTRY, out)
    lines = [line for line in out.getvalue().splitlines() if BUILTIN_MODULE in line]
    assert len(lines) == len(BUILTINS)
    for line in lines:
        assert f"    {line}\n" in QUICKSTART


# --- the plugin guide's example ------------------------------------------------


def test_plugin_guide_tests_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests the plugin guide shows pass against the guide's example plugins."""
    acme = load_module("twisted.plugins.acme_edge", ACME_PLUGINS)
    monkeypatch.setitem(sys.modules, "twisted.plugins.acme_edge", acme)
    example = load_module(
        "acme_edge_guide_tests", DOCS / "examples" / "test_acme_edge.py"
    )
    tests = [
        getattr(example, name) for name in dir(example) if name.startswith("test_")
    ]
    assert len(tests) >= 3
    for test in tests:
        test()
