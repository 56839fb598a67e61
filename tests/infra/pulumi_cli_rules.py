"""The Pulumi CLI's own rules for project and stack config, applied offline.

Before the program runs, the CLI validates `Pulumi.yaml`'s `config:` block and merges it into each
stack's config (pulumi/pulumi sdk/go/common/workspace: Project.Validate and
ValidateStackConfigAndApplyProjectConfig; the messages below are the CLI's). Mocked program tests
never reach that step, so a stack the CLI would refuse looked fine to them: this module refuses it too.

Rules, with the CLI's wording:
- project: a key cannot have both `default` and `value`; an `array` needs `items`; a default must be
  of the declared type; a key of another namespace (`gcp:project`) may not declare a type or default;
  a `secret: true` key may not carry a plain default.
- stack: every typed project key without a default must be set ("Stack 'X' is missing configuration
  value 'k'"); a value must be of the declared type; a secret key's value must be `secure:`.
- and this program's rule on top (infra/config.py refuses it at run time): no undeclared
  `<project>:` key in a stack file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES = {"string", "integer", "boolean", "array"}


def _of_type(value: Any, type_: str, items: Mapping[str, Any] | None) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "array":
        item_type = (items or {}).get("type", "string")
        return isinstance(value, list) and all(
            _of_type(v, item_type, (items or {}).get("items")) for v in value
        )
    return False


def project_errors(project: Mapping[str, Any]) -> list[str]:
    name = project.get("name", "")
    errors = []
    for key, spec in (project.get("config") or {}).items():
        if not isinstance(spec, Mapping):
            continue  # a plain value: untyped, never validated
        namespaced = ":" in key and not key.startswith(f"{name}:")
        if namespaced and "type" in spec:
            errors.append(
                f"Configuration key '{key}' is not namespaced by the project and should not define a type"
            )
        if namespaced and "default" in spec:
            errors.append(
                f"Configuration key '{key}' is not namespaced by the project and should not define a "
                "default value"
            )
        if "default" in spec and "value" in spec:
            errors.append(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        type_ = spec.get("type")
        if type_ is not None and type_ not in _TYPES:
            errors.append(f"Configuration key '{key}' has an unknown type '{type_}'")
        if type_ == "array" and "items" not in spec:
            errors.append(
                f"The configuration key '{key}' declares an array but does not specify the underlying "
                "type via the 'items' attribute"
            )
        if type_ in _TYPES and "default" in spec and not _of_type(spec["default"], type_, spec.get("items")):
            errors.append(
                f"The default value specified for configuration key '{key}' is not of the expected "
                f"type '{type_}'"
            )
        if spec.get("secret") and "default" in spec and not isinstance(spec["default"], Mapping):
            errors.append(f"Configuration key '{key}' is secret and cannot have a plain default value")
    return errors


def stack_errors(stack: str, project: Mapping[str, Any], stack_config: Mapping[str, Any]) -> list[str]:
    name = project["name"]
    declared = project.get("config") or {}

    def full(key: str) -> str:
        return key if ":" in key else f"{name}:{key}"

    values = {full(k): v for k, v in (stack_config or {}).items()}
    errors = []
    missing = []
    for key, spec in declared.items():
        if not isinstance(spec, Mapping) or "type" not in spec:
            continue
        value = values.get(full(key))
        if value is None:
            if "default" not in spec:
                missing.append(key)
            continue
        if isinstance(value, Mapping) and "secure" in value:
            continue  # encrypted: the type is checked after decryption, out of reach here
        if spec.get("secret"):
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
        elif not _of_type(value, spec["type"], spec.get("items")):
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be of type '{spec['type']}'")
    if missing:
        quoted = [f"'{k}'" for k in missing]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        errors.append(
            f"Stack '{stack}' is missing configuration value{'s' if len(missing) > 1 else ''} {listed}"
        )
    undeclared = [k for k in values if k.startswith(f"{name}:") and k.split(":", 1)[1] not in declared]
    errors += [
        f"Stack '{stack}' sets '{k}', which Pulumi.yaml does not declare (a typo?)" for k in undeclared
    ]
    return errors
