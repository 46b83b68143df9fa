"""The node's upstream DNS servers, from its resolv.conf."""

from ipaddress import IPv4Address

from netagent.dns.node_resolver import read_upstreams


def test_upstreams_are_the_ipv4_nameservers_without_loopback(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver 192.168.56.1\n"
        "nameserver ::1\nnameserver 2001:db8::1\nnameserver 10.1.2.3\noptions ndots:1\n"
    )
    assert read_upstreams(conf) == [IPv4Address("192.168.56.1"), IPv4Address("10.1.2.3")]


def test_a_missing_resolv_conf_means_no_upstream(tmp_path):
    assert read_upstreams(tmp_path / "absent") == []
