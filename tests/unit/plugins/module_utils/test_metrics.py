# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import metrics

LABELS = {'target': 'azure_kv', 'vault': 'https://kv1.vault.azure.net', 'name': 'www'}


def parse(path):
    from prometheus_client import parser  # pylint: disable=import-outside-toplevel
    with open(path) as handle:
        families = list(parser.text_string_to_metric_families(handle.read()))
    return dict(((s.name, tuple(sorted(s.labels.items()))), s.value) for f in families for s in f.samples)


def key(name, **extra):
    return (name, tuple(sorted(dict(LABELS, **extra).items())))


def test_counters_accumulate_and_gauges_replace(tmp_path):
    path = str(tmp_path / 'certdeploy.prom')
    metrics.write(path, LABELS, {'outcome': 'created', 'rollback': {'attempted': False}}, expires=1700000000)
    metrics.write(path, LABELS, {'outcome': 'unchanged', 'rollback': {}}, expires=1800000000)
    metrics.write(path, LABELS, {'outcome': 'rolled_back', 'rollback': {'attempted': True, 'succeeded': True}},
                  error_code='service_error', expires=1800000000)
    samples = parse(path)
    assert samples[key('certdeploy_deploy_total', outcome='created')] == 1
    assert samples[key('certdeploy_deploy_total', outcome='unchanged')] == 1
    assert samples[key('certdeploy_deploy_total', outcome='rolled_back')] == 1
    assert samples[key('certdeploy_deploy_failures_total', error_code='service_error')] == 1
    assert samples[key('certdeploy_rollback_total', result='succeeded')] == 1
    assert samples[key('certdeploy_certificate_expiry_timestamp_seconds')] == 1800000000
    assert key('certdeploy_last_success_timestamp_seconds') in samples
    assert sorted(os.listdir(str(tmp_path))) == ['certdeploy.prom', 'certdeploy.prom.lock']


def test_other_targets_and_foreign_lines_survive(tmp_path):
    path = str(tmp_path / 'm.prom')
    with open(path, 'w') as handle:
        handle.write('# a comment\nsome_other_metric 5\n')
    other = dict(LABELS, name='api', vault='https://kv"2\\.vault.azure.net')
    metrics.write(path, other, {'outcome': 'created'})
    metrics.write(path, LABELS, {'outcome': 'created'})
    metrics.write(path, other, {'outcome': 'created'})
    samples = parse(path)
    assert samples[('certdeploy_deploy_total', tuple(sorted(dict(other, outcome='created').items())))] == 2
    assert samples[key('certdeploy_deploy_total', outcome='created')] == 1


def test_failure_without_outcome_counts_the_error_only(tmp_path):
    path = str(tmp_path / 'm.prom')
    metrics.write(path, LABELS, {}, error_code='forbidden')
    samples = parse(path)
    assert samples == {key('certdeploy_deploy_failures_total', error_code='forbidden'): 1}
