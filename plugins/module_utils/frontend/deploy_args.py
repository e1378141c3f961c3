# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The argument spec of one certificate deploy, shared by every deploy entry point.

``CERTIFICATE_ARGS`` are the options that describe one certificate and how it is deployed (material,
expectations, tags, behaviour). ``azure_kv_certificate_deploy`` takes them at the top level next to the
connection options; ``azure_kv_certificate_deploy_many`` takes them for each element of its list. Both
build their spec from here, so an option added once is an option of both.
"""

from __future__ import annotations

from ..engine.model import CHECK_MODE_READ, ON_SOFT_DELETED, ROLLBACK_MODES
from .ansible_module import CONNECTION_ARGS

CERTIFICATE_ARGS = dict(
    certificate=dict(type='str'),
    certificate_path=dict(type='path'),
    private_key=dict(type='str', no_log=True),
    private_key_path=dict(type='path', no_log=False),
    private_key_passphrase=dict(type='str', no_log=True),
    chain=dict(type='str'),
    chain_path=dict(type='path'),
    pfx=dict(type='str', no_log=True),
    pfx_path=dict(type='path'),
    pfx_password=dict(type='str', no_log=True),
    copy_from=dict(type='dict', options=dict(
        vault_url=dict(type='str', required=True),
        certificate_name=dict(type='str', required=True),
        version=dict(type='str'),
    )),
    min_days_remaining=dict(type='int'),
    expected_sans=dict(type='list', elements='str'),
    content_type=dict(type='str', default='pkcs12', choices=['pkcs12', 'pem']),
    exportable=dict(type='bool', default=True),
    enabled=dict(type='bool', default=True),
    tags=dict(type='dict', default={}),
    preserve_chain_order=dict(type='bool', default=False),
    certificate_id=dict(type='str'),
    take_ownership=dict(type='bool', default=False),
    rollback=dict(type='str', default='auto', choices=list(ROLLBACK_MODES)),
    on_soft_deleted=dict(type='str', default='fail', choices=list(ON_SOFT_DELETED)),
    force=dict(type='bool', default=False),
    allow_expired=dict(type='bool', default=False),
    check_mode_read=dict(type='str', default='best_effort', choices=list(CHECK_MODE_READ)),
)

# Options of one run rather than of one certificate.
RUN_ARGS = dict(
    metrics_file=dict(type='path'),
)

# The single deploy module: connection options, one certificate, the run options.
ARGUMENT_SPEC = dict(CONNECTION_ARGS, **dict(CERTIFICATE_ARGS, **RUN_ARGS))

_PEM_OPTIONS = ('certificate', 'certificate_path', 'private_key', 'private_key_path', 'private_key_passphrase', 'chain', 'chain_path')
# Exactly one way of giving each part of the material, and one kind of material.
MUTUALLY_EXCLUSIVE = [
    ('certificate', 'certificate_path'),
    ('private_key', 'private_key_path'),
    ('chain', 'chain_path'),
    ('pfx', 'pfx_path'),
] + [(pfx, pem) for pfx in ('pfx', 'pfx_path', 'pfx_password') for pem in _PEM_OPTIONS] + [
    ('copy_from', option) for option in _PEM_OPTIONS + ('pfx', 'pfx_path', 'pfx_password')]
REQUIRED_ONE_OF = [('certificate', 'certificate_path', 'pfx', 'pfx_path', 'copy_from')]
