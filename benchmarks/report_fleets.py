# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet sections of docs/performance.md: certdeploy's own fleets, the breakdown, 10,000, memory, throttling.

report.py calls ``targets(data)`` for rows of its targets table and ``sections(data)`` for the sections after it.
Every figure comes from bench.py's results JSON; nothing here is measured or assumed.
"""

from __future__ import annotations

import math
import statistics

LABEL = {'ec': 'EC P-256', 'rsa': 'RSA-2048'}
PARTS = (('parse', 'parse'), ('key_check', 'key check'), ('pfx_build', 'PFX build'), ('stored_check', 'stored-chain check'),
         ('requests', 'requests (client side)'))
PAGE = 25  # Key Vault's list of certificates: items per page


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _s(value):
    return '-' if value is None else ('%.2f s' % value if value < 100 else '%.0f s' % value)


def _ms(value):
    return '-' if value is None else ('%.1f ms' % value if value < 10 else '%.0f ms' % value)


def _mib(kib):
    return '-' if not kib else '%.0f MiB' % (kib / 1024)


def _met(flag):
    return 'met' if flag else 'not met'


def vault_requests(run):
    return run['counts']['challenge'] + run['counts']['authenticated']


def list_target(vault_certificates):
    return int(math.ceil(vault_certificates / float(PAGE))) + 3


class Fleets:
    def __init__(self, data):
        self.data = data
        self.runs = data['runs']
        self.sizes = data['sizes']

    def playbook(self, kind, size, op):
        return [r for r in self.runs if r.get('kind') == kind and r.get('size') == size and r.get('op') == op
                and not r.get('inprocess') and not r.get('seed') and not r['scenario'].startswith(('huge', 'throttled'))]

    def breakdown(self, kind, size, op):
        return next((r for r in self.runs if r.get('inprocess') and r.get('breakdown') and r.get('kind') == kind
                     and r.get('size') == size and r.get('op') == op), None)

    def named(self, prefix, op=None):
        """ansible-playbook runs (or, for op 'seed', the set-up) whose scenario starts with ``prefix``."""
        return [r for r in self.runs if r['scenario'].startswith(prefix) and (op is None or r.get('op') == op)
                and not r.get('inprocess') and bool(r.get('seed')) == (op == 'seed')]

    def fleets(self):
        return [tuple(x) for x in self.sizes.get('fleets', []) if self.playbook(x[0], x[1], 'noop')]

    def rss_rows(self):
        """(label, size, runs) of the no-ops whose peak RSS the memory table shows: each fleet's, then the huge one."""
        rows = [('%s no-op' % LABEL[k], s, self.playbook(k, s, 'noop')) for k, s in self.fleets()]
        huge = self.named('huge_', 'noop')
        if huge:
            rows.append(('%s no-op' % LABEL['rsa'], huge[0]['size'], huge))
        return rows


def targets(data):
    """Rows (target, measured, verdict) for report.py's targets table."""
    f = Fleets(data)
    quick = data['quick']
    rows = []
    big = f.sizes.get('big')
    rsa_big = f.playbook('rsa', big, 'noop')
    if rsa_big:
        task = _median([r['task'] for r in rsa_big])
        rows.append(('%d-certificate RSA-2048 no-op task < 2 s' % big, '%s (playbook %s)' % (_s(task), _s(_median([r['wall'] for r in rsa_big]))),
                     _met(task < 2) if not quick else 'quick run: %d certificates' % big))
    for kind, size in f.fleets():
        noop = f.playbook(kind, size, 'noop')
        counts = sorted(set(vault_requests(r) for r in noop))
        v = noop[0]['vault_certificates']
        rows.append(('%s %d no-op: ≤ ceil(V/25) + 3 vault requests (V = %d)' % (LABEL[kind], size, v),
                     '%s vault requests (challenge included; target %d)' % ('/'.join(str(c) for c in counts), list_target(v)),
                     _met(max(counts) <= list_target(v))))
    for kind, size in [tuple(x) for x in f.sizes.get('breakdown', [])]:
        for op in ('first_import', 'rotation'):
            run = f.breakdown(kind, size, op)
            if run and run.get('out'):
                share = run['out']['cpu'] / run['out']['wall']
                rows.append(('%s %d %s bounded by the vault: client CPU < 10%% of wall time' % (LABEL[kind], size, op.replace('_', ' ')),
                             '%.0f%% (client %s of %s wall, in-process)' % (share * 100, _s(run['out']['cpu']), _s(run['out']['wall'])),
                             _met(share < 0.10)))
    huge = f.named('huge_', 'noop')
    if huge:
        task = _median([r['task'] for r in huge])
        rows.append(('%d-certificate no-op in one task < 30 s' % huge[0]['size'], '%s (playbook %s)' % (_s(task), _s(_median([r['wall'] for r in huge]))),
                     _met(task < 30) if not quick else 'quick run: %d certificates' % huge[0]['size']))
    thr = next((r for r in f.named('throttled_', 'rotation') if r.get('throttle')), None)
    if thr:
        t = thr['throttle']
        ratio = thr['task'] / t['minimum_seconds'] if thr['task'] and t['minimum_seconds'] else None
        rows.append(('throttled %d rotation: every certificate rotated exactly once, none failed' % thr['size'],
                     'versions per certificate %s; %s' % (t.get('versions'), '; '.join(thr['problems']) or 'no failure'),
                     _met(t.get('exactly_once') and not thr['problems'])))
        rows.append(('throttled %d rotation within 1.3× the proxy\'s minimum for the requests it admitted' % thr['size'],
                     '%s against %s (%s)' % (_s(thr['task']), _s(t['minimum_seconds']), ('%.2f×' % ratio) if ratio else '-'),
                     _met(ratio is not None and ratio <= 1.3)))
    return rows


def sections(data):
    f = Fleets(data)
    out = []
    add = out.append
    if f.fleets():
        add(_fleet_table(f))
    if any(f.breakdown(k, s, 'noop') for k, s in [tuple(x) for x in f.sizes.get('breakdown', [])]):
        add(_breakdown(f))
    if data.get('profiles'):
        add(_profiles(data['profiles'], f))
    huge_seed = f.named('huge_', 'seed')
    if f.rss_rows():
        add(_memory(f, huge_seed))
    thr = next((r for r in f.named('throttled_', 'rotation') if r.get('throttle')), None)
    if thr:
        add(_throttled(f, thr))
    add(_splitting(f, thr))
    return '\n'.join(out)


def _fleet_table(f):
    lines = ['## certdeploy fleets in vaults of their own\n',
             'Each fleet is deployed into its own vault (V = the fleet\'s size when the no-op runs), by '
             '`azure_kv_certificate_deploy_many` in one task with its defaults (`max_concurrency` 4, `vault_read: auto`), '
             'through `ansible-playbook`. First import: set A into an empty vault (1 run). No-op: set A again (median of %d runs, %d for '
             'the %d-certificate fleets). `vault_read: each`: the same no-op with one read per certificate, the path the vault '
             'list replaces (1 run). Rotation: set B over set A (1 run). Requests: vault requests (the challenge included; one token '
             'request per run besides). Emulator: the sum of Tomcat\'s own time over those requests (concurrent requests overlap). '
             'Peak RSS: the largest process of the `ansible-playbook` run (`getrusage` of its children: the controller or the '
             'worker that ran the task in-process).\n' % (f.sizes['runs'], f.sizes['big_noop_runs'], f.sizes['big']),
             '| fleet | first import | per certificate | no-op task | no-op playbook | no-op requests (target) | `vault_read: each` no-op '
             '| rotation | per certificate | no-op peak RSS |',
             '| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |']
    for kind, size in f.fleets():
        first = f.playbook(kind, size, 'first_import')
        noop = f.playbook(kind, size, 'noop')
        each = f.playbook(kind, size, 'noop_each')
        rot = f.playbook(kind, size, 'rotation')
        first_task = first[0]['task'] if first else None
        rot_task = rot[0]['task'] if rot else None
        v = noop[0]['vault_certificates']
        lines.append('| %s × %d | %s | %s | %s | %s | %s (%d) | %s | %s | %s | %s |' % (
            LABEL[kind], size, _s(first_task), _ms(first_task / size * 1000) if first_task else '-',
            _s(_median([r['task'] for r in noop])), _s(_median([r['wall'] for r in noop])),
            '/'.join(sorted(set(str(vault_requests(r)) for r in noop))), list_target(v),
            ('%s, %d requests' % (_s(each[0]['task']), vault_requests(each[0]))) if each else 'not in this tree',
            _s(rot_task), _ms(rot_task / size * 1000) if rot_task else '-', _mib(_median([r['largest_maxrss_kib'] for r in noop]))))
    lines.append('')
    lines.append('Read path of each no-op, from the task\'s own result (`vaults`: the vault\'s read choice, list pages, certificates '
                 'decided from the list; `certificates[].read_path`):\n')
    for kind, size in f.fleets():
        noop = f.playbook(kind, size, 'noop')
        fleet = noop[0].get('fleet') or {}
        vaults = fleet.get('vaults') or []
        if vaults:
            v = vaults[0]
            lines.append('- %s × %d: read `%s`, %s list pages, %s of %d decided from the list, %s requests by the task\'s own count; '
                         'read paths %s.' % (LABEL[kind], size, v.get('read'), v.get('list_pages'), v.get('decided_from_list'), size,
                                             v.get('requests'), fleet.get('read_paths')))
        else:
            lines.append('- %s × %d: the task reported no per-vault summary (this tree has no `vaults` result).' % (LABEL[kind], size))
    lines.append('')
    return '\n'.join(lines)


def _breakdown(f):
    lines = ['## Where a certificate\'s time goes\n',
             'The same operations as the table above, run in one Python process (`benchmarks/inprocess.py`: '
             'deploy_many\'s `main()` through the stand-in the action plugin uses, with the default `max_concurrency` 4) against the '
             'same vault: a no-op of set B, a rotation back to set A, a first import of set A under new names. Every module is '
             'imported before the clock starts. Client figures are CPU time: the named parts are timers around the collection\'s '
             'own functions (each call adds its thread\'s CPU time): *parse* = `load_pem_material` (certificate, chain and key '
             'parsed, the RSA consistency check deferred), *key check* = `check_private_key` (that check, before a key is sent), '
             '*PFX build* = `build_pkcs12`, *stored-chain check* = `stored_certificates` + `compare_stored` (the backing secret '
             'read back and compared), *requests* = azure-core\'s `RequestsTransport.send` (TLS, HTTP; the thread\'s CPU, not its '
             'wait). *Other client* = the process\'s whole CPU time (`os.times`, all threads) less those parts: the SDK\'s '
             'pipeline, the engine, the thread pool. *Emulator CPU* = the JVM\'s CPU seconds over the run (/proc); *emulator '
             'time* = the sum of Tomcat\'s time per request (its access log). All per certificate. Client share = client CPU ÷ '
             'wall time: under 10 %, the run waits on the vault, not on the client.\n',
             '| fleet | operation | wall | client CPU | %s | other client | emulator CPU | emulator time | requests | client share |' % (
                 ' | '.join(label for _k, label in PARTS)),
             '| --- | --- | ---: | ---: | %s | ---: | ---: | ---: | ---: | ---: |' % ' | '.join('---:' for _p in PARTS)]
    for kind, size in [tuple(x) for x in f.sizes.get('breakdown', [])]:
        for op in ('noop', 'first_import', 'rotation'):
            run = f.breakdown(kind, size, op)
            if not run or not run.get('out'):
                continue
            o = run['out']
            n = float(run['items'])
            named = sum(o['parts_cpu'].get(k, 0) for k, _l in PARTS)
            lines.append('| %s × %d | %s | %s | %s | %s | %s | %s | %s | %.1f | %.0f%% |' % (
                LABEL[kind], size, op.replace('_', ' '), _ms(o['wall'] / n * 1000), _ms(o['cpu'] / n * 1000),
                ' | '.join(_ms(o['parts_cpu'].get(k, 0) / n * 1000) for k, _l in PARTS), _ms(max(0.0, o['cpu'] - named) / n * 1000),
                _ms(o['jvm_cpu'] / n * 1000) if o.get('jvm_cpu') is not None else '-', _ms(run['counts']['server_us'] / 1e3 / n),
                vault_requests(run) / n, o['cpu'] / o['wall'] * 100))
    lines.append('')
    return '\n'.join(lines)


def _profiles(profiles, f):
    kind, size = f.sizes.get('profile', ('rsa', 0))
    lines = ['## Profile of the client\n',
             'cProfile over deploy_many\'s `main()` in one process, `max_concurrency: 1` (Python\'s profiler follows one thread, so '
             'the certificates go one after the other): a rotation and a no-op of %s × %d, and the no-ops of the largest RSA fleet '
             'and of the 10,000 (each name says which). The profiler slows every call, so '
             'these lines rank costs; the seconds of the tables above come from runs without it. Own time = time in the '
             'function itself; cumulative = with what it calls. Paths under `plugins/` are the collection\'s.\n' % (LABEL.get(kind, kind), size)]
    for name, prof in sorted(profiles.items()):
        lines.append('### %s (%.2f s profiled)\n' % (name, prof['total']))
        lines.append('Top by own time (every function):\n')
        lines.append('| own | cumulative | calls | function | called from |')
        lines.append('| ---: | ---: | ---: | --- | --- |')
        for row in prof['tottime'][:12]:
            callers = '; '.join('`%s`' % c for c in row.get('callers', []))
            lines.append('| %.3f s | %.3f s | %d | `%s:%d %s` | %s |'
                         % (row['tottime'], row['cumtime'], row['calls'], row['file'], row['line'], row['function'], callers))
        lines.append('')
        lines.append('The collection\'s functions by cumulative time:\n')
        lines.append('| cumulative | own | calls | function |')
        lines.append('| ---: | ---: | ---: | --- |')
        for row in prof['product_cumtime'][:30]:
            lines.append('| %.3f s | %.3f s | %d | `%s:%d %s` |' % (row['cumtime'], row['tottime'], row['calls'], row['file'], row['line'], row['function']))
        lines.append('')
    return '\n'.join(lines)


def _memory(f, huge_seed):
    lines = ['## Time and memory by fleet size\n',
             'No-op tasks of `azure_kv_certificate_deploy_many` through `ansible-playbook`, for sizing a controller or an execution '
             'node. *Controller* = the peak RSS of the `ansible-playbook` process itself (the callback\'s `getrusage` at the end of '
             'the play); *largest process* = the peak RSS of the largest process of the run (the wrapper\'s `getrusage` of its '
             'children): where it exceeds the controller\'s, it is the worker process that ran the task in-process, holding the '
             'task\'s arguments, every certificate\'s material and every result.\n',
             '| fleet | certificates | task | playbook | per certificate (task) | controller peak RSS | largest process peak RSS | vault requests |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for label, size, runs in f.rss_rows():
        task = _median([r['task'] for r in runs])
        lines.append('| %s | %d | %s | %s | %s | %s | %s | %s |' % (
            label, size, _s(task), _s(_median([r['wall'] for r in runs])), _ms(task / size * 1000) if task else '-',
            _mib(_median([r['controller_maxrss_kib'] for r in runs])), _mib(_median([r['largest_maxrss_kib'] for r in runs])),
            '/'.join(sorted(set(str(vault_requests(r)) for r in runs)))))
    lines.append('')
    if huge_seed:
        seed = huge_seed[0]
        out = seed.get('out') or {}
        lines.append('Set-up of the %d-certificate vault (not a certdeploy figure): `benchmarks/seed.py`, one import request per '
                     'certificate built by the collection\'s own code (material, record tag, policy and tags as deploy_many sends '
                     'them; the transport PKCS#12 with 1 PBKDF2 round instead of 10,000), %d threads: %s, %d vault requests, '
                     'emulator CPU %s. The no-op that follows checks that the seeded vault is what deploy_many would have written: '
                     'any certificate it changed would be listed under problems. A first import through deploy_many itself costs '
                     'four requests and the client-side checks per certificate (the first-import rows above).\n' % (
                         seed['items'], seed.get('threads', 0), _s(out.get('seconds')), vault_requests(seed),
                         _s(seed.get('jvm_cpu'))))
    return '\n'.join(lines)


def _throttled(f, thr):
    t = thr['throttle']
    kind = thr.get('kind', 'rsa')
    size = thr['size']
    # lowkey-vault's own rate for the same operation, unthrottled: the rotation of the same kind and size, or the largest.
    plain = f.playbook(kind, size, 'rotation') or next((f.playbook(k, s, 'rotation') for k, s in reversed(f.fleets()) if k == kind), [])
    plain_rate = (vault_requests(plain[0]) / plain[0]['task']) if plain and plain[0]['task'] else None
    ratio = thr['task'] / t['minimum_seconds'] if thr['task'] and t['minimum_seconds'] else None
    # The emulator's own capacity for that mix of requests: its CPU per request in the in-process rotation.
    broken = next((f.breakdown(k, s, 'rotation') for k, s in [tuple(x) for x in f.sizes.get('breakdown', [])] if k == kind
                   and f.breakdown(k, s, 'rotation')), None)
    capacity = None
    if broken and (broken.get('out') or {}).get('jvm_cpu'):
        per_request = broken['out']['jvm_cpu'] / vault_requests(broken)
        capacity = ('lowkey-vault\'s own CPU per request of that rotation (the breakdown) was %s, about %.0f requests a second '
                    'had it the machine\'s %s cores to itself.' % (_ms(per_request * 1000), f.data['config']['machine']['nproc'] / per_request,
                                                                   f.data['config']['machine']['nproc']))
    fleet = thr.get('fleet') or {}
    vault = (fleet.get('vaults') or [{}])[0]
    conc = vault.get('concurrency') or {}
    lines = ['## Rotation through a throttling vault\n',
             'The throttling test proxy (`tests/integration/faults/throttle_addon.py` under mitmdump %s) stands in front of '
             'lowkey-vault as `cdb-throttled.vault.azure.net` (its own address in the namespace, the run\'s test-CA certificate): '
             'a token bucket of **%s requests a second** for the vault, bursts of %s, every other request answered `429` with '
             '`Retry-After` (whole seconds), as Key Vault answers. Unthrottled, the same rotation (%s, %s, directly against '
             'lowkey-vault) ran at **%s vault requests a second** on this machine (%s), client and emulator together; the '
             'proxy\'s rate is %s of that. %s %s Set-up: %d %s certificates imported through the proxy passing everything (not '
             'measured). Measured: `azure_kv_certificate_deploy_many` rotating all of them to new certificates in one task, '
             'default options.\n' % (
                 f.data['config'].get('mitmproxy') or '', _num(t['rate']), _num(t['capacity']), LABEL.get(kind, kind),
                 '%d certificates' % plain[0]['size'] if plain else '-', '%.1f' % plain_rate if plain_rate else '-',
                 '%d requests in %s' % (vault_requests(plain[0]), _s(plain[0]['task'])) if plain else 'not measured in this run',
                 ('%.0f%%' % (t['rate'] / plain_rate * 100)) if plain_rate else 'an unknown share',
                 'So the proxy, not the emulator or the client, sets the pace.' if plain_rate and t['rate'] <= plain_rate / 2 else
                 '**That is not well below the unthrottled pace**: this run\'s wall time mixes the proxy\'s pace with the '
                 'client\'s and the emulator\'s own, and its ratio to the proxy\'s minimum is not a measure of the pacing alone.',
                 capacity or '', size, LABEL.get(kind, kind)),
             '| | |', '| --- | --- |',
             '| vault requests (challenge and 429-answered included) | %d |' % t['requests'],
             '| admitted / answered 429 | %d / %d |' % (t['admitted'], t['throttled']),
             '| proxy\'s minimum for the admitted requests ((admitted − burst) ÷ rate) | %s |' % _s(t['minimum_seconds']),
             '| task wall time | %s (%s the minimum) |' % (_s(thr['task']), ('%.2f×' % ratio) if ratio else '-'),
             '| playbook | %s |' % _s(thr['wall']),
             '| certificates changed / failed | %s / %s |' % (fleet.get('changed', '-'), sum((fleet.get('error_codes') or {}).values())),
             '| versions per certificate afterwards (counted with the SDK) | %s |' % t.get('versions'),
             '| the task\'s own count: requests, 429s, seconds waited | %s, %s, %s |' % (
                 vault.get('requests', '-'), vault.get('throttled', '-'), _s(vault.get('waited_seconds'))),
             '| concurrency start → lowest → end; certificates retried | %s → %s → %s; %s |' % (
                 conc.get('start', '-'), conc.get('lowest', '-'), conc.get('end', '-'), vault.get('retried_certificates', '-')),
             '']
    if thr['problems']:
        lines.append('Problems: %s\n' % '; '.join(thr['problems']))
    return '\n'.join(lines)


def _num(value):
    return ('%d' % value) if value is not None and float(value).is_integer() else str(value)


def _splitting(f, thr):
    huge = f.named('huge_', 'noop')
    per_cert_kib = None
    if huge and f.fleets():
        small = f.playbook(*f.fleets()[-1], op='noop')
        a, b = small[0], huge[0]
        if a.get('largest_maxrss_kib') and b.get('largest_maxrss_kib') and b['size'] != a['size']:
            per_cert_kib = (b['largest_maxrss_kib'] - a['largest_maxrss_kib']) / float(b['size'] - a['size'])
    base = f.playbook(*f.fleets()[-1], op='noop')[0]['largest_maxrss_kib'] if per_cert_kib else None
    lines = ['## Reading a vault, pacing, and splitting a larger estate\n',
             '**`vault_read`.** A no-op needs each certificate\'s thumbprint, tags (with the `certdeploy-material` record of what '
             'was imported), and enabled flag. Key Vault\'s list of certificates returns those for 25 certificates a page, so '
             '`vault_read: list` decides every unchanged certificate from ceil(V/25) list pages (V = the certificates in the vault, '
             'not only the task\'s) and reads individually only what is missing or differs; `vault_read: each` reads each '
             'certificate once. The default, `auto`, lists while pages find the task\'s certificates, and buys pages that find none only while '
             'they are fewer than the task\'s certificates of that vault still unfound, so it never costs much more than reading '
             'each, and a task with one certificate in a vault reads it directly. Choose `each` when the task holds a small '
             'part of a large, shared vault (say 20 certificates of 5,000: '
             '20 reads against 200 pages), or when the identity may read single certificates but not list the vault; leave `auto` '
             'otherwise. The result\'s `vaults` says which ran (`read`, `list_pages`, `decided_from_list`, `requests`).',
             '',
             '**Pacing.** A task keeps one pacing state per vault. A `429` pauses that vault\'s calls for its `Retry-After`, halves '
             'its concurrency (at least 1) and raises it by one after each clean round; a certificate whose call was throttled '
             'with nothing written is tried again later in the same task, until `throttle_retry_seconds` (default 600) after the '
             'task started; only then does it fail with `error_code: throttled`. An import whose outcome is unknown is never sent '
             'again blindly: the engine reads the latest version first. The result\'s `vaults` reports per vault the requests, the '
             '429 answers, the seconds waited and the concurrency it started, fell and ended at.',
             '',
             '**Key Vault\'s limits.** Microsoft\'s "Azure Key Vault service limits" page gives the limits per vault and region in '
             'transactions per 10 seconds. For software-protected keys of RSA 2,048 bits and EC P-256: 4,000 "all other '
             'transactions" (reads) and 20 key creations (HSM-protected keys: 2,000 and 10); for secrets, managed storage account '
             'keys and vault transactions: 4,000 of all kinds. Its throttling guidance adds that the subscription-wide limit for '
             'every transaction type is five times one vault\'s limit, and that answers of `429` do not count against the limits. '
             'Every request of a task counts, reads and list pages included (the per-vault `requests` of the result is that '
             'count, the unauthenticated challenge included). Neither page says which bucket a certificate import falls into; '
             'an import writes a key, so plan rotations as if each import were a key creation (20 per 10 seconds, 2 a second, per '
             'vault): the pacing above finds the vault\'s real budget from its `429`s either way.',
             '',
             '**Splitting.** One task per vault is the unit: its requests go to one vault\'s budget and it pays one token and '
             'one challenge. A no-op of V certificates by the list costs about V/25 requests, so even 10,000 certificates '
             '(about 400 list pages) use a tenth of one vault\'s 4,000 reads per 10 seconds when spread over 10 seconds. A '
             'rotation costs about five requests per certificate (read, the previous version\'s secret, import, read back, the new '
             'version\'s secret), so rotating a whole large vault at once is bounded by the vault, not by the controller: at two '
             'imports a second a rotation of 1,000 certificates takes at least 500 s. To go faster, spread the certificates over '
             'several vaults (each vault has its own budget; five vaults\' worth is the subscription\'s ceiling, so beyond that '
             'use more subscriptions or regions) and run one task per vault, in one play or as AWX job slices '
             '(`job_slice_count`, slicing an inventory with one host per vault, `delegate_to: localhost`). Slices against the '
             'same vault share its budget: they finish no sooner than one task, and they pay one token and challenge each. A '
             'controller or execution node needs memory for one task\'s material and results%s.' % (
                 (': about %.0f KiB per certificate on top of a base of %s (the table above)' % (per_cert_kib, _mib(base)))
                 if per_cert_kib else ' (the table above)'),
             '']
    return '\n'.join(lines)
