# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One image's metadata -> one service profile (step 3). Controller only.

The profile carries the whole service description: the image label
``io.nanoedge.description`` validated with the one description schema
(``_service_description.py``), or, for an image labelled the older way (only
``io.nanoedge.requirements`` and ``io.nanoedge.service``), what its labels
and config say: its name, requirements, version, description text and its
one exposed port. Requirements come from an image label, from JSON in an OCI
annotation or from a free-text description, validated with the one
requirement schema; labels that say the same thing twice must agree, and so
must the platforms of a multi-architecture image.
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    RequirementError,
    normalize_requirements,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import parse_registry_url
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import ImageMetadata
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import (
    PLACEMENT_KEYS,
    SERVICE_NAME_RE,
    DescriptionError,
    minimal_description,
    parse_description_label,
)

if t.TYPE_CHECKING:
    from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import DiscoveryOptions

# The OCI image spec's keys, which image builders fill in (docker build --label, buildx).
OCI_VERSION_LABEL = "org.opencontainers.image.version"
OCI_DESCRIPTION_LABEL = "org.opencontainers.image.description"
# What makes an image unusable as a service: each names the label and the reason.
PROFILE_ERRORS = (RequirementError, DescriptionError)
_EXPOSED_RE = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp))?$")


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


def _optional_everywhere(values: t.Mapping[str, t.Optional[str]], what: str,
                         parse: t.Callable[[str], t.Dict[str, t.Any]]) -> t.Optional[t.Dict[str, t.Any]]:
    """Like _normalized_everywhere, for a label that may be missing on every platform."""
    if all(value is None for value in values.values()):
        return None
    return _normalized_everywhere(values, what, parse)


def _requirements(meta: ImageMetadata, options: "DiscoveryOptions",
                  described: t.Optional[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    """The requirements the options point at; a description label may stand in for a missing label."""
    platforms = meta.content.platforms
    if options.source == "annotation":
        key = options.annotation
        top = meta.content.annotations.get(key)
        # where a builder put the description: index/manifest annotation, else the config label
        values = {p.platform: top if top is not None else p.annotations.get(key, p.labels.get(key))
                  for p in platforms}
        what = "annotation %s" % key
        return _normalized_everywhere(values, what, lambda text: requirements_from_description(text, what))
    key = options.requirements_label
    values = {p.platform: p.labels.get(key) for p in platforms}
    what = "label %s" % key
    if described is not None and all(value is None for value in values.values()):
        return described["requirements"]
    return _normalized_everywhere(values, what, lambda text: parse_requirements_text(text, what))


def _exposed_port(meta: ImageMetadata) -> t.Optional[t.Dict[str, t.Any]]:
    """The one port the image exposes (``EXPOSE 5701/udp``), or None when it exposes none or several."""
    ports = _same_everywhere({p.platform: json.dumps(list(p.exposed_ports)) for p in meta.content.platforms},
                             "the exposed ports")
    found = json.loads(ports) if ports else []
    match = _EXPOSED_RE.fullmatch(found[0]) if len(found) == 1 else None
    if not match or not 0 < int(match.group(1)) < 65536:
        return None
    return {"number": int(match.group(1)), "protocol": match.group(2) or "tcp"}


def _description_from_labels(meta: ImageMetadata, name: str, requires: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """What an image without a description label says of itself, with the schema's defaults for the rest."""
    platforms = meta.content.platforms
    known = {}
    for key, label in (("version", OCI_VERSION_LABEL), ("description", OCI_DESCRIPTION_LABEL)):
        known[key] = _same_everywhere({p.platform: p.labels.get(label) for p in platforms}, "label %s" % label) or ""
    return minimal_description(name, requires, port=_exposed_port(meta), **known)


def _agree(described: t.Dict[str, t.Any], requires: t.Dict[str, t.Any], name: t.Optional[str],
           options: "DiscoveryOptions") -> None:
    """The labels that repeat part of the description say the same as it."""
    what = "label %s" % options.description_label
    if requires != described["requirements"]:
        source = ("annotation %s" % options.annotation if options.source == "annotation"
                  else "label %s" % options.requirements_label)
        raise RequirementError("%s and %s disagree on the requirements (%s; %s)" % (
            source, what, json.dumps(requires, sort_keys=True), json.dumps(described["requirements"], sort_keys=True)))
    if name not in (None, "") and name != described["name"]:
        raise RequirementError("label %s=%r and %s (name %r) disagree on the service name"
                               % (options.service_label, name, what, described["name"]))


def profile_from_image(meta: ImageMetadata, options: "DiscoveryOptions") -> t.Dict[str, t.Any]:
    """One service profile (requirements and the service description) from an image's metadata.

    Raises one of PROFILE_ERRORS naming the label and the reason."""
    platforms = meta.content.platforms
    described = None
    if options.description_label:
        what = "label %s" % options.description_label
        # an empty value is how a derived image takes back its base's label (a label cannot be removed)
        described = _optional_everywhere({p.platform: p.labels.get(options.description_label) or None
                                          for p in platforms}, what, lambda text: parse_description_label(text, what))
    requires = _requirements(meta, options, described)
    name = None
    if options.service_label:
        name = _same_everywhere({p.platform: p.labels.get(options.service_label) for p in platforms},
                                "label %s" % options.service_label)
    if described is not None:
        _agree(described, requires, name, options)
        # without service_label the repository names the service, whatever the description says
        if not options.service_label:
            described["name"] = _service_name(None, meta.repository, "")
        description = described
    else:
        own_name = _service_name(name, meta.repository, options.service_label)
        description = _description_from_labels(meta, own_name, requires)
    profile = {
        "name": description["name"],
        "image": meta.reference,
        "digest": meta.digest,
        "requires": requires,
        "platforms": meta.platform_names,
        "registry": parse_registry_url(options.registry)[0],
        "description": description,
    }
    # the allocate filter and the plan read these from the profile itself
    profile.update({key: description[key] for key in PLACEMENT_KEYS if key in description})
    return profile


def _service_name(label_value: t.Optional[str], repository: str, label: str) -> str:
    if label_value is None or label_value == "":
        return repository.rsplit("/", 1)[-1]
    if not SERVICE_NAME_RE.fullmatch(label_value):
        raise RequirementError("label %s=%r is not a valid service name (letters, digits, '.', '_', '-')"
                               % (label, label_value))
    return label_value
