"""The pure schema functions behind custom resources (kubeops/sandbox/crdschema.py): every keyword kube-apiserver
checks, in its words, pruning with the paths kubectl names, defaults, and the structural checks on a CRD."""

from __future__ import annotations

from typing import Any

import pytest

from kubeops.sandbox import crdschema
from kubeops.sandbox.crdschema import apply_defaults, drop_nulls, prune, structural_errors, validate

PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["replicas"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
                          "exclusiveMaximum": True},
                "paused": {"type": "boolean"},
                "name": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "level": {"type": "integer", "enum": [1, 2]},
                "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"}},
                "containers": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "port": PORT}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4}},
                "target": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "counter": {"type": "integer", "format": "int32"},
                "ip": {"type": "string", "format": "ipv4"},
                "when": {"type": "string", "format": "date-time"},
                "anything": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}, "ready": {"type": "integer"}}},
    },
}


def causes_of(spec: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> list[tuple[str, str, str]]:
    return validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                     "spec": {"replicas": 1, **spec}}, schema)


def test_a_valid_object_has_no_causes():
    assert causes_of({"ratio": 0.5, "paused": False, "name": "abc", "mode": "fast", "tags": ["a"],
                      "containers": [{"name": "c", "port": 80}], "labels": {"a": "b"}, "target": "50%",
                      "note": None, "counter": 5, "ip": "10.0.0.1", "when": "2024-01-02T03:04:05Z",
                      "anything": {"x": [1, {"y": 2}]},
                      "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"replicas": "3"}, ("FieldValueTypeInvalid", "spec.replicas",
                         'Invalid value: "string": spec.replicas in body must be of type integer: "string"')),
    ({"paused": "yes"}, ("FieldValueTypeInvalid", "spec.paused",
                         'Invalid value: "string": spec.paused in body must be of type boolean: "string"')),
    ({"ratio": "1"}, ("FieldValueTypeInvalid", "spec.ratio",
                      'Invalid value: "string": spec.ratio in body must be of type number: "string"')),
    ({"tags": "a"}, ("FieldValueTypeInvalid", "spec.tags",
                     'Invalid value: "string": spec.tags in body must be of type array: "string"')),
    ({"labels": ["a"]}, ("FieldValueTypeInvalid", "spec.labels",
                         'Invalid value: "array": spec.labels in body must be of type object: "array"')),
    ({"name": 5}, ("FieldValueTypeInvalid", "spec.name",
                   'Invalid value: "integer": spec.name in body must be of type string: "integer"')),
    ({"target": True}, ("FieldValueTypeInvalid", "spec.target",
                        'Invalid value: "boolean": spec.target in body must be of type integer,string: "boolean"')),
    ({"mode": None}, ("FieldValueTypeInvalid", "spec.mode",
                      'Invalid value: "null": spec.mode in body must be of type string: "null"')),
])
def test_types_are_checked_with_the_api_servers_words(spec, expected):
    assert expected in causes_of(spec)


def test_numbers_accept_integers_and_integers_accept_integral_floats():
    assert causes_of({"ratio": 0.25, "replicas": 3.0}) == []
    assert causes_of({"replicas": 2.5})[0][2] == ('Invalid value: "number": spec.replicas in body must be of type '
                                                 'integer: "number"')


def test_required_names_the_missing_field():
    spec_only = validate({"spec": {}}, SCHEMA)
    assert spec_only == [("FieldValueRequired", "spec.replicas", "Required value")]
    nested = causes_of({"containers": [{"port": 80}, {"name": "b"}]})
    assert nested == [("FieldValueRequired", "spec.containers[0].name", "Required value")]


def test_enum_lists_the_supported_values():
    assert causes_of({"mode": "medium"}) == [("FieldValueNotSupported", "spec.mode",
                                              'Unsupported value: "medium": supported values: "fast", "slow"')]
    assert causes_of({"level": 3}) == [("FieldValueNotSupported", "spec.level",
                                        'Unsupported value: 3: supported values: "1", "2"')]
    assert causes_of({"level": 2.0}) == []


def test_minimum_and_maximum_inclusive_and_exclusive():
    assert causes_of({"replicas": 11}) == [("FieldValueInvalid", "spec.replicas", "Invalid value: 11: spec.replicas "
                                            "in body should be less than or equal to 10")]
    assert causes_of({"replicas": -1}) == [("FieldValueInvalid", "spec.replicas", "Invalid value: -1: spec.replicas "
                                            "in body should be greater than or equal to 0")]
    assert causes_of({"ratio": 0}) == [("FieldValueInvalid", "spec.ratio",
                                        "Invalid value: 0: spec.ratio in body should be greater than 0")]
    assert causes_of({"ratio": 1.5}) == [("FieldValueInvalid", "spec.ratio",
                                          "Invalid value: 1.5: spec.ratio in body should be less than 1")]


def test_nested_paths_reach_list_items():
    assert causes_of({"containers": [{"name": "a", "port": 80}, {"name": "b", "port": 70000}]}) == [(
        "FieldValueInvalid", "spec.containers[1].port",
        "Invalid value: 70000: spec.containers[1].port in body should be less than or equal to 65535")]


def test_string_lengths_and_pattern():
    assert causes_of({"name": "abcdefghij"}) == [("FieldValueTooLong", "spec.name",
                                                  "Too long: may not be more than 8 bytes")]
    assert causes_of({"name": "ab"}) == [("FieldValueInvalid", "spec.name",
                                          'Invalid value: "ab": spec.name in body should be at least 3 chars long')]
    assert causes_of({"name": "ABCD"}) == [("FieldValueInvalid", "spec.name",
                                            "Invalid value: \"ABCD\": spec.name in body should match '^[a-z]+$'")]


def test_item_counts():
    assert causes_of({"tags": []}) == [("FieldValueInvalid", "spec.tags",
                                        "Invalid value: 0: spec.tags in body should have at least 1 items")]
    assert causes_of({"tags": ["a", "b", "c", "d"]}) == [("FieldValueTooMany", "spec.tags",
                                                          "Too many: 4: must have at most 3 items")]
    assert causes_of({"tags": ["a", 1]}) == [("FieldValueTypeInvalid", "spec.tags[1]", 'Invalid value: "integer": '
                                              'spec.tags[1] in body must be of type string: "integer"')]


def test_additional_properties_schema_applies_to_every_key():
    assert causes_of({"labels": {"ok": "v", "long": "value"}}) == [
        ("FieldValueTooLong", "spec.labels.long", "Too long: may not be more than 4 bytes")]


def test_int_or_string_nullable_and_formats():
    assert causes_of({"target": 3}) == [] and causes_of({"target": "3"}) == []
    assert causes_of({"note": None}) == []
    assert causes_of({"ip": "10.0.0.300"}) == [("FieldValueTypeInvalid", "spec.ip", 'Invalid value: "10.0.0.300": '
                                                'spec.ip in body must be of type ipv4: "10.0.0.300"')]
    assert causes_of({"when": "yesterday"})[0][2].endswith('must be of type date-time: "yesterday"')
    assert causes_of({"counter": 2**31 - 1}) == []
    assert causes_of({"counter": 2**31}) == [("FieldValueInvalid", "<nil>", 'Invalid value: "": Checked value must '
                                              "be of type integer with format int32 in spec.counter")]


def test_preserve_unknown_fields_and_embedded_resources():
    assert causes_of({"anything": {"free": {"form": True}}}) == []
    assert causes_of({"template": {"kind": "Pod"}}) == [("FieldValueRequired", "spec.template.apiVersion",
                                                          "Required value: must not be empty")]
    assert causes_of({"template": {"apiVersion": "v1", "kind": 3}}) == [
        ("FieldValueInvalid", "spec.template.kind", "Invalid value: 3: must be a string")]


def test_several_causes_are_all_reported():
    fields = [c[1] for c in causes_of({"replicas": 20, "mode": "x", "tags": []})]
    assert sorted(fields) == ["spec.mode", "spec.replicas", "spec.tags"]


def test_status_is_validated_against_the_status_schema_relative_to_status():
    status = crdschema.status_schema(SCHEMA)
    assert validate({"phase": 1}, status, root="status") == [(
        "FieldValueTypeInvalid", "status.phase", 'Invalid value: "integer": phase in body must be of type string: '
                                                 '"integer"')]
    assert validate({"phase": "Ready", "ready": 2}, status, root="status") == []


def test_an_update_leaves_unchanged_invalid_parts_alone():
    old = {"spec": {"replicas": 50, "mode": "fast"}}  # stored before the schema tightened
    assert validate({"spec": {"replicas": 50, "mode": "slow"}}, SCHEMA, old=old) == []
    assert [c[1] for c in validate({"spec": {"replicas": 51, "mode": "slow"}}, SCHEMA, old=old)] == ["spec.replicas"]


def test_composition_keywords():
    schema = {"type": "object", "properties": {"v": {"type": "integer", "anyOf": [{"minimum": 5}, {"maximum": 1}]},
                                               "w": {"type": "integer", "not": {"enum": [7]}}}}
    assert validate({"v": 6, "w": 1}, schema) == []
    causes = validate({"v": 3, "w": 7}, schema)
    assert ("FieldValueInvalid", "<nil>", 'Invalid value: "": "v" must validate at least one schema (anyOf)') in causes
    assert ("FieldValueInvalid", "<nil>", 'Invalid value: "": "w" must not validate the schema (not)') in causes


def test_multiple_of_and_property_counts():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5},
                                               "m": {"type": "object", "maxProperties": 1,
                                                     "additionalProperties": {"type": "string"}}}}
    assert validate({"n": 10, "m": {"a": "b"}}, schema) == []
    assert validate({"n": 7, "m": {"a": "b", "c": "d"}}, schema) == [
        ("FieldValueInvalid", "n", "Invalid value: 7: n in body should be a multiple of 5"),
        ("FieldValueTooMany", "m", "Too many: 2: must have at most 1 items")]


def test_values_print_like_go():
    assert crdschema.render_value(1e6) == "1e+06" and crdschema.render_value(2.5) == "2.5"
    assert crdschema.render_value(3.0) == "3" and crdschema.render_value({"b": 1, "a": "<"}) == '{"a":"\\u003c","b":1}'
    assert crdschema.go_quote('say "hi"\n') == '"say \\"hi\\"\\n"'


# ---- pruning and defaults ----------------------------------------------------------------------------------


def test_pruning_drops_unknown_fields_and_names_them():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "bogus": 1},
           "spec": {"replicas": 1, "foo": 2, "containers": [{"name": "c", "extra": True}],
                    "anything": {"kept": {"deep": 1}},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}},
           "top": "level"}
    unknown = prune(obj, SCHEMA)
    assert unknown == ["metadata.bogus", "spec.containers[0].extra", "spec.foo", "top"]
    assert obj == {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                   "spec": {"replicas": 1, "containers": [{"name": "c"}], "anything": {"kept": {"deep": 1}},
                            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                         "spec": {"x": 1}}}}


def test_preserve_unknown_fields_still_prunes_the_fields_it_declares():
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
              "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer"}}}}}
    obj = {"spec": {"a": 1, "b": 2}, "free": {"x": 1}}
    assert prune(obj, schema) == ["spec.b"] and obj == {"spec": {"a": 1}, "free": {"x": 1}}


def test_defaults_fill_absent_fields_top_down_and_nulls_without_default_go():
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "default": {},
        "properties": {"mode": {"type": "string", "default": "fast"},
                       "limits": {"type": "object", "default": {"cpu": 1},
                                  "properties": {"cpu": {"type": "integer"}, "mem": {"type": "integer",
                                                                                      "default": 64}}},
                       "items": {"type": "array", "items": {"type": "object", "properties": {
                           "weight": {"type": "integer", "default": 1}}}},
                       "gone": {"type": "string"},
                       "kept": {"type": "string", "default": "d"}}}}}
    obj: dict[str, Any] = {"metadata": {"name": "w"}}
    drop_nulls(obj, schema)
    apply_defaults(obj, schema)
    assert obj["spec"] == {"mode": "fast", "limits": {"cpu": 1, "mem": 64}, "kept": "d"}
    obj = {"spec": {"mode": "slow", "items": [{}, {"weight": 5}], "gone": None, "kept": None}}
    drop_nulls(obj, schema)
    apply_defaults(obj, schema)
    assert obj["spec"] == {"mode": "slow", "items": [{"weight": 1}, {"weight": 5}], "kept": "d",
                           "limits": {"cpu": 1, "mem": 64}}


# ---- structural schemas ------------------------------------------------------------------------------------


def test_structural_checks_name_the_offending_schema_field():
    path = "spec.versions[0].schema.openAPIV3Schema"
    assert structural_errors(SCHEMA, path) == []
    assert structural_errors(None, path) == [("FieldValueRequired", path, "Required value: schemas are required")]
    bad = {"type": "object", "properties": {"spec": {"properties": {"list": {"type": "array"}}}},
           "additionalProperties": {"type": "string"}}
    assert structural_errors(bad, path) == [
        ("FieldValueForbidden", f"{path}.additionalProperties",
         "Forbidden: additionalProperties and properties are mutual exclusive"),
        ("FieldValueForbidden", f"{path}.additionalProperties", "Forbidden: must not be used at the root"),
        ("FieldValueRequired", f"{path}.properties[spec].properties[list].items", "Required value: must be specified"),
        ("FieldValueRequired", f"{path}.properties[spec].type",
         "Required value: must not be empty for specified object fields"),
    ]
    assert structural_errors({"type": "string"}, path) == [
        ("FieldValueInvalid", f"{path}.type", 'Invalid value: "string": must be object at the root')]


def test_list_types_refuse_duplicate_set_items_and_map_keys():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                             "port": {"type": "integer"}}}}}}}}
    ok = {"spec": {"tags": ["a", "b"], "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}}
    assert crdschema.list_errors(ok, schema) == []
    bad = {"spec": {"tags": ["a", "b", "a", "a"],
                    "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}}
    assert crdschema.list_errors(bad, schema) == [
        ("FieldValueDuplicate", "spec.tags[2]", 'Duplicate value: "a"'),
        ("FieldValueDuplicate", "spec.ports[1]", 'Duplicate value: {"name":"http"}')]
