"""Addresses in the desired state are decoded by inet_pton, as strictly as ipaddress."""

from ipaddress import IPv4Address

import pytest
from pydantic import ValidationError

from netagent.contract.desired import Backend, RemoteEndpoint


def backend(ip: object) -> Backend:
    return Backend(task_id="t1", task_name="web.1", ip=ip)


@pytest.mark.parametrize("given", ["10.0.0.3", IPv4Address("10.0.0.3"), 167772163])
def test_dotted_quads_addresses_and_ints_decode_to_the_same_address(given):
    assert backend(given).ip == IPv4Address("10.0.0.3")
    assert isinstance(backend(given).ip, IPv4Address)


@pytest.mark.parametrize(
    "bad", ["10.0.0.256", "01.2.3.4", "1.2.3", "10.0.0.3 ", "0x0a.0.0.3", "::1", "", "a.b.c.d"]
)
def test_what_ipaddress_refuses_is_refused_naming_the_value(bad):
    with pytest.raises(ValidationError) as err:
        backend(bad)
    assert "valid IPv4 address" in str(err.value) and repr(bad) in str(err.value)


def test_a_state_survives_its_own_json():
    peer = RemoteEndpoint(ip="10.0.0.9", mac="02:42:0a:00:00:09", vtep="192.168.56.12")
    again = RemoteEndpoint.model_validate_json(peer.model_dump_json())
    assert again == peer and again.vtep == IPv4Address("192.168.56.12")
