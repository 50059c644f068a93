"""WSDL documents for tests: one document/literal SOAP 1.1 operation around a schema of the test's own."""
from __future__ import annotations

SER = "http://schemas.microsoft.com/2003/10/Serialization/"


def register_wsdl(namespace: str, declarations: str, address: str) -> str:
    """A WSDL 1.1 whose operation ``Register`` takes the element ``Register`` that ``declarations`` (the content of
    its xsd:schema, ``tns:`` being ``namespace``) declares, and answers ``RegisterResponse`` (one string, ``ok``).
    The schema imports WCF's serialization schema as ``ser:`` from ``ser.xsd`` beside the WSDL."""
    return f"""<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{namespace}" targetNamespace="{namespace}">
  <types>
    <xsd:schema targetNamespace="{namespace}" elementFormDefault="qualified" xmlns:ser="{SER}">
      <xsd:import namespace="{SER}" schemaLocation="ser.xsd"/>
{declarations}
      <xsd:element name="RegisterResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="ok" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
    </xsd:schema>
  </types>
  <message name="In"><part name="parameters" element="tns:Register"/></message>
  <message name="Out"><part name="parameters" element="tns:RegisterResponse"/></message>
  <portType name="P"><operation name="Register"><input message="tns:In"/><output message="tns:Out"/></operation></portType>
  <binding name="B" type="tns:P"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Register"><soap:operation soapAction="{namespace}#Register"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation></binding>
  <service name="S"><port name="B" binding="tns:B"><soap:address location="{address}"/></port></service>
</definitions>
"""
