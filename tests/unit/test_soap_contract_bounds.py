"""An inbound SOAP API's contract at its edges: an upstream's JSON answer with numbers past what the
output's XML Schema type holds is a quick ``soap_bad_upstream_answer`` (never megabytes of digits, never
Python's own words); each binding's soapAction is accepted for its SOAP version; and a soap connector's
uploaded WSDL is refused at save time when the envelopes would have nowhere http(s) to go.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.checks import check_soap_target
from control.soap_api import read_wsdl
from core.errors import JunctionError
from core.soap_contract import (
    MAX_DECIMAL_CHARS,
    Contract,
    Field,
    Message,
    Operation,
    to_text,
)
from ingress.soap_edge import answer, parse_call, wsdl_response

NS = "urn:test:out"
OUTPUT = Operation("Get", "", Message(f"{{{NS}}}Get", ()), Message(f"{{{NS}}}GetResponse", (
    Field("v_int", NS, "int", 0), Field("v_long", NS, "long", 0), Field("v_decimal", NS, "decimal", 0),
    Field("v_double", NS, "double", 0), Field("v_string", NS, "string", 0))))
INTERNALS = ("Exceeds the limit", "integer string conversion", "Traceback", "Error:", "decimal.")


def refused(body: bytes) -> dict[str, str]:
    with pytest.raises(JunctionError) as info:
        answer("1.1", OUTPUT, body)
    err = info.value
    assert err.code == "soap_bad_upstream_answer", err
    for f in err.fields:
        assert not any(word in f.message for word in INTERNALS), f.message
    return {f.field: f.message for f in err.fields}


@pytest.mark.parametrize("body, field", [
    (b'{"v_int": 1e200000}', "v_int"), (b'{"v_int": -1e200000}', "v_int"), (b'{"v_long": 9.3e18}', "v_long"),
    (b'{"v_int": "' + b"9" * 5000 + b'"}', "v_int"), (b'{"v_decimal": 1e20000000}', "v_decimal"),
    (b'{"v_decimal": 1e-20000000}', "v_decimal"), (b'{"v_double": 1e400}', "v_double"),
    (b'{"v_string": 1e20000000}', None),  # a string takes the number as written: short
])
def test_numbers_past_the_outputs_types_are_refused_before_any_conversion(body: bytes, field: str | None) -> None:
    if field is None:
        assert b"1E+20000000" in answer("1.1", OUTPUT, body)
        return
    assert list(refused(body)) == [field]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["int", "long", "decimal", "double", "string"]),
       st.integers(0, 10**12), st.integers(-10**8, 10**8), st.booleans())
def test_any_number_is_written_short_or_refused(kind: str, digits: int, exponent: int, negative: bool) -> None:
    """Whatever a JSON number's exponent, its element text is never longer than the bound (or the number
    as the upstream wrote it), and an integer type only ever gets a whole number in its range."""
    number = Decimal(f"{'-' if negative else ''}{digits}E{exponent}")
    try:
        text = to_text(kind, number)
    except ValueError as exc:
        assert not any(word in str(exc) for word in INTERNALS)
        return
    assert len(text) <= MAX_DECIMAL_CHARS + 2 or text == str(number)
    if kind in ("int", "long"):
        bound = 2**31 if kind == "int" else 2**63
        assert -bound <= int(text) < bound and Decimal(text) == number
    if kind == "decimal":
        assert Decimal(text) == number


# -- 4: each binding's soapAction -----------------------------------------------------------------------
GREETER = """<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="urn:test:greet" targetNamespace="urn:test:greet">
  <types><xsd:schema targetNamespace="urn:test:greet" elementFormDefault="qualified">
    <xsd:element name="Hello"><xsd:complexType><xsd:sequence><xsd:element name="name" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
    <xsd:element name="HelloResponse"><xsd:complexType><xsd:sequence><xsd:element name="greeting" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
  </xsd:schema></types>
  <message name="In"><part name="parameters" element="tns:Hello"/></message>
  <message name="Out"><part name="parameters" element="tns:HelloResponse"/></message>
  <portType name="P"><operation name="Hello"><input message="tns:In"/><output message="tns:Out"/></operation></portType>
  <binding name="B11" type="tns:P"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Hello"><soap:operation soapAction="urn:test:greet/Hello11"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation></binding>
  <binding name="B12" type="tns:P"><soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Hello"><soap12:operation soapAction="urn:test:greet/Hello12"/>
      <input><soap12:body use="literal"/></input><output><soap12:body use="literal"/></output></operation></binding>
  <service name="S">
    <port name="S11" binding="tns:B11"><soap:address location="http://greet.example/s11"/></port>
    <port name="S12" binding="tns:B12"><soap12:address location="http://greet.example/s12"/></port>
  </service>
</definitions>"""
ENVELOPES = {"1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "text/xml"),
             "1.2": ("http://www.w3.org/2003/05/soap-envelope", "application/soap+xml")}


def greet(contract: Contract, version: str, action: str) -> str:
    env, media = ENVELOPES[version]
    body = (f'<e:Envelope xmlns:e="{env}"><e:Body><Hello xmlns="urn:test:greet"><name>Ann</name></Hello>'
            "</e:Body></e:Envelope>").encode()
    if version == "1.1":
        call = parse_call(body, media, f'"{action}"', contract)
    else:
        call = parse_call(body, f'{media}; charset=utf-8; action="{action}"', None, contract)
    return f"{call.operation.name} {call.arguments['name']}"


@pytest.mark.parametrize("version, action", [("1.1", "urn:test:greet/Hello11"), ("1.2", "urn:test:greet/Hello12"),
                                             ("1.1", ""), ("1.2", "")])
def test_each_bindings_soap_action_is_accepted_for_its_soap_version(version: str, action: str) -> None:
    contract = Contract.from_dict(read_wsdl(GREETER).to_dict())  # as ingress gets it, through the config document
    assert contract.versions == ("1.1", "1.2")
    assert greet(contract, version, action) == "Hello Ann"


@pytest.mark.parametrize("version, action", [("1.1", "urn:test:greet/Hello12"), ("1.2", "urn:test:greet/Hello11"),
                                             ("1.2", "urn:other")])
def test_another_bindings_action_is_a_mismatch(version: str, action: str) -> None:
    with pytest.raises(JunctionError) as info:
        greet(read_wsdl(GREETER), version, action)
    assert info.value.code == "soap_action_mismatch"


def test_the_served_wsdl_keeps_each_bindings_action() -> None:
    served = wsdl_response(read_wsdl(GREETER), "https://gw.example/acme/greet").body.decode()
    assert 'soapAction="urn:test:greet/Hello11"' in served and 'soapAction="urn:test:greet/Hello12"' in served


# -- 9: where a connector's envelopes go, checked on save ---------------------------------------------


@pytest.mark.parametrize("wsdl, target, message", [
    (GREETER.split("<service")[0] + "</definitions>", {}, "has no wsdl:service port with a soap:address"),
    (GREETER.replace("http://greet.example/s11", "REPLACE_WITH_ACTUAL_URL"), {},
     "soap:address of port S11 is 'REPLACE_WITH_ACTUAL_URL'"),
    (GREETER.replace("http://greet.example/s12", "ftp://greet.example/x"), {"port": "S12"}, "soap:address of port S12"),
    (GREETER.replace("http://greet.example/s12", "urn:x"), {"binding": "B12"}, "soap:address of port S12"),
])
def test_an_uploaded_wsdl_whose_envelopes_could_go_nowhere_is_refused_naming_the_soap_address(
    wsdl: str, target: dict[str, str], message: str
) -> None:
    errors = check_soap_target({"protocol": "soap", "url": "http://greet.example/?wsdl", "wsdl": wsdl, **target})
    assert [e.field for e in errors] == ["target.wsdl"] and message in errors[0].message, errors
    # An address override is where the envelopes go: the WSDL's own then does not matter.
    assert check_soap_target({"protocol": "soap", "url": "http://greet.example/?wsdl", "wsdl": wsdl, **target,
                              "address": "https://greet.example/soap"}) == []


@pytest.mark.parametrize("target", [{}, {"port": "S12"}, {"binding": "B11"}])
def test_an_uploaded_wsdl_with_http_addresses_is_accepted(target: dict[str, str]) -> None:
    assert check_soap_target({"protocol": "soap", "url": "http://greet.example/?wsdl", "wsdl": GREETER, **target}) == []


def test_the_real_world_metro_wsdl_uploaded_as_published_needs_its_address() -> None:
    path = Path("/work/shared/data/wsdl/AddNumbers_soap12.wsdl")
    if not path.is_file():
        pytest.skip(f"the real-world WSDLs are not at {path.parent}")
    target = {"protocol": "soap", "url": "http://metro.example/AddNumbers?wsdl", "wsdl": path.read_text()}
    assert "REPLACE_WITH_ACTUAL_URL" in check_soap_target(target)[0].message
    assert check_soap_target({**target, "address": "http://metro.example/AddNumbers"}) == []
