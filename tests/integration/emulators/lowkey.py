# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Java back end: nagyesta's lowkey-vault (a Spring Boot jar) and its managed-identity endpoint.

The jar comes from $LOWKEY_VAULT_JAR, the cache, a build from ../shared/emulators or Maven
Central (ensure_lowkey_jar); LoopbackConnectors.java, compiled against the jar, binds every
connector to 127.0.0.1.  start_lowkey_vault() / lowkey_vault() start it on free ports.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .common import (HERE, LOOPBACK, VAULT_RESOURCE, VERSIONS, EmulatorFailed, EmulatorUnavailable, cache_dir, log_tail, run,
                     write_text)
from .emulator import Emulator, prepare_state_dir
from .net import child_environment, fetch_server_chain, free_port, http_get, http_post_json, insecure_context, verifying_context
from .processes import spawn, terminate, wait_until
from .tools import build_from_shared, cache_lock, find_tool, read_origin, report_resolved, shared_emulators_dir, show_path, write_origin


class LowkeyVault(Emulator):
    """lowkey-vault: vault at https://localhost:<port>, MI token endpoint at http://127.0.0.1:<token_port>."""

    kind = 'lowkey'

    def __init__(self, state_dir, owns_state_dir=False):
        super().__init__(state_dir, owns_state_dir)
        self.port = None
        self.token_port = None
        self.vault_urls = {}
        self.jar = None
        self.java = None

    def info(self):
        data = super().info()
        data.update({'port': self.port, 'token_port': self.token_port, 'vault_urls': self.vault_urls,
                     'management_url': 'https://%s:%s/management/vault' % (LOOPBACK, self.port)})
        return data

    def env(self, proxy_trap=False):
        env = super().env(proxy_trap)
        env['KV_EMU_TOKEN_PORT'] = str(self.token_port)
        return env


def java_major_version(java):
    result = run([java, '-version'], timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stdout)
    if result.returncode != 0 or not match:
        raise EmulatorUnavailable('%s -version failed: %s' % (java, result.stdout.strip()[-500:]))
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def lowkey_jar_version(path):
    """Implementation-Version of a lowkey-vault-app jar (from its manifest), or None if it is not one."""
    try:
        with zipfile.ZipFile(str(path)) as archive:
            manifest = archive.read('META-INF/MANIFEST.MF').decode('utf-8', 'replace')
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    fields = dict(line.split(': ', 1) for line in manifest.splitlines() if ': ' in line)
    if fields.get('Implementation-Title', '').strip() != 'Lowkey Vault - App':
        return None
    return fields.get('Implementation-Version', '').strip() or None


def _lowkey_download(target):
    """The ordinary install: `mvn dependency:copy` of the pinned coordinate into target's directory."""
    group, artifact, version = VERSIONS['LOWKEY_VAULT_GROUP_ID'], VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']
    mvn = find_tool('mvn', ('MVN',), 'MAVEN_HOME', 'to download %s:%s:%s from Maven Central' % (group, artifact, version))
    coordinates = '%s:%s:%s:jar' % (group, artifact, version)
    with tempfile.TemporaryDirectory(dir=str(target.parent)) as tmp:
        # -U: Maven caches a 'not found' in ~/.m2 and would not ask again for a day.
        result = run([mvn, '-B', '-q', '-U', '-Dstyle.color=never', 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy',
                      '-Dartifact=' + coordinates, '-DoutputDirectory=' + tmp, '-Dmdep.useBaseVersion=true'], cwd=tmp, timeout=900)
        downloaded = Path(tmp) / target.name
        if result.returncode != 0 or not downloaded.exists():
            output = re.sub(r'\x1b\[[0-9;]*m', '', result.stdout)
            errors = [line for line in output.splitlines() if 'ERROR' in line][:1]
            raise EmulatorUnavailable(
                'Maven could not download %s (exit %d): %s\nSet LOWKEY_VAULT_JAR=/path/to/%s to use a jar obtained another way.'
                % (coordinates, result.returncode, ' '.join(errors).strip() or output.strip()[-600:], target.name))
        os.replace(downloaded, target)


def ensure_lowkey_jar(refresh=False):
    """Path of the lowkey-vault-app jar, resolved in this order (the first that applies wins):

    1. $LOWKEY_VAULT_JAR;
    2. the cache (.cache/emulators/), if its manifest names the pinned version;
    3. a build with ../shared/emulators/build.sh, when that folder exists (into the cache);
    4. the ordinary registry install (Maven Central), for machines that can reach the artifact.
    Prints one line saying which (to stderr).  A failed build is EmulatorFailed, not a skip.
    """
    artifact, version = VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']
    label = 'lowkey-vault %s' % version
    override = os.environ.get('LOWKEY_VAULT_JAR')
    if override:
        found = lowkey_jar_version(override)
        if found is None:
            raise EmulatorUnavailable('LOWKEY_VAULT_JAR=%s is not a lowkey-vault-app jar' % override)
        if found != version:
            raise EmulatorUnavailable('LOWKEY_VAULT_JAR=%s is lowkey-vault %s; %s is pinned (versions.env)' % (override, found, version))
        return report_resolved(label, Path(override).resolve(), 'LOWKEY_VAULT_JAR=%s' % override)
    target = cache_dir() / ('%s-%s.jar' % (artifact, version))
    with cache_lock():
        if not refresh and lowkey_jar_version(target) == version:
            return report_resolved(label, target, '%s (cached)' % read_origin(target, 'an earlier install'))
        shared = shared_emulators_dir()
        if shared is not None:
            java = find_tool('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME', 'to build lowkey-vault from %s' % show_path(shared))
            need = int(VERSIONS['LOWKEY_VAULT_MIN_JAVA'])
            if java_major_version(java) < need:
                raise EmulatorUnavailable('building lowkey-vault %s needs Java %d+ (set JAVA_HOME)' % (version, need))
            find_tool('mvn', ('MVN',), 'MAVEN_HOME', 'to build lowkey-vault from %s' % show_path(shared))
            seconds = build_from_shared(shared, 'lowkey', [target.name])
            if lowkey_jar_version(target) != version:
                raise EmulatorFailed('%s/build.sh lowkey did not produce a lowkey-vault %s jar at %s' % (show_path(shared), version, target))
            return report_resolved(label, target, write_origin(target, 'built from %s' % show_path(shared)) + ' in %.0f s' % seconds)
        target.parent.mkdir(parents=True, exist_ok=True)
        _lowkey_download(target)
        return report_resolved(label, target, write_origin(target, 'downloaded from Maven Central'))


def boot_jar_layout(jar):
    """(PropertiesLauncher class, [compile jars for LoopbackConnectors]) of a Spring Boot fat jar."""
    with zipfile.ZipFile(jar) as archive:
        names = archive.namelist()
    if 'org/springframework/boot/loader/launch/PropertiesLauncher.class' in names:
        launcher = 'org.springframework.boot.loader.launch.PropertiesLauncher'  # Spring Boot 3.2+
    elif 'org/springframework/boot/loader/PropertiesLauncher.class' in names:
        launcher = 'org.springframework.boot.loader.PropertiesLauncher'
    else:
        raise EmulatorFailed('%s is not a Spring Boot executable jar (no PropertiesLauncher)' % jar)
    wanted = re.compile(r'^BOOT-INF/lib/(spring-boot-\d[^/]*|tomcat-embed-core-[^/]*|spring-(?:core|jcl|context|beans|web)-[^/]*)\.jar$')
    libs = [name for name in names if wanted.match(name)]
    if len([n for n in libs if '/spring-boot-' in n or '/tomcat-embed-core-' in n]) < 2:
        raise EmulatorFailed('%s: spring-boot or tomcat-embed-core jar not found inside' % jar)
    return launcher, libs


def ensure_loopback_classes(jar, java):
    """Compile LoopbackConnectors.java against the jar's Spring Boot/Tomcat (cached); returns the class dir."""
    source = HERE / 'LoopbackConnectors.java'
    stat = os.stat(jar)
    key = hashlib.sha256(source.read_bytes() + ('%s:%d' % (os.path.basename(jar), stat.st_size)).encode()).hexdigest()[:16]
    out = cache_dir() / 'lowkey-loopback' / key
    if (out / 'certdeploy' / 'harness' / 'LoopbackConnectors.class').exists():
        return out
    javac = os.path.join(os.path.dirname(os.path.realpath(java)), 'javac')
    if not os.access(javac, os.X_OK):
        javac = find_tool('javac', ('JAVAC',), 'JAVA_HOME', 'to compile LoopbackConnectors.java (a JDK, not only a JRE)')
    _launcher, libs = boot_jar_layout(jar)
    with tempfile.TemporaryDirectory() as tmp:
        classpath = []
        with zipfile.ZipFile(jar) as archive:
            for name in libs:
                path = os.path.join(tmp, os.path.basename(name))
                with archive.open(name) as src, open(path, 'wb') as dst:
                    shutil.copyfileobj(src, dst)
                classpath.append(path)
        build = Path(tmp) / 'classes'
        result = run([javac, '--release', '17', '-nowarn', '-d', str(build), '-cp', os.pathsep.join(classpath), str(source)], timeout=300)
        if result.returncode != 0:
            raise EmulatorFailed('javac LoopbackConnectors.java failed:\n%s' % result.stdout[-2000:])
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=str(out.parent)))
        shutil.copytree(str(build), str(staging), dirs_exist_ok=True)
        try:
            os.replace(staging, out)
        except OSError:  # another process won the race
            shutil.rmtree(staging, ignore_errors=True)
    return out


DEFAULT_JAVA_OPTS = ('-Xms64m', '-Xmx768m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xss512k',
                     '-Djava.security.egd=file:/dev/./urandom', '-Djava.awt.headless=true')


def start_lowkey_vault(state_dir=None, vault_names=None, recovery_level='Recoverable+Purgeable', recoverable_days=90,
                       java_opts=None, extra_args=(), startup_timeout=180.0, die_with_parent=True, auth=True, ip_vault=False):
    """Start lowkey-vault on 127.0.0.1; returns a running LowkeyVault (call stop(), or use lowkey_vault()).

    The built-in default vaults are switched off (--LOWKEY_VAULT_NAMES=-: they are created
    'Recoverable', i.e. purge-protected, and localhost/127.0.0.1 would be two different vaults).
    Instead one vault is created through the management API: https://localhost:<port> with the
    alias https://127.0.0.1:<port>, recovery_level 'Recoverable+Purgeable' (a real vault's
    default: soft delete, purge allowed) or 'Recoverable' (purge protection), and
    recoverable_days (7-90).
    vault_names: extra vaults https://<name>.localhost:<port> (the client must resolve
    *.localhost to 127.0.0.1, which glibc does not do by default).
    ip_vault=True makes https://127.0.0.1:<port> a second, separate vault instead of an alias
    of the first (lowkey-vault tells vaults apart by the Host header, and its certificate covers
    127.0.0.1), for tests that need two vaults without a *.localhost resolver.
    java_opts: JVM options replacing DEFAULT_JAVA_OPTS ($LOWKEY_VAULT_JAVA_OPTS also works).
    auth=False passes --LOWKEY_ENABLE_AUTH=false (no token needed at all; with auth on, any
    bearer token is accepted anyway).
    """
    java = find_tool('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME', 'to run lowkey-vault')
    need = int(VERSIONS['LOWKEY_VAULT_MIN_JAVA'])
    major = java_major_version(java)
    if major < need:
        raise EmulatorUnavailable('lowkey-vault %s needs Java %d+, %s is Java %d (set LOWKEY_VAULT_JAVA or JAVA_HOME)'
                                  % (VERSIONS['LOWKEY_VAULT_VERSION'], need, java, major))
    jar = ensure_lowkey_jar()
    launcher, _libs = boot_jar_layout(jar)
    classes = ensure_loopback_classes(jar, java)
    if java_opts is None:
        java_opts = shlex.split(os.environ['LOWKEY_VAULT_JAVA_OPTS']) if os.environ.get('LOWKEY_VAULT_JAVA_OPTS') else list(DEFAULT_JAVA_OPTS)

    state_dir, owns = prepare_state_dir(state_dir)
    emulator = LowkeyVault(state_dir, owns)
    emulator.jar, emulator.java = str(jar), java
    emulator.api_version = '7.6'  # 3.4.33 serves certificates on 7.3-7.6 only; SDK defaults (2025-07-01+) get 400
    emulator.versions = {'lowkey-vault': VERSIONS['LOWKEY_VAULT_VERSION'], 'java': str(major)}
    try:
        for attempt in range(3):
            port, token_port = free_port(), free_port()
            if port == token_port:
                continue
            argv = [java] + list(java_opts) + [
                '-Dcertdeploy.bind.address=' + LOOPBACK, '-Dloader.path=' + str(classes), '-cp', str(jar), launcher,
                '--spring.main.sources=certdeploy.harness.LoopbackConnectors',
                '--server.address=' + LOOPBACK, '--server.port=%d' % port, '--app.token.port=%d' % token_port,
                '--spring.main.banner-mode=off', '--LOWKEY_ENABLE_AUTH=%s' % ('true' if auth else 'false'),
                '--LOWKEY_VAULT_NAMES=-',
            ]
            argv.extend(extra_args)
            record = spawn('lowkey-vault', argv, state_dir / 'lowkey-vault.log', env=child_environment(), cwd=str(state_dir),
                           die_with_parent=die_with_parent)
            emulator.processes = [record]
            emulator.save()
            try:
                wait_until(lambda p=port: http_get('https://%s:%d/ping' % (LOOPBACK, p), insecure_context())[0] == 200,
                           'lowkey-vault https://127.0.0.1:%d/ping' % port, startup_timeout, [record])
                break
            except EmulatorFailed:
                if attempt < 2 and 'already in use' in log_tail(record.log, 200):
                    terminate([record])
                    continue
                raise
        emulator.port, emulator.token_port = port, token_port
        emulator.vault_url = 'https://localhost:%d' % port
        emulator.vault_urls = {'localhost': emulator.vault_url}
        if ip_vault:
            emulator.vault_urls[LOOPBACK] = 'https://%s:%d' % (LOOPBACK, port)
            vaults = [(emulator.vault_url, []), (emulator.vault_urls[LOOPBACK], [])]
        else:
            vaults = [(emulator.vault_url, ['https://%s:%d' % (LOOPBACK, port)])]
        for name in vault_names or ():
            emulator.vault_urls[name] = 'https://%s.localhost:%d' % (name, port)
            vaults.append((emulator.vault_urls[name], []))
        for base_uri, aliases in vaults:
            status, body = http_post_json('https://%s:%d/management/vault' % (LOOPBACK, port),
                                          {'baseUri': base_uri, 'aliases': aliases, 'recoveryLevel': recovery_level,
                                           'recoverableDays': recoverable_days}, insecure_context())
            if status != 200:
                raise EmulatorFailed('lowkey-vault: creating vault %s failed: HTTP %s %s' % (base_uri, status, body))
        emulator.ca_file = state_dir / 'ca.pem'
        write_text(emulator.ca_file, fetch_server_chain(LOOPBACK, port, 'localhost'))
        status = http_get('https://localhost:%d/ping' % port, verifying_context(emulator.ca_file))[0]
        if status != 200:
            raise EmulatorFailed('lowkey-vault /ping through the extracted CA file answered %s' % status)
        emulator.identity_endpoint = 'http://%s:%d/metadata/identity/oauth2/token' % (LOOPBACK, token_port)
        emulator.identity_header = secrets.token_hex(16)  # lowkey-vault does not check it; the SDK requires one
        status, _headers, body = http_get(emulator.identity_endpoint + '?resource=' + VAULT_RESOURCE + '&api-version=2019-08-01',
                                          headers={'X-IDENTITY-HEADER': emulator.identity_header, 'Accept': 'application/json'})
        if status != 200 or b'access_token' not in body:
            raise EmulatorFailed('lowkey-vault token endpoint answered %s: %r' % (status, body[:300]))
        emulator.save()
        return emulator
    except BaseException:
        emulator.stop()
        raise


@contextmanager
def lowkey_vault(**kwargs):
    """Context manager around start_lowkey_vault(); stops the JVM on exit."""
    emulator = start_lowkey_vault(**kwargs)
    try:
        yield emulator
    finally:
        emulator.stop()
