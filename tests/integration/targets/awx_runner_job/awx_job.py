#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run project/deploy.yml as AWX runs a job template: through ansible-runner, one private data directory per job.

Usage: awx_job.py WORK_DIR   (inside the namespace of tests/integration/emulators/prodnames.py: PRODNAMES_FACTS)

Each job's private data directory is laid out as AWX lays it out for ansible-runner:

  project/deploy.yml      the project checkout (copied from project/ next to this file)
  inventory/hosts         an executable inventory script printing JSON, as AWX writes it
  env/envvars             exactly what AWX's "Microsoft Azure Resource Manager" credential injects for a
                          service principal: AZURE_SUBSCRIPTION_ID, AZURE_CLIENT_ID, AZURE_TENANT,
                          AZURE_SECRET, and AZURE_CLOUD_ENVIRONMENT when the credential sets it
  env/extravars           the job template's extra variables (vault URL, CA, certificate)
  env/settings            AWX's runner settings (job_timeout 0, suppress_ansible_output), except that
                          suppress_output_file is false, so the stdout/stderr artifacts exist to be checked
  env/cmdline             the job's verbosity, where it is above 0 (AWX passes it as -v...)

and started with ansible_runner.interface.run(private_data_dir=..., playbook=..., ident=...), as AWX's
job task does; the process environment holds no AZURE_*, IDENTITY_*, MSI_* or IMDS_* variable of its own.

Jobs: 101 creates the certificate from files; 102 (credential with cloud_environment AzureCloud) finds it
unchanged; 103, at verbosity 3, rotates it with the key given as content (a no_log option).  After each
job: status, rc and the deploy's outcome from its job events; the vault read by an independent client;
and every file runner wrote (artifacts/<ident>/..., and anything new in the private data directory)
searched for the client secret and for key bytes: each key's PEM body and 64-character PEM lines, its
DER (PKCS#1 and PKCS#8; raw, base64, hex) and every backing-secret value (the stored PFX) read from the
vault.  ansible-runner records the environment it started ansible-playbook with in artifacts/<ident>/command
(mode 0600), so AZURE_SECRET is there, in that one field: the check requires exactly that and nothing else.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys

import ansible_runner
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP = os.path.join(HERE, '..', 'setup_certdeploy', 'files')
NAME = 'awx-runner'
IDENTITY_PREFIXES = ('AZURE_', 'IDENTITY_', 'MSI_', 'IMDS_')
# AWX's settings for a job (its job task passes these to ansible-runner), with the output files kept.
AWX_SETTINGS = {'job_timeout': 0, 'suppress_ansible_output': True, 'suppress_output_file': False}
INVENTORY_SCRIPT = '''#! /usr/bin/env python3
# -*- coding: utf-8 -*-
import json
print('%s' % json.dumps({inventory}))
'''


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        handle.write(text)
    return path


def awx_credential(facts, cloud_environment=None):
    """What AWX's azure_rm injector puts into the job's environment for a service principal."""
    env = {
        'AZURE_SUBSCRIPTION_ID': '00000000-0000-4000-8000-00000000a0a0',
        'AZURE_CLIENT_ID': facts['prod_client_id'],
        'AZURE_TENANT': facts['prod_tenant_id'],
        'AZURE_SECRET': facts['prod_client_secret'],
    }
    if cloud_environment:
        env['AZURE_CLOUD_ENVIRONMENT'] = cloud_environment
    return env


def private_data_dir(work, ident, envvars, extravars, verbosity=0):
    pdd = os.path.join(work, 'awx_%s' % ident)
    shutil.copytree(os.path.join(HERE, 'project'), os.path.join(pdd, 'project'))
    inventory = {'all': {'hosts': ['localhost']},
                 '_meta': {'hostvars': {'localhost': {'ansible_connection': 'local',
                                                      'ansible_python_interpreter': sys.executable}}}}
    write(os.path.join(pdd, 'inventory', 'hosts'), INVENTORY_SCRIPT.format(inventory=repr(inventory)), 0o700)
    write(os.path.join(pdd, 'env', 'envvars'), json.dumps(envvars))
    write(os.path.join(pdd, 'env', 'extravars'), json.dumps(extravars))
    write(os.path.join(pdd, 'env', 'settings'), json.dumps(AWX_SETTINGS))
    if verbosity:
        write(os.path.join(pdd, 'env', 'cmdline'), '-' + 'v' * verbosity)
    os.chmod(pdd, 0o700)
    return pdd


def files_under(root):
    found = set()
    for directory, _dirs, names in os.walk(root):
        for name in names:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def run_job(pdd, ident):
    """ansible-runner as AWX calls it; returns the runner and the job's events."""
    before = files_under(pdd)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(IDENTITY_PREFIXES) or k == 'REQUESTS_CA_BUNDLE'}
    try:
        runner = ansible_runner.interface.run(private_data_dir=pdd, playbook='deploy.yml', ident=str(ident), quiet=True)
    finally:
        os.environ.update(saved)
    events = []
    events_dir = os.path.join(pdd, 'artifacts', str(ident), 'job_events')
    for name in sorted(os.listdir(events_dir), key=lambda n: int(n.split('-', 1)[0])):
        with open(os.path.join(events_dir, name), encoding='utf-8') as handle:
            events.append(json.load(handle))
    new = sorted(files_under(pdd) - before)
    return runner, events, new


def task_result(events, task):
    results = [e['event_data']['res'] for e in events
               if e.get('event') in ('runner_on_ok', 'runner_on_failed') and e['event_data'].get('task') == task]
    check(len(results) == 1, 'expected one result of task %r in the job events, found %d' % (task, len(results)))
    return results[0]


def stats(events):
    found = [e['event_data'] for e in events if e.get('event') == 'playbook_on_stats']
    check(len(found) == 1, 'no playbook_on_stats event')
    return found[0]


def strings_of(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)


def views(data):
    """Where a needle may hide: the bytes as they are and, for JSON, every string in it decoded (escapes undone)."""
    out = [data]
    try:
        out.append('\n'.join(strings_of(json.loads(data))).encode('utf-8', 'surrogateescape'))
    except ValueError:
        pass
    return out


def find_needles(data, needles):
    hits = set()
    for view in views(data):
        for label, needle in needles.items():
            if needle in view:
                hits.add(label)
    return hits


def key_needles(label, key_file):
    with open(key_file, 'rb') as handle:
        pem = handle.read()
    key = serialization.load_pem_private_key(pem, password=None)
    body_lines = [line for line in pem.decode('ascii').splitlines() if line and not line.startswith('-----')]
    needles = {'%s PEM body' % label: ''.join(body_lines).encode('ascii')}
    for number, line in enumerate(body_lines):
        if len(line) == 64:  # a full line is unique to this key; the short last line might not be
            needles['%s PEM line %d' % (label, number + 1)] = line.encode('ascii')
    for fmt_name, fmt in (('PKCS#1', serialization.PrivateFormat.TraditionalOpenSSL), ('PKCS#8', serialization.PrivateFormat.PKCS8)):
        der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        needles['%s %s DER' % (label, fmt_name)] = der
        needles['%s %s DER base64' % (label, fmt_name)] = base64.b64encode(der)
        needles['%s %s DER hex' % (label, fmt_name)] = der.hex().encode('ascii')
    return needles


def backing_secrets(facts, secret_ids):
    """Each deployed version's backing secret value (the stored PFX with the key), read by an independent client."""
    credential = ClientSecretCredential(facts['prod_tenant_id'], facts['prod_client_id'], facts['prod_client_secret'],
                                        authority=facts['prod_authority_host'], disable_instance_discovery=True,
                                        connection_verify=facts['prod_ca_file'])
    client = SecretClient(facts['prod_vault_url'], credential, connection_verify=facts['prod_ca_file'])
    needles = {}
    for secret_id in sorted(secret_ids):
        version = secret_id.rstrip('/').rsplit('/', 1)[1]
        value = client.get_secret(NAME, version).value
        check(value and len(value) > 64, 'the backing secret %s is empty' % secret_id)
        needles['backing secret %s' % version] = value.encode('utf-8')
        needles['backing secret %s (first 64 chars)' % version] = value[:64].encode('utf-8')
    return needles


def vault_read(facts):
    env = dict(os.environ, AZURE_TENANT_ID=facts['prod_tenant_id'], AZURE_CLIENT_ID=facts['prod_client_id'],
               AZURE_CLIENT_SECRET=facts['prod_client_secret'], AZURE_AUTHORITY_HOST=facts['prod_authority_host'],
               CERTDEPLOY_TEST_CA_FILE=facts['prod_ca_file'])
    out = subprocess.run([sys.executable, os.path.join(SETUP, 'vault_state.py'), facts['prod_vault_url'], NAME],
                         env=env, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def check_artifacts(pdd, ident, new_files, needles, secret):
    """Search every file the job wrote; returns {relative path: size} of what was checked."""
    artifacts = os.path.join('artifacts', str(ident))
    checked = {}
    for rel in new_files:
        path = os.path.join(pdd, rel)
        with open(path, 'rb') as handle:
            data = handle.read()
        if rel == os.path.join(artifacts, 'command'):
            # runner's record of the command and its environment: the credential's secret is there, in
            # env.AZURE_SECRET (as in AWX's own pre-redaction job environment), and nowhere else.
            check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, '%s is not mode 0600' % rel)
            record = json.loads(data)
            check(record['env'].get('AZURE_SECRET') == secret, '%s: env.AZURE_SECRET is not the credential secret' % rel)
            identity = sorted(k for k in record['env'] if k.startswith(IDENTITY_PREFIXES))
            check(identity == sorted(awx_names(record['env'])), '%s: identity variables %s beyond the credential' % (rel, identity))
            record['env'].pop('AZURE_SECRET')
            data = json.dumps(record).encode('utf-8')
        hits = find_needles(data, needles)
        check(not hits, '%s holds %s' % (rel, ', '.join(sorted(hits))))
        checked[rel] = len(data)
    for required in ('job_events', 'stdout', 'stderr', 'rc', 'status', 'command'):
        check(any(rel == os.path.join(artifacts, required) or rel.startswith(os.path.join(artifacts, required) + os.sep)
                  for rel in checked), 'runner wrote no %s artifact for job %s' % (required, ident))
    outside = [rel for rel in checked if not rel.startswith(artifacts + os.sep)]
    return checked, outside


def awx_names(env):
    return [k for k in env if k in ('AZURE_SUBSCRIPTION_ID', 'AZURE_CLIENT_ID', 'AZURE_TENANT', 'AZURE_SECRET', 'AZURE_CLOUD_ENVIRONMENT')]


def main(work):
    with open(os.environ['PRODNAMES_FACTS'], encoding='utf-8') as handle:
        facts = json.load(handle)
    pki = json.loads(subprocess.run([sys.executable, os.path.join(SETUP, 'make_pki.py'), os.path.join(work, 'pki')],
                                    check=True, stdout=subprocess.PIPE).stdout)
    secret = facts['prod_client_secret']
    base_vars = {'certdeploy_vault_url': facts['prod_vault_url'], 'certdeploy_ca_path': facts['prod_ca_file'],
                 'certdeploy_certificate_name': NAME}
    # Emulator gap (azure-keyvault-emulator 0.7.0): a PFX with chain certificates is rejected, so leaf-only.
    jobs = [
        (101, awx_credential(facts), dict(base_vars, certdeploy_certificate_path=pki['leafonly_crt'],
                                          certdeploy_private_key_path=pki['leafonly_key']), 0, 'created', pki['leafonly_thumbprint']),
        (102, awx_credential(facts, 'AzureCloud'), dict(base_vars, certdeploy_certificate_path=pki['leafonly_crt'],
                                                        certdeploy_private_key_path=pki['leafonly_key']), 0, 'unchanged',
         pki['leafonly_thumbprint']),
        (103, awx_credential(facts, 'AzureCloud'), dict(base_vars, certdeploy_certificate_file=pki['rsa1_crt'],
                                                        certdeploy_private_key_file=pki['rsa1_key']), 3, 'rotated',
         pki['rsa1_thumbprint']),
    ]
    needles = dict(key_needles('leafonly key', pki['leafonly_key']), **key_needles('rsa1 key', pki['rsa1_key']))
    needles['client secret'] = secret.encode('utf-8')
    # The search must be able to fail: it finds the secret in env/envvars and the key in its PEM file.
    with open(pki['rsa1_key'], 'rb') as handle:
        check('rsa1 key PEM line 1' in find_needles(handle.read(), needles), 'self-check: the key search does not find a key')
    report = []
    previous_versions = 0
    secret_ids = set()
    warnings = []
    for ident, envvars, extravars, verbosity, outcome, thumbprint in jobs:
        pdd = private_data_dir(work, ident, envvars, extravars, verbosity)
        with open(os.path.join(pdd, 'env', 'envvars'), 'rb') as handle:
            check('client secret' in find_needles(handle.read(), needles), 'self-check: the secret search does not find it')
        runner, events, new_files = run_job(pdd, ident)
        artifacts = os.path.join(pdd, 'artifacts', str(ident))
        with open(os.path.join(artifacts, 'status'), encoding='utf-8') as handle:
            status_file = handle.read().strip()
        with open(os.path.join(artifacts, 'rc'), encoding='utf-8') as handle:
            rc_file = handle.read().strip()
        with open(os.path.join(artifacts, 'stdout'), encoding='utf-8', errors='replace') as handle:
            stdout = handle.read()
        check(runner.status == 'successful' and runner.rc == 0 and status_file == 'successful' and rc_file == '0',
              'job %s: status %s rc %s (files: %s, %s)\n%s' % (ident, runner.status, runner.rc, status_file, rc_file, stdout[-4000:]))
        deploy = task_result(events, 'Deploy the certificate')
        info = task_result(events, 'Describe the certificate the vault now serves')
        summary = stats(events)
        check(deploy.get('outcome') == outcome, 'job %s: outcome %r, expected %r' % (ident, deploy.get('outcome'), outcome))
        check(deploy['certificate']['thumbprint'] == thumbprint, 'job %s: deployed thumbprint %s' % (ident, deploy['certificate']['thumbprint']))
        check(deploy['certificate']['id'].startswith(facts['prod_vault_url'] + '/certificates/%s/' % NAME),
              'job %s: id %s' % (ident, deploy['certificate']['id']))
        check(info['exists'] and info['certificate']['thumbprint'] == thumbprint, 'job %s: info %r' % (ident, info.get('certificate')))
        check(bool(deploy['changed']) == (outcome != 'unchanged'), 'job %s: changed=%s' % (ident, deploy['changed']))
        check(summary['failures'] == {} and summary['dark'] == {}, 'job %s: failures %r' % (ident, summary))
        if outcome == 'unchanged':
            check(summary['changed'] == {}, 'job %s: a rerun changed something: %r' % (ident, summary['changed']))
        if 'invocation' in deploy:  # ansible-core 2.21 leaves it out of callback results; where it is, no_log masks it
            masked = deploy['invocation'].get('module_args', {}).get('private_key')
            check(masked in (None, 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'), 'job %s: private_key in the events is not masked' % ident)
        warnings.extend('job %s: %s' % (ident, w) for w in deploy.get('warnings', []))
        state = vault_read(facts)
        expected_versions = previous_versions + (1 if outcome in ('created', 'rotated') else 0)
        check(state['count'] == expected_versions and state['latest']['thumbprint'] == thumbprint,
              'job %s: the vault holds %d versions, latest %s' % (ident, state['count'], state['latest'] and state['latest']['thumbprint']))
        check(state['latest']['tags'].get('certdeploy-managed-by'), 'job %s: no provenance tag' % ident)
        previous_versions = state['count']
        secret_ids.add(deploy['certificate']['secret_id'])
        job_needles = dict(needles, **backing_secrets(facts, secret_ids))
        checked, outside = check_artifacts(pdd, ident, new_files, job_needles, secret)
        events_checked = sum(1 for rel in checked if '%sjob_events%s' % (os.sep, os.sep) in rel)
        report.append('job %s: %s, outcome %s, %d job events, %d files checked (%d bytes)%s for %d needles; vault: %d version(s)'
                      % (ident, runner.status, outcome, events_checked, len(checked), sum(checked.values()),
                         ' (outside artifacts/: %s)' % ', '.join(outside) if outside else '', len(job_needles), state['count']))
        kinds = {os.path.dirname(rel) + '/*.json' if '%sjob_events%s' % (os.sep, os.sep) in rel else rel for rel in checked}
        report.append('  checked: %s' % ', '.join(sorted(kinds)))
    for line in report + ['module warning, %s' % w for w in warnings]:
        print('[awx_runner_job] %s' % line)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv[1]))
    except Failed as error:
        sys.exit('[awx_runner_job] FAILED: %s' % error)
