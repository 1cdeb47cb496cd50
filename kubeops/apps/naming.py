"""Names and label values: how an app version becomes a controller name and a `version` label.

The rule (documented in the README and in `inventory/apps/my-component.yaml`):

1. The version is lower-cased.
2. Every run of characters other than ``a-z`` and ``0-9`` becomes one ``-``; leading and trailing ``-`` go.
3. A leading ``v`` directly followed by a digit is dropped, so ``v123`` and ``123`` both name ``<app>-v123``.
4. The controller is named ``<app>-v<sanitised>`` and must fit a DNS label (63 characters): a longer one is an
   error, never truncated, because truncation could make two versions share a controller.

The sanitised form is also the value of the ``version`` label, so the label, the name and the selector agree;
the original version string goes into the image tag and the ``kubeops.io/version`` annotation.
"""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service names must start with a letter
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
MAX_LABEL = 63

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_LEADING_V = re.compile(r"v(?=[0-9])")


def sanitise_version(version: str) -> str:
    """``"1.2.3"`` -> ``"1-2-3"``, ``"v123"`` -> ``"123"``, ``"RC_1"`` -> ``"rc-1"``; ValueError if nothing is left."""
    text = _NOT_ALNUM.sub("-", str(version).lower()).strip("-")
    if _LEADING_V.match(text):
        text = text[1:]
    if not text:
        raise ValueError(f"version {version!r} has no letters or digits")
    return text


def controller_name(app: str, version: str) -> str:
    """``<app>-v<sanitised version>``; ValueError when it does not fit a DNS label."""
    name = f"{app}-v{sanitise_version(version)}"
    if len(name) > MAX_LABEL:
        raise ValueError(
            f"controller name {name!r} is {len(name)} characters; a DNS label allows {MAX_LABEL}"
        )
    return name


def is_dns_label(value: str) -> bool:
    return len(value) <= MAX_LABEL and DNS_LABEL.fullmatch(value) is not None


def is_dns_1035_label(value: str) -> bool:
    return len(value) <= MAX_LABEL and DNS_1035_LABEL.fullmatch(value) is not None


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL and LABEL_VALUE.fullmatch(value) is not None
