"""Kubernetes protobuf bodies <-> the JSON dicts the sandbox works on, driven by the upstream descriptors.

kubectl 1.33 (client-go typed clients) sends built-in kinds as ``application/vnd.kubernetes.protobuf``: the 4 bytes
``k8s\\0`` then a ``runtime.Unknown`` whose ``typeMeta`` names apiVersion/kind and whose ``raw`` is the object's own
message. One generic converter walks the message descriptors (kubeops/sandbox/proto/k8s-api.binpb, compiled from
k8s.io/api + k8s.io/apimachinery v0.33.9 by scripts/build_k8s_proto.py), so every kind with a .proto is covered
without per-kind code. Proto field names are the JSON names nearly everywhere (go-to-protobuf names fields by their
json tag); the exceptions, inline-embedded structs (`_INLINE`) and a few Go-named fields (`_RENAMED`), are listed
and checked against the upstream OpenAPI schemas by tests/sandbox/test_protobuf.py.

The JSON shapes that are not "a message is an object" are handled by type, as the Go types marshal them:
Time (RFC 3339 seconds), MicroTime (microseconds), Duration (Go duration text), IntOrString (number or string),
Quantity (string), RawExtension and FieldsV1 (embedded JSON), the ``repeated string items`` wrappers Verbs and
ExtraValue (plain arrays), ``bytes`` (base64).

Decoding follows what Go's JSON encoder would have written for the decoded struct, with two simplifications: a
singular string field equal to ``""`` is dropped (gogo-protobuf writes every non-pointer string, and ``""`` is what
``omitempty`` would have left out), because the sandbox tells "absent" from "empty" in places a Go server cannot;
and zero numbers/flags are kept (the wire cannot tell a pointer's explicit 0, e.g. ``replicas: 0``, from a plain
field's zero) except for the few plain `omitempty` ones listed in `_OMIT_ZERO`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime
from importlib import resources
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_TIME = f"{_META}.Time"
_MICRO_TIME = f"{_META}.MicroTime"
_DURATION = f"{_META}.Duration"
_FIELDS_V1 = f"{_META}.FieldsV1"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_STRING_LISTS = frozenset({f"{_META}.Verbs", "k8s.io.api.authentication.v1.ExtraValue",
                           "k8s.io.api.authentication.v1beta1.ExtraValue", "k8s.io.api.authorization.v1.ExtraValue",
                           "k8s.io.api.authorization.v1beta1.ExtraValue", "k8s.io.api.certificates.v1.ExtraValue",
                           "k8s.io.api.certificates.v1beta1.ExtraValue"})
# Non-pointer `omitempty` numbers and flags that every object kubectl builds carries as 0/false on the wire (gogo
# writes them all); Go's JSON would leave them out, and so do we. Pointer fields (replicas, runAsUser, ...) keep 0.
_OMIT_ZERO = frozenset({"generation", "hostPort", "nodePort", "healthCheckNodePort", "stdin", "stdinOnce", "tty",
                        "hostNetwork", "hostPID", "hostIPC", "minReadySeconds", "paused", "unschedulable", "readOnly",
                        "publishNotReadyAddresses",
                        # Probe's plain int32s (the API server defaults 0 to 1, 10, 1, 3)
                        "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                        "failureThreshold"})
# Where the Go type embeds a struct inline (``json:",inline"``), the .proto has one field holding it, e.g.
# Probe.handler (ProbeHandler: exec/httpGet/tcpSocket/grpc) or Volume.volumeSource: JSON flattens it.
_INLINE = frozenset({
    "k8s.io.api.core.v1.Probe.handler", "k8s.io.api.core.v1.Volume.volumeSource",
    "k8s.io.api.core.v1.PersistentVolumeSpec.persistentVolumeSource",
    "k8s.io.api.core.v1.EphemeralContainer.ephemeralContainerCommon",
    *(f"k8s.io.api.core.v1.{m}.localObjectReference" for m in (
        "ConfigMapEnvSource", "ConfigMapKeySelector", "ConfigMapProjection", "ConfigMapVolumeSource",
        "SecretEnvSource", "SecretKeySelector", "SecretProjection")),
    "k8s.io.api.networking.v1.IngressRule.ingressRuleValue",
    *(f"k8s.io.api.admissionregistration.{v}.NamedRuleWithOperations.ruleWithOperations"
      for v in ("v1", "v1alpha1", "v1beta1")),
    "k8s.io.api.admissionregistration.v1.RuleWithOperations.rule",
    *(f"k8s.io.api.resource.{v}.{m}.deviceConfiguration" for v in ("v1alpha3", "v1beta1", "v1beta2")
      for m in ("DeviceAllocationConfiguration", "DeviceClaimConfiguration", "DeviceClassConfiguration")),
})
# The few .proto field names that are not the JSON name (go-to-protobuf used the Go name where the json tag did
# not lowerCamel it).
_RENAMED = {"Webhooks": "webhooks", "Expression": "expression", "Name": "name", "uID": "uid",
            "aPIGroup": "apiGroup"}
_EPOCH_YEAR1 = -62135596800  # Go's zero time.Time in Unix seconds: means "no time"


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf envelope, or names a kind without a message type."""


class _Registry:
    """The descriptor pool and message classes, loaded once on first use (about 60 ms)."""

    _lock = threading.Lock()
    _instance: _Registry | None = None

    def __init__(self) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        data = resources.files("kubeops.sandbox").joinpath("proto/k8s-api.binpb").read_bytes()
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
        self.pool = descriptor_pool.DescriptorPool()
        for f in files.file:
            self.pool.Add(f)
        self._factory = message_factory
        self._classes: dict[str, Any] = {}

    @classmethod
    def get(cls) -> _Registry:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def message_class(self, full_name: str) -> Any | None:
        klass = self._classes.get(full_name)
        if klass is None:
            try:
                desc = self.pool.FindMessageTypeByName(full_name)
            except KeyError:
                return None
            klass = self._classes[full_name] = self._factory.GetMessageClass(desc)
        return klass


def message_name(api_version: str, kind: str) -> str | None:
    """The full protobuf name of `kind` in `api_version`, or None when no .proto defines it.

    ``apps/v1 Deployment`` -> ``k8s.io.api.apps.v1.Deployment`` (a group's package is its first DNS label;
    the core group is ``core``); kinds of meta/v1 (Status, APIGroupList, DeleteOptions...) are found from any
    version.
    """
    group, _, version = api_version.rpartition("/")
    package = group.split(".")[0] if group else "core"
    reg = _Registry.get()
    for name in (f"k8s.io.api.{package}.{version}.{kind}", f"{_META}.{kind}"):
        if reg.message_class(name) is not None:
            return name
    return None


def has_message(api_version: str, kind: str) -> bool:
    return message_name(api_version, kind) is not None


# ---- envelope ------------------------------------------------------------------------------------------------


def decode(data: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-prefixed body to the JSON dict of its object, kind and apiVersion first."""
    if not data.startswith(MAGIC):
        raise ProtobufError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    reg = _Registry.get()
    unknown = reg.message_class(_UNKNOWN)()
    try:
        unknown.ParseFromString(data[len(MAGIC):])
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ProtobufError(f"cannot decode runtime.Unknown: {exc}") from None
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    name = message_name(api_version, kind)
    if name is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    msg = reg.message_class(name)()
    try:
        msg.ParseFromString(unknown.raw)
    except Exception as exc:
        raise ProtobufError(f"cannot decode {kind}: {exc}") from None
    out: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    out.update(to_dict(msg))
    return out


def encode(obj: dict[str, Any]) -> bytes | None:
    """The protobuf body for a JSON object naming kind and apiVersion, or None when no message type fits."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return None
    name = message_name(api_version, kind)
    if name is None:
        return None
    reg = _Registry.get()
    msg = reg.message_class(name)()
    from_dict(msg, obj)
    unknown = reg.message_class(_UNKNOWN)()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = msg.SerializeToString()
    return MAGIC + unknown.SerializeToString()


def watch_frame(event_type: str, obj: dict[str, Any]) -> bytes:
    """One event of a ``application/vnd.kubernetes.protobuf;stream=watch`` stream: a 4-byte big-endian length,
    then a bare ``meta.v1.WatchEvent`` (no envelope) whose ``object.raw`` is the object's full envelope."""
    reg = _Registry.get()
    event = reg.message_class(f"{_META}.WatchEvent")()
    event.type = event_type
    event.object.raw = encode(obj) or b""
    data = event.SerializeToString()
    return len(data).to_bytes(4, "big") + data


def read_watch_frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The (type, object) events of a protobuf watch stream body (what client-go's stream decoder does)."""
    reg = _Registry.get()
    out = []
    while data:
        size = int.from_bytes(data[:4], "big")
        event = reg.message_class(f"{_META}.WatchEvent")()
        event.ParseFromString(data[4:4 + size])
        out.append((event.type, decode(event.object.raw)))
        data = data[4 + size:]
    return out


# ---- message -> JSON -----------------------------------------------------------------------------------------


def to_dict(msg: Any) -> dict[str, Any]:
    """A message's JSON object (fields set on the wire only)."""
    out: dict[str, Any] = {}
    owner = msg.DESCRIPTOR.full_name
    for field, value in msg.ListFields():
        name = _RENAMED.get(field.name, field.name)
        if f"{owner}.{field.name}" in _INLINE:
            out.update(to_dict(value))
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[name] = {k: _value_to_json(value_field, v) for k, v in value.items()}
        elif _is_repeated(field):
            out[name] = [_value_to_json(field, v) for v in value]
        else:
            converted = _value_to_json(field, value)
            if converted is None and field.message_type is not None and field.message_type.full_name in (
                    _TIME, _MICRO_TIME):
                out[name] = None  # a zero time.Time on the wire: Go's JSON writes null (creationTimestamp: null)
                continue
            if converted is None or (converted == "" and field.type == field.TYPE_STRING):
                continue
            if name in _OMIT_ZERO and converted in (0, False):
                continue
            out[name] = converted
    return out


_JSON_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


def json_fields(desc: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON key -> field, JSON key -> the inline field holding it) of a message type, cached."""
    cached = _JSON_FIELDS.get(desc.full_name)
    if cached is None:
        direct: dict[str, Any] = {}
        inline: dict[str, Any] = {}
        for field in desc.fields:
            if f"{desc.full_name}.{field.name}" in _INLINE:
                sub_direct, sub_inline = json_fields(field.message_type)
                inline.update(dict.fromkeys([*sub_direct, *sub_inline], field))
            else:
                direct[_RENAMED.get(field.name, field.name)] = field
        cached = _JSON_FIELDS[desc.full_name] = (direct, inline)
    return cached


def _is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6 (where `label` is deprecated)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def _value_to_json(field: Any, value: Any) -> Any:
    if field.message_type is None:
        if field.type == field.TYPE_BYTES:
            return base64.b64encode(value).decode()
        return value
    name = field.message_type.full_name
    if name == _TIME:
        return _format_time(value.seconds, 0)
    if name == _MICRO_TIME:
        return _format_time(value.seconds, value.nanos, micro=True)
    if name == _DURATION:
        return _format_duration(value.duration)
    if name == _INT_OR_STRING:
        return value.strVal if value.type == 1 else value.intVal
    if name == _QUANTITY:
        return value.string if value.HasField("string") else None
    if name in (_RAW_EXTENSION, _FIELDS_V1):
        raw = value.raw if name == _RAW_EXTENSION else value.Raw
        if not raw:
            return None
        if raw.startswith(MAGIC):
            return decode(raw)
        return json.loads(raw)
    if name in _STRING_LISTS:
        return list(value.items)
    return to_dict(value)


def _format_time(seconds: int, nanos: int, *, micro: bool = False) -> str | None:
    if seconds <= _EPOCH_YEAR1 or (seconds == 0 and nanos == 0):
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_duration(nanos: int) -> str:
    """Go's time.Duration.String(): ``1h2m3s``, ``1m0s``, ``1.5s``, ``300ms``, ``0s``."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _trim(number: float) -> str:
    return f"{number:.9f}".rstrip("0").rstrip(".")


# ---- JSON -> message -----------------------------------------------------------------------------------------


def from_dict(msg: Any, data: dict[str, Any]) -> None:
    """Fill `msg` from a JSON object; keys without a field (kind, apiVersion, unknown ones) are skipped."""
    direct, inline = json_fields(msg.DESCRIPTOR)
    nested: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        field = direct.get(key)
        if field is None:
            holder = inline.get(key)
            if holder is not None and value is not None:
                nested.setdefault(holder.name, {})[key] = value
            continue
        if value is None:
            continue
        target = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for k, v in (value or {}).items():
                if v is None:
                    continue
                if value_field.message_type is None:
                    target[k] = _scalar(value_field, v)
                else:
                    _message_from_json(target[k], v)
        elif _is_repeated(field):
            for item in value or ():
                if field.message_type is None:
                    target.append(_scalar(field, item))
                else:
                    _message_from_json(target.add(), item)
        elif field.message_type is None:
            setattr(msg, field.name, _scalar(field, value))
        else:
            _message_from_json(target, value)
            if not target.ListFields():
                target.SetInParent()
    for name, sub in nested.items():
        from_dict(getattr(msg, name), sub)


def _scalar(field: Any, value: Any) -> Any:
    if field.type == field.TYPE_BYTES:
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if field.type == field.TYPE_STRING:
        return value if isinstance(value, str) else str(value)
    if field.type == field.TYPE_BOOL:
        return bool(value)
    if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return float(value)
    return int(value)


def _message_from_json(msg: Any, value: Any) -> None:
    name = msg.DESCRIPTOR.full_name
    if name in (_TIME, _MICRO_TIME):
        seconds, nanos = _parse_time(value)
        if seconds is not None:
            msg.seconds = seconds
            if nanos:
                msg.nanos = nanos
    elif name == _DURATION:
        msg.duration = _parse_duration(value) if isinstance(value, str) else int(value)
    elif name == _INT_OR_STRING:
        if isinstance(value, str):
            msg.type, msg.strVal = 1, value
        else:
            msg.type, msg.intVal = 0, int(value)
    elif name == _QUANTITY:
        msg.string = str(value)
    elif name == _RAW_EXTENSION:
        msg.raw = json.dumps(value, separators=(",", ":")).encode()
    elif name == _FIELDS_V1:
        msg.Raw = json.dumps(value, separators=(",", ":")).encode()
    elif name in _STRING_LISTS:
        msg.items.extend(str(v) for v in value)
    elif isinstance(value, dict):
        from_dict(msg, value)


def _parse_time(value: Any) -> tuple[int | None, int]:
    if not isinstance(value, str) or not value:
        return None, 0
    text = value.replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
    if match is None:
        raise ProtobufError(f"invalid time {value!r}")
    moment = datetime.fromisoformat(match.group(1) + (match.group(3) or "+00:00"))
    nanos = int((match.group(2) or "0").ljust(9, "0")[:9])
    return int(moment.timestamp()), nanos


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def _parse_duration(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", body)
    if not parts or "".join(a + b for a, b in parts) != body:
        raise ProtobufError(f"invalid duration {text!r}")
    return sign * round(sum(float(a) * _DURATION_UNITS[b] for a, b in parts))
