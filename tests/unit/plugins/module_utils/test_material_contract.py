# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Small material rules to the letter: x5t <-> thumbprint, chain ordering by signature, SAN normalisation and coverage."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m


@pytest.mark.parametrize('seed', range(40))
def test_x5t_and_thumbprint_convert_both_ways(seed):
    thumb = hashlib.sha1(str(seed).encode()).hexdigest().upper()
    x5t = m.x5t_from_thumbprint(thumb)
    assert x5t == base64.urlsafe_b64encode(bytes.fromhex(thumb)).decode().rstrip('=') and len(x5t) == 27
    assert m.thumbprint_from_x5t(x5t) == thumb
    assert m.thumbprint_from_x5t(bytes.fromhex(thumb)) == thumb


def test_x5t_of_other_lengths_is_padded_right():
    for raw in (b'\x01', b'\x01\x02', b'\x01\x02\x03', b'\x07' * 7, b'\xfa' * 32):
        text = base64.urlsafe_b64encode(raw).decode().rstrip('=')
        assert m.thumbprint_from_x5t(text) == raw.hex().upper()


def test_chain_is_ordered_by_signature_not_by_name(pki):
    h = pki.hierarchy()
    impostor = pki.cert(pki.ec(), 'Test Intermediate CA', issuer=h['root'], issuer_key=pki.ec(), ca=True)  # same name, other key
    chain, unrelated = m.order_chain(h['leaf'], [h['root'], impostor, h['inter']])
    assert [m.thumbprint(c) for c in chain] == [m.thumbprint(c) for c in (h['inter'], h['root'], impostor)]
    assert [m.thumbprint(c) for c in unrelated] == [m.thumbprint(impostor)]


@pytest.mark.parametrize('value, expected', [
    ('www.Example.com.', ('DNS', 'www.example.com')),
    ('DNS: WWW.example.com', ('DNS', 'www.example.com')),
    ('dns:10.0.0.1', ('IP', '10.0.0.1')),
    ('10.0.0.1', ('IP', '10.0.0.1')),
    ('IP:2001:db8::1', ('IP', '2001:db8::1')),
    ('urn:x', ('DNS', 'urn:x')),
    ('DNS:WWW.EXAMPLE.BOX.', ('DNS', 'www.example.box')),
])
def test_expected_sans_are_normalised(value, expected):
    assert m._normalise_san(value) == expected


def test_an_ip_expected_san_that_is_no_ip_address_is_refused():
    with pytest.raises(errors.DeployError) as info:
        m._normalise_san('IP:www.example.com')
    assert info.value.code == errors.INVALID_CONFIG and "'IP:www.example.com'" in info.value.message


@pytest.mark.parametrize('name, san, covered', [
    ('www.example.com', 'www.example.com', True),
    ('*.example.com', '*.example.com', True),
    ('www.example.com', '*.example.com', True),
    ('a.b.example.com', '*.example.com', False),
    ('*.example.com', '*.com', False),
    ('example.com', '*.example.com', False),
])
def test_dns_coverage(name, san, covered):
    assert m._dns_covered(name, san) is covered
