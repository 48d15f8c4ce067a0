"""The private parts of jinja2 and phonenumbers nextstep relies on, checked once at import.

They buy speed on the per-event hot path: lookups.py renders plain templates without Jinja when no
filter wants the context (``jinja2.utils._PassArg``); expressions.py renders through
``Template.root_render_func`` on a ``jinja2.runtime.Context`` it builds once per event (no
per-call set-up of ``Template.render``); phones.py reads phonenumbers' metadata
(``PhoneMetadata``, ``COUNTRY_CODE_TO_REGION_CODE``) to accept plain numbers without a full
parse. pyproject.toml bounds both libraries to the releases tested (:data:`BOUNDS`); should an
installation get past the bounds anyway, this module fails at import with what changed and
what to do, instead of a wrong render or an AttributeError mid-send. Those modules import the
names from here, never from the libraries.

The error is an ImportError (the module cannot be used), raised before any command runs, so it
is not part of the NextstepError tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2.utils
import phonenumbers.phonenumberutil
from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from phonenumbers import PhoneMetadata

from nextstep import __distribution__, __version__

BOUNDS = {"jinja2": "3.2", "phonenumbers": "9.1"}
"""First release of each library not known to work (pyproject.toml: ``jinja2<3.2``…)."""


class IncompatibleDependency(ImportError):
    """An installed library no longer has the shape nextstep relies on."""


def incompatible(package: str, what: str) -> IncompatibleDependency:
    """The error for ``package``: which version changed ``what``, and what to do."""
    from importlib import metadata  # only on failure: importing it costs ~25 ms

    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = "as installed"
    bound = BOUNDS[package]
    return IncompatibleDependency(
        f"{__distribution__} {__version__} needs {package} <{bound}: {package} {installed} "
        f"changed {what}; pin {package}<{bound} or upgrade nextstep"
    )


# -- jinja2 -----------------------------------------------------------------------------------
@pass_context
def _wants_context(context: Any, value: Any) -> Any:
    return value


def _plain(value: Any) -> Any:
    return value


def check_pass_arg(pass_arg: Any) -> None:
    """``pass_arg.from_obj(f)`` is not None for a ``@pass_context`` filter, None for a plain one
    (lookups.py renders directly only through plain filters)."""
    try:
        ok = pass_arg.from_obj(_wants_context) is not None and pass_arg.from_obj(_plain) is None
    except Exception:
        ok = False
    if not ok:
        raise incompatible(
            "jinja2", "jinja2.utils._PassArg.from_obj (how a filter asks for the context)"
        )


def check_context(context_class: Any, environment: Any) -> None:
    """``context_class(environment, names, None, {})`` is a context reading ``names`` with
    clearable ``vars`` and ``exported_vars`` (how expressions.py builds one per event)."""
    try:
        context = context_class(environment, {"name": "value"}, None, {})
        ok = context.get("name") == "value"
        context.vars.clear()
        context.exported_vars.clear()
    except Exception:
        ok = False
    if not ok:
        raise incompatible(
            "jinja2",
            "jinja2.runtime.Context(environment, parent, name, blocks) or its vars/exported_vars",
        )


def check_root_render_func(template: Any, context: Any) -> None:
    """``template.root_render_func(context)`` yields the text of ``{% set result = name %}
    {{ name }}`` and leaves ``result`` in ``context.vars`` (how expressions.py renders)."""
    try:
        text = "".join(template.root_render_func(context))
        ok = text == "value" and context.vars.get("result") == "value"
    except Exception:
        ok = False
    if not ok:
        raise incompatible(
            "jinja2", "Template.root_render_func(context) (the compiled render function)"
        )


# -- phonenumbers -----------------------------------------------------------------------------
_REGION_FIELDS = ("country_code", "national_prefix", "national_prefix_for_parsing")


def check_phone_metadata(metadata_class: Any) -> None:
    """``metadata_for_region(region)`` and ``metadata_for_region_or_calling_code(code, region)``
    give the fields phones.py's fast path reads (prefixes, possible lengths)."""
    try:
        spain = metadata_class.metadata_for_region("ES")
        by_code = metadata_class.metadata_for_region_or_calling_code(34, "ES")
        ok = (
            all(hasattr(spain, name) for name in _REGION_FIELDS)
            and spain.country_code == 34
            and spain.international_prefix == "00"
            and 9 in tuple(by_code.general_desc.possible_length)
        )
    except Exception:
        ok = False
    if not ok:
        raise incompatible(
            "phonenumbers",
            "PhoneMetadata.metadata_for_region / metadata_for_region_or_calling_code or their "
            "fields (country_code, national_prefix, national_prefix_for_parsing, "
            "international_prefix, general_desc.possible_length)",
        )


def check_country_codes(country_codes: Any) -> None:
    """A mapping of each calling code (an int) to its regions, the main one first."""
    try:
        ok = isinstance(country_codes, Mapping) and country_codes[34][0] == "ES"
        ok = ok and country_codes[1][0] == "US" and "34" not in country_codes
    except Exception:
        ok = False
    if not ok:
        raise incompatible(
            "phonenumbers",
            "phonenumbers.phonenumberutil.COUNTRY_CODE_TO_REGION_CODE (calling code -> regions)",
        )


def private(module: Any, name: str, package: str) -> Any:
    """``module.name``, or the error saying that ``package`` no longer has it."""
    try:
        return getattr(module, name)
    except AttributeError:
        raise incompatible(package, f"{module.__name__}.{name} (it is gone)") from None


def check_all() -> None:
    """Every check above, on the installed libraries."""
    check_pass_arg(PassArg)
    environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    check_context(Context, environment)
    template = environment.from_string("{% set result = name %}{{ name }}")
    check_root_render_func(template, Context(environment, {"name": "value"}, None, {}))
    check_phone_metadata(PhoneMetadata)
    check_country_codes(COUNTRY_CODE_TO_REGION_CODE)


PassArg: Any = private(jinja2.utils, "_PassArg", "jinja2")
"""``jinja2.utils._PassArg``."""
COUNTRY_CODE_TO_REGION_CODE: Mapping[int, tuple[str, ...]] = private(
    phonenumbers.phonenumberutil, "COUNTRY_CODE_TO_REGION_CODE", "phonenumbers"
)
"""``phonenumbers.phonenumberutil.COUNTRY_CODE_TO_REGION_CODE``."""
check_all()

__all__ = ["BOUNDS", "COUNTRY_CODE_TO_REGION_CODE", "Context", "PassArg", "PhoneMetadata"]
