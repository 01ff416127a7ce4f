"""Site colours: fixed by the config, KVM sites yellow, never two sites alike, never a hash of the
name (chi_tacc and kvm_tacc once came out the same red)."""

from __future__ import annotations

import pytest

from exporter.colours import EDGE_PALETTE, KVM_PALETTE, SITE_PALETTE, site_colours
from exporter.config import load_config
from exporter.errors import ConfigError


def config_file(tmp_path, body: str):
    path = tmp_path / "sites.yaml"
    path.write_text(body)
    return load_config(path)


SITES = """
sites:
  chi_uc: {db_url: "sqlite:///a"}
  chi_tacc: {db_url: "sqlite:///b"}
  kvm_tacc: {db_url: "sqlite:///c", hypervisor: kvm}
"""


def test_kvm_site_is_yellow_and_the_others_take_the_palette_in_config_order(tmp_path):
    colours = site_colours(config_file(tmp_path, SITES))
    assert colours == {"kvm_tacc": KVM_PALETTE[0], "chi_uc": SITE_PALETTE[0], "chi_tacc": SITE_PALETTE[1]}


def test_site_kind_edge_is_green_and_kind_kvm_is_yellow_like_hypervisor_kvm(tmp_path):
    config = config_file(tmp_path, SITES + '  edge: {db_url: "sqlite:///d", kind: edge}\n'
                         '  kvm2: {db_url: "sqlite:///e", kind: kvm}\n')
    colours = site_colours(config)
    assert colours["edge"] == EDGE_PALETTE[0] and colours["kvm2"] == KVM_PALETTE[1]
    # chi_uc says nothing: what it is comes from its data (exporter.colours ``detected``)
    assert [config.site(n).kind for n in ("chi_uc", "kvm_tacc", "edge")] == ["", "kvm", "edge"]
    assert len(set(colours.values())) == len(colours)


def test_explicit_colours_win_and_are_never_handed_out_twice(tmp_path):
    config = config_file(tmp_path, f'site_colours: {{chi_tacc: "{SITE_PALETTE[0].upper()}", other: "#123456"}}\n'
                         + SITES)
    colours = site_colours(config, ["zeta", "alpha"])
    assert colours["chi_tacc"] == SITE_PALETTE[0] and colours["other"] == "#123456"
    assert colours["chi_uc"] == SITE_PALETTE[1]  # the first free palette colour
    assert list(colours)[-2:] == ["alpha", "zeta"]  # unconfigured sites after, by name
    assert len(set(colours.values())) == len(colours)


def test_a_site_is_kvm_when_its_hosts_are_and_the_config_overrides(tmp_path):
    config = config_file(tmp_path, """
sites:
  chi_uc: {db_url: "sqlite:///a"}
  kvm_tacc: {db_url: "sqlite:///c"}
  forced: {db_url: "sqlite:///d", hypervisor: ironic}
""")
    detected = {"kvm_tacc": "kvm", "forced": "kvm", "chi_uc": "ironic", "elsewhere": "kvm", "mix": "mixed"}
    colours = site_colours(config, ["elsewhere", "mix"], detected)
    assert colours["kvm_tacc"] == KVM_PALETTE[0] and colours["elsewhere"] == KVM_PALETTE[1]
    assert colours["forced"] in SITE_PALETTE and colours["chi_uc"] in SITE_PALETTE and colours["mix"] in SITE_PALETTE
    assert site_colours(config)["kvm_tacc"] == SITE_PALETTE[1]  # nothing detected, nothing configured


def test_detected_kinds_come_from_the_audit_of_each_reconstruction(tmp_path):
    import json

    from exporter.colours import detected_for, detected_in

    def reconstruction(path, site, kind, when):
        path.mkdir(parents=True)
        (path / "timeline.parquet").write_bytes(b"")
        audit = {"site": site, "snapshot_time": when}
        if kind:
            audit["hypervisors"] = {"site": kind, "kvm_hosts": 1, "ironic_hosts": 0, "unknown_hosts": 0}
        (path / "audit.json").write_text(json.dumps(audit))
        return path

    kvm = reconstruction(tmp_path / "a", "kvm_tacc", "kvm", "2026-01-01T00:00:00")
    old = reconstruction(tmp_path / "b", "old", None, "2026-01-01T00:00:00")  # written before detection
    edge = reconstruction(tmp_path / "c", "chi_edge", "unknown", "2026-01-01T00:00:00")
    (edge / "device_timeline.parquet").write_bytes(b"")
    assert detected_in([kvm, old, tmp_path / "missing", edge]) == {"kvm_tacc": "kvm", "chi_edge": "edge"}
    assert site_colours(None, ["chi_edge"], {"chi_edge": "edge"})["chi_edge"] == EDGE_PALETTE[0]
    data = tmp_path / "data"
    reconstruction(data / "kvm_tacc" / "out" / "20260101T000000Z" / "timeline", "kvm_tacc", "ironic",
                   "2026-01-01T00:00:00")
    reconstruction(data / "kvm_tacc" / "out" / "20260201T000000Z" / "timeline", "kvm_tacc", "kvm",
                   "2026-02-01T00:00:00")
    config = config_file(tmp_path, f'data_dir: "{data}"\nsites:\n  kvm_tacc: {{db_url: "sqlite:///c"}}\n'
                                   '  chi_uc: {db_url: "sqlite:///a"}\n')
    assert detected_for(config) == {"kvm_tacc": "kvm"}  # the newest reconstruction; none for chi_uc


def test_six_sites_all_distinct_without_config():
    sites = ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert len(set(site_colours(None, sites).values())) == 6


@pytest.mark.parametrize("body, message", [
    ('site_colours: {a: red}\nsites: {}\n', 'site_colours.a must be a colour like "#0072b2"'),
    ('sites: {a: {db_url: "sqlite:///a", hypervisor: xen}}\n', "sites.a.hypervisor must be one of auto, ironic, kvm"),
    ('sites: {a: {db_url: "sqlite:///a", kind: fog}}\n', "sites.a.kind must be one of baremetal, kvm, edge"),
])
def test_bad_colour_config_is_one_clear_error(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        config_file(tmp_path, body)
