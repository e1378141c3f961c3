# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

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


def test_labels_with_newlines_quotes_and_backslashes_render_escaped_and_read_back_unchanged(tmp_path):
    path = str(tmp_path / 'm.prom')
    odd = dict(LABELS, name='a\nb"c\\d\\n')
    metrics.write(path, odd, {'outcome': 'created'}, expires=1700000000.5)
    with open(path) as handle:
        text = handle.read()
    assert 'name="a\\nb\\"c\\\\d\\\\n"' in text
    assert all(line.startswith(('#', 'certdeploy_')) for line in text.splitlines())  # no raw newline inside a label
    samples = parse(path)
    assert samples[('certdeploy_deploy_total', tuple(sorted(dict(odd, outcome='created').items())))] == 1
    # Read back by the module itself (the next run), the label is the same label: the counter goes on.
    metrics.write(path, odd, {'outcome': 'created'})
    assert parse(path)[('certdeploy_deploy_total', tuple(sorted(dict(odd, outcome='created').items())))] == 2


def test_values_render_as_integers_or_as_exact_floats():
    labels = (('name', 'www'),)
    text = metrics._render({('certdeploy_deploy_total', labels): 3.0,
                            ('certdeploy_certificate_expiry_timestamp_seconds', labels): 1700000000.25})
    assert 'certdeploy_deploy_total{name="www"} 3\n' in text
    assert 'certdeploy_certificate_expiry_timestamp_seconds{name="www"} 1700000000.25\n' in text


def test_an_unreadable_value_skips_that_line_only(tmp_path):
    path = str(tmp_path / 'm.prom')
    with open(path, 'w') as handle:
        handle.write('certdeploy_deploy_total{outcome="created"} bogus\n'
                     'certdeploy_deploy_total{outcome="rotated"} 4\n'
                     'certdeploy_deploy_total 2\n')
    assert metrics._read(path) == {('certdeploy_deploy_total', (('outcome', 'rotated'),)): 4.0,
                                   ('certdeploy_deploy_total', ()): 2.0}


def test_update_samples_uses_the_given_time_and_counts_failed_rollbacks():
    samples = metrics.update_samples({}, {'name': 'www'}, {'rollback': {'attempted': True, 'succeeded': False}},
                                     now=1234.9)
    assert samples == {('certdeploy_rollback_total', (('name', 'www'), ('result', 'failed'))): 1,
                       ('certdeploy_last_success_timestamp_seconds', (('name', 'www'),)): 1234.0}


def test_the_file_is_world_readable_written_under_the_lock_and_made_next_to_the_target(tmp_path, monkeypatch):
    import fcntl
    import tempfile
    calls = []

    class Recorder(object):
        LOCK_EX = fcntl.LOCK_EX

        @staticmethod
        def flock(handle, operation):
            calls.append((os.path.basename(handle.name), operation))
    monkeypatch.setattr(metrics, 'fcntl', Recorder)
    # The temp file must be made in the target's own directory (the rename is atomic only there), never in $TMPDIR.
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'no-such-dir'))
    path = str(tmp_path / 'm.prom')
    metrics.write(path, LABELS, {'outcome': 'created'})
    assert calls == [('m.prom.lock', fcntl.LOCK_EX)]
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(os.listdir(str(tmp_path))) == ['m.prom', 'm.prom.lock']


def test_a_failed_replace_leaves_no_temp_file_and_raises_the_original_error(tmp_path, monkeypatch):
    path = str(tmp_path / 'm.prom')
    seen = []

    def refuse(src, dst):
        seen.append(os.path.basename(src))
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'rename', refuse)
    with pytest.raises(OSError) as info:
        metrics.write(path, LABELS, {'outcome': 'created'})
    assert info.value.errno == 28
    assert seen and seen[0].startswith('.certdeploy-metrics-')  # a hidden name the textfile collector ignores
    assert sorted(os.listdir(str(tmp_path))) == ['m.prom.lock']
