"""The demo SOAP upstream: an order-status service with a real WSDL.

``GET /orders?wsdl`` serves the WSDL; ``POST /orders`` answers the
``GetOrderStatus`` operation (document/literal). It stands in for the legacy
SOAP backend in the README's REST-to-SOAP example and in the tests.
"""
from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from aiohttp import web
from defusedxml.ElementTree import fromstring

__all__ = ["NS", "soap_app", "soap_routes"]

NS = "urn:junction:demo:orders"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{ns}" targetNamespace="{ns}" name="OrderService">
  <types>
    <xsd:schema targetNamespace="{ns}" elementFormDefault="qualified">
      <xsd:element name="GetOrderStatus">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="orderId" type="xsd:string"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="GetOrderStatusResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="orderId" type="xsd:string"/>
          <xsd:element name="status" type="xsd:string"/>
          <xsd:element name="total" type="xsd:decimal"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="GetOrderStatusInput"><part name="parameters" element="tns:GetOrderStatus"/></message>
  <message name="GetOrderStatusOutput"><part name="parameters" element="tns:GetOrderStatusResponse"/></message>
  <portType name="OrderPortType">
    <operation name="GetOrderStatus">
      <input message="tns:GetOrderStatusInput"/>
      <output message="tns:GetOrderStatusOutput"/>
    </operation>
  </portType>
  <binding name="OrderBinding" type="tns:OrderPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="GetOrderStatus">
      <soap:operation soapAction="{ns}#GetOrderStatus"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="OrderService">
    <port name="OrderPort" binding="tns:OrderBinding">
      <soap:address location="{location}"/>
    </port>
  </service>
</definitions>
"""


def _fault(message: str, status: int = 500) -> web.Response:
    body = (
        f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><soap:Fault>'
        f"<faultcode>soap:Client</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    )
    return web.Response(status=status, body=body.encode(), content_type="text/xml")


def soap_routes() -> list[web.RouteDef]:
    """The service's routes, to mount on any app (the demo upstream serves them beside the echo)."""

    async def wsdl(request: web.Request) -> web.Response:
        location = f"{request.scheme}://{request.host}/orders"
        return web.Response(body=WSDL.format(ns=NS, location=location).encode(), content_type="text/xml")

    async def call(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            root: Element = fromstring(raw)
        except Exception:
            return _fault("malformed XML", 400)
        node = root.find(f"{{{SOAP_ENV}}}Body/{{{NS}}}GetOrderStatus/{{{NS}}}orderId")
        if node is None or not (node.text or "").strip():
            return _fault("orderId is required")
        order_id = node.text.strip()  # type: ignore[union-attr]
        if order_id == "missing":
            return _fault(f"order {order_id} not found")
        status = "shipped" if sum(map(ord, order_id)) % 2 else "processing"
        total = f"{(sum(map(ord, order_id)) % 1000) / 10:.2f}"
        body = (
            f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
            f'<GetOrderStatusResponse xmlns="{NS}"><orderId>{escape(order_id)}</orderId><status>{status}</status>'
            f"<total>{total}</total></GetOrderStatusResponse></soap:Body></soap:Envelope>"
        )
        return web.Response(body=body.encode(), content_type="text/xml")

    async def get(request: web.Request) -> web.Response:
        if "wsdl" in request.query:
            return await wsdl(request)
        raise web.HTTPNotFound()

    return [web.get("/orders", get), web.post("/orders", call)]


def soap_app() -> web.Application:
    app = web.Application()
    app.add_routes(soap_routes())
    return app
