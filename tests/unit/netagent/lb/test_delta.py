"""An endpoint change rewrites only the chains that changed, not the whole table."""

from ipaddress import IPv4Address

from netagent.lb import rules
from netagent.lb.rules import Target, VipService, delta_script


def table(backends_of_b: list[str]) -> str:
    def svc(key: str, vip: str, ips: list[str]) -> VipService:
        return VipService(
            key=key,
            name=key,
            vip=IPv4Address(vip),
            backends=tuple(Target(IPv4Address(ip), f"{key}.{i}") for i, ip in enumerate(ips, 1)),
        )

    return rules.vip_table(
        "webnet", [svc("a", "10.0.0.2", ["10.0.0.5"]), svc("b", "10.0.0.3", backends_of_b)]
    )


def test_a_backend_change_rewrites_only_that_service_chain():
    script = delta_script(table(["10.0.0.6", "10.0.0.7"]), table(["10.0.0.6"]))
    assert script is not None
    lines = script.splitlines()
    assert lines[0] == "flush chain ip vxswarm svc-b"
    assert len(lines) == 2 and lines[1].startswith("add rule ip vxswarm svc-b dnat to 10.0.0.6")
    assert "svc-a" not in script


def test_a_new_service_replaces_the_whole_table():
    old = table(["10.0.0.6"])
    new = rules.vip_table("webnet", [])
    assert delta_script(old, new) is None
    assert delta_script("", old) is None


def test_nothing_changed_needs_no_script():
    assert delta_script(table(["10.0.0.6"]), table(["10.0.0.6"])) is None


def test_the_hairpin_set_changes_by_element_not_the_table_replaced():
    svc = VipService(
        key="b", name="b", vip=IPv4Address("10.0.0.3"),
        backends=(Target(IPv4Address("10.0.0.6"), "b.1"), Target(IPv4Address("10.0.0.7"), "b.2")),
    )  # fmt: skip
    gw = IPv4Address("10.0.0.1")
    both = rules.vip_table("webnet", [svc], gw, [IPv4Address("10.0.0.6"), IPv4Address("10.0.0.7")])
    one = rules.vip_table("webnet", [svc], gw, [IPv4Address("10.0.0.6")])
    assert "snat to 10.0.0.1" in one and "10.0.0.6 . 10.0.0.6" in one
    script = delta_script(both, one)
    assert script == "delete element ip vxswarm hairpin { 10.0.0.7 . 10.0.0.7 }\n"
    assert delta_script(one, both) == "add element ip vxswarm hairpin { 10.0.0.7 . 10.0.0.7 }\n"
