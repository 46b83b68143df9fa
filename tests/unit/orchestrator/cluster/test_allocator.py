"""VNIs, subnets and task addresses, Docker-style."""

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.allocator import (
    AddressBook,
    AddressPool,
    allocate_subnet,
    allocate_vni,
    holds_addresses,
    parse_subnet,
)
from orchestrator.cluster.objects import (
    Network,
    NetworkAttachmentSpec,
    NetworkSpec,
    Service,
    ServiceSpec,
    Task,
    TaskAttachment,
)


def _net(name: str, subnet: str, vni: int = 4097, net_id: str | None = None) -> Network:
    s = IPv4Network(subnet)
    return Network(
        id=net_id or f"id-{name}",
        spec=NetworkSpec(name=name),
        vni=vni,
        subnet=s,
        gateway=next(s.hosts()),
    )


def _task(task_id: str, network_id: str, ip: str) -> Task:
    return Task(
        id=task_id,
        service_id="svc",
        service_name="web",
        slot=1,
        image="whoami",
        attachments=[
            TaskAttachment(network_id=network_id, address=IPv4Interface(f"{ip}/24"), mac="x")
        ],
    )


def test_first_user_vni_is_4097_then_lowest_free():
    assert allocate_vni([]) == 4097
    nets = [_net("a", "10.0.0.0/24", 4097), _net("c", "10.0.2.0/24", 4099)]
    assert allocate_vni(nets) == 4098
    assert allocate_vni([*nets, _net("b", "10.0.1.0/24", 4098)]) == 4100


def test_default_subnets_are_24s_from_10_0_0_0_in_order():
    assert allocate_subnet("a", None, []) == IPv4Network("10.0.0.0/24")
    nets = [_net("a", "10.0.0.0/24"), _net("c", "10.0.2.0/24")]
    assert allocate_subnet("b", None, nets) == IPv4Network("10.0.1.0/24")


def test_default_subnet_skips_24s_inside_a_user_subnet():
    nets = [_net("big", "10.0.0.0/22")]
    assert allocate_subnet("b", None, nets) == IPv4Network("10.0.4.0/24")


def test_user_subnet_is_taken_as_given_when_free():
    nets = [_net("a", "10.0.0.0/24")]
    assert allocate_subnet("b", IPv4Network("10.0.9.0/29"), nets) == IPv4Network("10.0.9.0/29")


def test_overlapping_user_subnet_is_refused_naming_both_networks():
    nets = [_net("webnet", "10.0.0.0/24")]
    with pytest.raises(Conflict) as err:
        allocate_subnet("other", IPv4Network("10.0.0.0/16"), nets)
    assert str(err.value) == (
        "subnet 10.0.0.0/16 of network other overlaps subnet 10.0.0.0/24 of network webnet"
    )


@pytest.mark.parametrize("text", ["10.0.0.1/24", "nonsense", "10.0.0.0/33", "fd00::/64"])
def test_invalid_subnet_text_is_refused_naming_it(text):
    with pytest.raises(InvalidArgument, match=f"invalid subnet {text!r}: expected an IPv4"):
        parse_subnet(text)


@pytest.mark.parametrize("text", ["10.0.0.0/30", "10.0.0.0/32"])
def test_subnet_without_room_for_hosts_is_refused(text):
    with pytest.raises(InvalidArgument, match=r"expected a prefix of at most /29"):
        parse_subnet(text)
    with pytest.raises(InvalidArgument):
        allocate_subnet("x", IPv4Network(text), [])


def test_parse_subnet_accepts_a_valid_network():
    assert parse_subnet(" 10.0.9.0/24 ") == IPv4Network("10.0.9.0/24")


def _ips(*last_octets: int, prefix: str = "10.0.0.") -> list[IPv4Address]:
    return [IPv4Address(f"{prefix}{o}") for o in last_octets]


def test_first_task_address_is_after_the_gateway():
    pool = AddressPool(_net("webnet", "10.0.0.0/24"))
    assert [pool.allocate() for _ in range(3)] == _ips(2, 3, 4)


def test_lowest_free_address_fills_holes():
    pool = AddressPool(_net("webnet", "10.0.0.0/24"), _ips(2, 4))
    assert [pool.allocate() for _ in range(2)] == _ips(3, 5)


def test_full_subnet_raises_naming_the_network_and_never_hands_out_broadcast():
    pool = AddressPool(_net("tiny", "10.0.9.0/29"))  # hosts .1-.6, gateway .1
    got = [pool.allocate() for _ in range(5)]
    assert got[-1] == IPv4Address("10.0.9.6")
    for _ in range(2):  # and again once it has nothing left to scan
        with pytest.raises(
            Conflict, match=r"^network tiny \(10.0.9.0/29\) has no free address left$"
        ):
            pool.allocate()


def test_a_released_address_below_the_cursor_is_the_next_one_handed_out():
    pool = AddressPool(_net("tiny", "10.0.9.0/29"))
    got = [pool.allocate() for _ in range(5)]
    pool.release(got[1])
    pool.release(got[3])
    assert [pool.allocate() for _ in range(2)] == [got[1], got[3]]
    with pytest.raises(Conflict):
        pool.allocate()
    pool.release(IPv4Address("10.0.9.1"))  # the gateway was never handed out: no effect
    with pytest.raises(Conflict):
        pool.allocate()


def test_a_gateway_inside_the_subnet_is_skipped_and_the_hosts_below_it_come_last():
    s = IPv4Network("10.0.9.0/29")
    net = Network(
        id="n", spec=NetworkSpec(name="mid"), vni=4097, subnet=s, gateway=IPv4Address("10.0.9.3")
    )
    pool = AddressPool(net)
    assert [pool.allocate() for _ in range(5)] == _ips(4, 5, 6, 1, 2, prefix="10.0.9.")


def test_a_pool_walks_a_big_subnet_once_per_batch():
    """Lowest-free stays exact while thousands of addresses are handed out."""
    pool = AddressPool(_net("big", "10.8.0.0/16"), _ips(2, 3, 7, prefix="10.8.0."))
    got = [pool.allocate() for _ in range(5000)]
    assert got[:3] == _ips(4, 5, 6, prefix="10.8.0.")
    assert len(set(got)) == 5000
    assert got[-1] == IPv4Address(int(IPv4Address("10.8.0.1")) + 5003)


def test_only_tasks_that_may_still_run_hold_their_addresses():
    net = _net("webnet", "10.0.0.0/24")
    tasks = [_task("t1", net.id, "10.0.0.2"), _task("t2", net.id, "10.0.0.3")]
    assert all(holds_addresses(t) for t in tasks)
    book = AddressBook({net.id: net}, tasks)
    assert book.allocate(net.id) == IPv4Interface("10.0.0.4/24")
    book = AddressBook({net.id: net}, tasks[1:])  # t1 deleted
    assert book.allocate(net.id) == IPv4Interface("10.0.0.2/24")


def test_address_book_attaches_every_network_with_mac_and_reuses_released_addresses():
    a, b = _net("a", "10.0.0.0/24"), _net("b", "10.0.1.0/24", 4098)
    svc = Service(
        id="s",
        spec=ServiceSpec(
            name="web",
            image="whoami",
            networks=[
                NetworkAttachmentSpec(target="a", aliases=["w"]),
                NetworkAttachmentSpec(target="b"),
            ],
        ),
        network_ids=[a.id, b.id],
    )
    book = AddressBook({a.id: a, b.id: b}, [_task("t1", a.id, "10.0.0.2")])
    first = book.attach(svc)
    assert [str(x.address) for x in first] == ["10.0.0.3/24", "10.0.1.2/24"]
    assert first[0].mac == "02:42:0a:00:00:03"
    assert first[0].aliases == ["w"]
    book.release(first)
    assert [str(x.address) for x in book.attach(svc)] == ["10.0.0.3/24", "10.0.1.2/24"]


def test_address_book_allocates_all_networks_or_none():
    a, tiny = _net("a", "10.0.0.0/24"), _net("tiny", "10.0.9.0/29", 4098)
    full = [_task(f"t{i}", tiny.id, f"10.0.9.{i}") for i in range(2, 7)]
    svc = Service(
        id="s",
        spec=ServiceSpec(
            name="web",
            image="whoami",
            networks=[NetworkAttachmentSpec(target="a"), NetworkAttachmentSpec(target="tiny")],
        ),
        network_ids=[a.id, tiny.id],
    )
    book = AddressBook({a.id: a, tiny.id: tiny}, full)
    with pytest.raises(Conflict):
        book.attach(svc)
    # The address taken on `a` before the failure went back to the pool.
    assert book.allocate(a.id) == IPv4Interface("10.0.0.2/24")
