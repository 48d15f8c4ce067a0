"""compat: the private parts of jinja2 and phonenumbers pass their checks as installed, and an
object without the expected shape fails with a message that says what to do."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import phonenumbers
import phonenumbers.phonenumberutil
import pytest
from jinja2 import StrictUndefined
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from nextstep import __version__
from nextstep.engine.rules import compat
from nextstep.engine.rules.compat import IncompatibleDependency

ROOT = Path(__file__).resolve().parents[2]
ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def clear_message(package: str) -> str:
    bound = compat.BOUNDS[package]
    return (
        rf"^nextstep-whatsapp {re.escape(__version__)} needs {package} <{bound}: {package} "
        rf"\S+ changed .+; pin {package}<{bound} or upgrade nextstep$"
    )


def test_the_installed_libraries_pass_every_check() -> None:
    compat.check_all()
    assert compat.PassArg is _PassArg and compat.Context is Context
    assert compat.PhoneMetadata is phonenumbers.PhoneMetadata
    assert compat.COUNTRY_CODE_TO_REGION_CODE is (
        phonenumbers.phonenumberutil.COUNTRY_CODE_TO_REGION_CODE
    )


def test_the_bounds_are_the_ones_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[<>=!~,\[ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    for package, bound in compat.BOUNDS.items():
        assert f"<{bound}" in declared[package].split(","), declared[package]


def test_the_error_is_an_import_error() -> None:
    assert issubclass(IncompatibleDependency, ImportError)


# -- fakes built by hand: each lacks or changes one thing nextstep relies on --------------------
class NoFromObj:
    """A _PassArg without ``from_obj``."""


class BlindPassArg:
    """A _PassArg whose ``from_obj`` no longer tells a context filter apart."""

    @staticmethod
    def from_obj(obj: Any) -> Any:
        return None


class ContextWithoutExportedVars:
    """A Context of the old shape, minus ``exported_vars``."""

    def __init__(self, environment: Any, parent: dict[str, Any], name: Any, blocks: Any) -> None:
        self.parent = parent
        self.vars: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.parent.get(key)


class ContextTakingKeywords:
    """A Context whose constructor no longer takes the four arguments by position."""

    def __init__(self, *, environment: Any) -> None:
        self.environment = environment


class TemplateWithoutRootRenderFunc:
    """A template that renders, but has no ``root_render_func``."""

    def render(self, **names: Any) -> str:
        return ""


class TemplateRenderingBytes:
    """A template whose render function yields something other than the text."""

    def root_render_func(self, context: Any) -> Iterator[bytes]:
        yield b"value"


class MetadataWithoutLengths:
    """PhoneMetadata whose regions lost ``general_desc``."""

    @staticmethod
    def metadata_for_region(region: str) -> Any:
        return SimpleNamespace(
            country_code=34,
            national_prefix=None,
            national_prefix_for_parsing=None,
            international_prefix="00",
        )

    @staticmethod
    def metadata_for_region_or_calling_code(code: int, region: str) -> Any:
        return MetadataWithoutLengths.metadata_for_region(region)


class MetadataWithoutRegionLookup:
    """PhoneMetadata without ``metadata_for_region``."""


def real_context() -> Any:
    return Context(ENV, {"name": "value"}, None, {})


FAILING: list[Any] = [
    pytest.param(
        "jinja2",
        lambda: compat.private(SimpleNamespace(__name__="jinja2.utils"), "_PassArg", "jinja2"),
        "jinja2.utils._PassArg (it is gone)",
        id="no _PassArg",
    ),
    pytest.param("jinja2", lambda: compat.check_pass_arg(NoFromObj), "_PassArg", id="no from_obj"),
    pytest.param(
        "jinja2", lambda: compat.check_pass_arg(BlindPassArg), "from_obj", id="blind from_obj"
    ),
    pytest.param(
        "jinja2",
        lambda: compat.check_context(ContextWithoutExportedVars, ENV),
        "exported_vars",
        id="no exported_vars",
    ),
    pytest.param(
        "jinja2",
        lambda: compat.check_context(ContextTakingKeywords, ENV),
        "Context(environment, parent, name, blocks)",
        id="new Context signature",
    ),
    pytest.param(
        "jinja2",
        lambda: compat.check_root_render_func(TemplateWithoutRootRenderFunc(), real_context()),
        "root_render_func",
        id="no root_render_func",
    ),
    pytest.param(
        "jinja2",
        lambda: compat.check_root_render_func(TemplateRenderingBytes(), real_context()),
        "root_render_func",
        id="root_render_func yields bytes",
    ),
    pytest.param(
        "phonenumbers",
        lambda: compat.check_phone_metadata(MetadataWithoutLengths),
        "general_desc.possible_length",
        id="no possible lengths",
    ),
    pytest.param(
        "phonenumbers",
        lambda: compat.check_phone_metadata(MetadataWithoutRegionLookup),
        "metadata_for_region",
        id="no metadata_for_region",
    ),
    pytest.param(
        "phonenumbers",
        lambda: compat.private(
            SimpleNamespace(__name__="phonenumbers.phonenumberutil"),
            "COUNTRY_CODE_TO_REGION_CODE",
            "phonenumbers",
        ),
        "COUNTRY_CODE_TO_REGION_CODE (it is gone)",
        id="no COUNTRY_CODE_TO_REGION_CODE",
    ),
    pytest.param(
        "phonenumbers",
        lambda: compat.check_country_codes({"34": ["ES"], "1": ["US"]}),
        "COUNTRY_CODE_TO_REGION_CODE",
        id="calling codes as text",
    ),
    pytest.param(
        "phonenumbers",
        lambda: compat.check_country_codes(["ES", "US"]),
        "COUNTRY_CODE_TO_REGION_CODE",
        id="not a mapping",
    ),
]


@pytest.mark.parametrize(("package", "check", "named"), FAILING)
def test_a_changed_api_fails_with_a_clear_message(
    package: str, check: Callable[[], None], named: str
) -> None:
    with pytest.raises(IncompatibleDependency, match=clear_message(package)) as caught:
        check()
    assert named in str(caught.value)
