"""VNIs, subnets and task addresses, Docker-style."""

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.cluster.allocator import (
    AddressBook,
    addresses_in_use,
    allocate_address,
    allocate_subnet,
    allocate_vni,
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


def test_first_task_address_is_after_the_gateway():
    net = _net("webnet", "10.0.0.0/24")
    in_use: set[IPv4Address] = set()
    assert [allocate_address(net, in_use) for _ in range(3)] == [
        IPv4Address("10.0.0.2"),
        IPv4Address("10.0.0.3"),
        IPv4Address("10.0.0.4"),
    ]


def test_lowest_free_address_fills_holes():
    net = _net("webnet", "10.0.0.0/24")
    in_use = {IPv4Address("10.0.0.2"), IPv4Address("10.0.0.4")}
    assert allocate_address(net, in_use) == IPv4Address("10.0.0.3")


def test_full_subnet_raises_naming_the_network_and_never_hands_out_broadcast():
    net = _net("tiny", "10.0.9.0/29")  # hosts .1-.6, gateway .1
    in_use: set[IPv4Address] = set()
    got = [allocate_address(net, in_use) for _ in range(5)]
    assert got[-1] == IPv4Address("10.0.9.6")
    with pytest.raises(Conflict, match=r"^network tiny \(10.0.9.0/29\) has no free address left$"):
        allocate_address(net, in_use)


def test_addresses_of_existing_tasks_are_in_use_and_free_again_once_deleted():
    net = _net("webnet", "10.0.0.0/24")
    tasks = [_task("t1", net.id, "10.0.0.2"), _task("t2", net.id, "10.0.0.3")]
    assert allocate_address(net, addresses_in_use(net.id, tasks)) == IPv4Address("10.0.0.4")
    remaining = tasks[1:]  # t1 deleted
    assert allocate_address(net, addresses_in_use(net.id, remaining)) == IPv4Address("10.0.0.2")


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
    assert allocate_address(a, book._in_use[a.id]) == IPv4Address("10.0.0.2")
