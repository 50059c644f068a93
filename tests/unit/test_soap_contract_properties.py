"""Property 1: dynamic API endpoint creation (REST and SOAP), the SOAP half, without a broker.

For any code-first operation set, the WSDL Junction generates (as ``?wsdl`` serves it) loads in zeep,
and for every operation, arguments a zeep client sends come out of the envelope parser as the same
values in JSON, and an upstream's JSON answer comes back to zeep as the same values.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import requests
import zeep
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from lxml import etree
from zeep.helpers import serialize_object

from control.soap_api import generate_wsdl
from core.soap_contract import Contract, Field, from_text, to_text
from ingress.soap_edge import answer, json_bytes, parse_call, wsdl_response

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
SCALARS = ["string", "int", "long", "decimal", "double", "boolean", "dateTime", "date", "base64Binary"]


def _unique(items: list[dict[str, Any]]) -> bool:
    names = [i["name"] for i in items]
    return len(set(names)) == len(names)


def _field(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.fixed_dictionaries({"name": NAMES, "type": st.sampled_from(SCALARS)},
                                   optional={"required": st.booleans(), "repeated": st.booleans()})
    if depth == 0:
        return scalar
    nested = st.fixed_dictionaries(
        {"name": NAMES, "type": st.just("object"),
         "fields": st.lists(_field(depth - 1), min_size=1, max_size=3).filter(_unique)},
        optional={"required": st.booleans(), "repeated": st.booleans()})
    return st.one_of(scalar, nested)


FIELDS = st.lists(_field(2), max_size=4).filter(_unique)
OPERATIONS = st.lists(st.fixed_dictionaries({"name": NAMES, "input": FIELDS, "output": FIELDS}), min_size=1,
                      max_size=3).filter(lambda ops: _unique(ops) and not {o["name"] for o in ops}
                                         & {o["name"] + "Response" for o in ops})
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


def _scalar(kind: str) -> st.SearchStrategy[Any]:
    """Values as a zeep caller passes them."""
    return {
        "string": TEXT,
        "int": st.integers(-2**31, 2**31 - 1),
        "long": st.integers(-2**63, 2**63 - 1),
        "decimal": st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False, allow_infinity=False),
        "double": st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "dateTime": st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1),
                                 timezones=st.sampled_from([None, dt.timezone.utc])),
        "date": st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
        "base64Binary": st.binary(max_size=12),
    }[kind]


def _values(fields: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    def one(f: Field) -> st.SearchStrategy[Any]:
        return _values(f.fields) if f.type == "object" else _scalar(f.type)

    strategies = {}
    for f in fields:
        value = st.lists(one(f), min_size=f.min, max_size=3) if f.repeated else one(f)
        strategies[f.name] = value if f.min else st.one_of(st.none(), value)
    return st.fixed_dictionaries(strategies)


def canon(f: Field, value: Any) -> Any:
    """A zeep value and the JSON Junction makes of it, in one comparable form."""
    if f.repeated:
        return [canon(_single(f), v) for v in value or []]
    if value is None and f.type != "object":
        return None
    if f.type == "object":  # zeep reads an element with no children as None, so None is {} here
        value = dict(serialize_object(value, dict) or {})
        return {c.name: canon(c, value.get(c.name)) for c in f.fields}
    if f.type == "string":
        return value or None  # zeep reads an empty element as None
    if f.type == "decimal":
        return Decimal(str(value))
    if f.type == "double":
        return float(value)
    if f.type == "dateTime":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if f.type == "date":
        return value if isinstance(value, str) else value.isoformat()
    if f.type == "base64Binary":
        return (base64.b64decode(value) if isinstance(value, str) else bytes(value)) or None  # empty as with strings
    return value


def _single(f: Field) -> Field:
    return Field(f.name, f.ns, f.type, 1, 1, f.nillable, f.fields)


def _as_json(f: Field, value: Any) -> Any:
    """The JSON an upstream answers for a zeep-shaped value (as Junction would have sent it)."""
    if value is None:
        return None
    if f.repeated:
        return [_as_json(_single(f), v) for v in value]
    if f.type == "object":
        return {c.name: _as_json(c, value.get(c.name)) for c in f.fields if value.get(c.name) is not None}
    if f.type in ("dateTime", "date"):
        return from_text(f.type, to_text(f.type, value.isoformat()))
    if f.type == "base64Binary":
        return base64.b64encode(value).decode()
    return value


def _client(contract: Contract, session: requests.Session) -> zeep.Client:
    served = wsdl_response(contract, "http://gateway.test/org/api").body
    return zeep.Client(io.BytesIO(served), transport=zeep.Transport(session=session))


# No explain phase: tracing zeep while shrinking takes minutes.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(operations=OPERATIONS, data=st.data())
def test_property_1_dynamic_api_endpoint_creation_soap_round_trips_every_operation(
        operations: list[dict[str, Any]], data: st.DataObject) -> None:
    contract = generate_wsdl(operations, "urn:example:generated", "generated")
    session = requests.Session()
    try:
        client = _client(contract, session)
        for version, port in (("1.1", "generatedSoap11"), ("1.2", "generatedSoap12")):
            service = client.bind("generated", port)
            binding = service._binding
            for op in contract.operations:
                args = data.draw(_values(op.input.fields), label=f"{op.name} arguments")
                envelope = client.create_message(service, op.name, **{k: v for k, v in args.items() if v is not None})
                ctype = "text/xml" if version == "1.1" else "application/soap+xml"
                call = parse_call(etree.tostring(envelope), ctype, binding.get(op.name).soapaction, contract)
                assert (call.version, call.operation.name) == (version, op.name)
                parsed = json.loads(json_bytes(call.arguments), parse_float=Decimal)
                for f in op.input.fields:
                    assert canon(f, parsed.get(f.name)) == canon(f, args.get(f.name)), (f, parsed, args)

                assert op.output is not None
                result = data.draw(_values(op.output.fields), label=f"{op.name} answer")
                upstream = json_bytes({f.name: _as_json(f, result[f.name]) for f in op.output.fields
                                       if result[f.name] is not None})
                envelope_ns = "http://schemas.xmlsoap.org/soap/envelope/" if version == "1.1" \
                    else "http://www.w3.org/2003/05/soap-envelope"
                wrapper = etree.fromstring(answer(version, op, upstream)).find(f"{{{envelope_ns}}}Body")[0]
                # The output element as zeep reads it, without the unwrapping its service proxy does.
                got = serialize_object(binding.get(op.name).output.body.parse(wrapper, client.wsdl.types), dict) or {}
                for f in op.output.fields:
                    assert canon(f, got.get(f.name)) == canon(f, result[f.name]), (f, got, result)
    finally:
        session.close()
