# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One image's metadata -> one service profile (step 3). Controller only.

Requirements come from an image label, from JSON in an OCI annotation or
from a free-text description; every document is validated with the one
requirement schema, ``normalize_requirements``. Platforms of a
multi-architecture image must agree.
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    RequirementError,
    normalize_requirements,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import ImageMetadata

if t.TYPE_CHECKING:
    from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import DiscoveryOptions

SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def parse_requirements_text(text: str, where: str) -> t.Dict[str, t.Any]:
    """JSON text -> normalised requirements; errors name ``where`` (the label or annotation)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RequirementError("%s is not valid JSON (%s)" % (where, exc)) from None
    if not isinstance(raw, dict):
        raise RequirementError("%s must be a JSON object, got %s" % (where, _json_type(raw)))
    try:
        return normalize_requirements(raw)
    except RequirementError as exc:
        raise RequirementError("%s: %s" % (where, exc)) from None


def requirements_from_description(text: str, where: str) -> t.Dict[str, t.Any]:
    """The prototype's convention: a JSON object in a free-text description.

    The whole text may be the object, or prose around one object (a Hub
    "full description" in Markdown); the first ``{`` that starts a JSON object wins.
    """
    stripped = text.strip()
    if not stripped:
        raise RequirementError("%s is empty" % where)
    try:
        return parse_requirements_text(stripped, where)
    except RequirementError as whole_error:
        if stripped.startswith("{") or "{" not in stripped:
            raise whole_error
    decoder = json.JSONDecoder()
    index = stripped.find("{")
    while index >= 0:
        try:
            raw, _end = decoder.raw_decode(stripped, index)
        except ValueError:
            index = stripped.find("{", index + 1)
            continue
        try:
            return normalize_requirements(raw)
        except RequirementError as exc:
            raise RequirementError("%s: %s" % (where, exc)) from None
    raise RequirementError("%s contains no JSON object" % where)


def _json_type(value: t.Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _same_everywhere(values: t.Mapping[str, t.Optional[str]], what: str) -> t.Optional[str]:
    """One value shared by all platforms, or an error listing who says what."""
    distinct = sorted(set(values.values()), key=lambda v: (v is None, v or ""))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    detail = "; ".join("%s: %s" % (platform, "(missing)" if value is None else value)
                       for platform, value in sorted(values.items()))
    raise RequirementError("%s differs between platforms (%s)" % (what, detail))


def _normalized_everywhere(values: t.Mapping[str, t.Optional[str]], what: str,
                           parse: t.Callable[[str], t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    """Platforms must agree on the requirements; formatting differences do not count."""
    try:
        text = _same_everywhere(values, what)
    except RequirementError:
        if any(v is None for v in values.values()):
            raise
        parsed = {platform: parse(v) for platform, v in values.items() if v is not None}
        if len({json.dumps(p, sort_keys=True) for p in parsed.values()}) > 1:
            raise
        return next(iter(parsed.values()))
    if text is None:
        raise RequirementError("%s is missing" % what)
    return parse(text)


def profile_from_image(meta: ImageMetadata, options: "DiscoveryOptions") -> t.Dict[str, t.Any]:
    """One Contract 2 service dict from an image's metadata; RequirementError names the reason."""
    platforms = meta.content.platforms
    if options.source == "annotation":
        key = options.annotation
        top = meta.content.annotations.get(key)
        # where a builder put the description: index/manifest annotation, else the config label
        values = {p.platform: top if top is not None else p.annotations.get(key, p.labels.get(key))
                  for p in platforms}
        what = "annotation %s" % key
        requires = _normalized_everywhere(values, what, lambda text: requirements_from_description(text, what))
    else:
        key = options.requirements_label
        values = {p.platform: p.labels.get(key) for p in platforms}
        what = "label %s" % key
        requires = _normalized_everywhere(values, what, lambda text: parse_requirements_text(text, what))
    name = None
    if options.service_label:
        name = _same_everywhere({p.platform: p.labels.get(options.service_label) for p in platforms},
                                "label %s" % options.service_label)
    return {
        "name": _service_name(name, meta.repository, options.service_label),
        "image": meta.reference,
        "digest": meta.digest,
        "requires": requires,
        "platforms": meta.platform_names,
    }


def _service_name(label_value: t.Optional[str], repository: str, label: str) -> str:
    if label_value is None or label_value == "":
        return repository.rsplit("/", 1)[-1]
    if not SERVICE_NAME_RE.match(label_value):
        raise RequirementError("label %s=%r is not a valid service name (letters, digits, '.', '_', '-')"
                               % (label, label_value))
    return label_value
