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
    assert [config.site(n).kind for n in ("chi_uc", "kvm_tacc", "edge")] == ["baremetal", "kvm", "edge"]
    assert len(set(colours.values())) == len(colours)


def test_explicit_colours_win_and_are_never_handed_out_twice(tmp_path):
    config = config_file(tmp_path, f'site_colours: {{chi_tacc: "{SITE_PALETTE[0].upper()}", other: "#123456"}}\n'
                         + SITES)
    colours = site_colours(config, ["zeta", "alpha"])
    assert colours["chi_tacc"] == SITE_PALETTE[0] and colours["other"] == "#123456"
    assert colours["chi_uc"] == SITE_PALETTE[1]  # the first free palette colour
    assert list(colours)[-2:] == ["alpha", "zeta"]  # unconfigured sites after, by name
    assert len(set(colours.values())) == len(colours)


def test_six_sites_all_distinct_without_config():
    sites = ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert len(set(site_colours(None, sites).values())) == 6


@pytest.mark.parametrize("body, message", [
    ('site_colours: {a: red}\nsites: {}\n', 'site_colours.a must be a colour like "#0072b2"'),
    ('sites: {a: {db_url: "sqlite:///a", hypervisor: xen}}\n', "sites.a.hypervisor must be one of ironic, kvm"),
    ('sites: {a: {db_url: "sqlite:///a", kind: fog}}\n', "sites.a.kind must be one of baremetal, kvm, edge"),
])
def test_bad_colour_config_is_one_clear_error(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        config_file(tmp_path, body)
