# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for the ``get-pip.py`` bootstrap script that ansible-test downloads.

Why this exists
---------------
When ansible-test creates a managed virtual environment (``--venv``, used for the
sanity tests) it creates it with ``python -m venv --without-pip`` and then
bootstraps pip by running ``get-pip-<pip version>.py``, downloaded from
ansible's CI file server, unless a cached copy already exists at
``~/.ansible/test/cache/get_pip_<pip version with dots replaced by _>.py``.
That server is not reachable from every machine this collection is tested on
(only the package index is), so ``scripts/test.sh`` copies this file to that
cache path when nothing is there yet.

How it is called
----------------
ansible-test runs it through ``runpy`` (``quiet_pip.py`` with ``GET_PIP`` set),
so ``sys.executable`` is the interpreter of the new virtual environment and
``sys.argv[1:]`` holds pip-install-style arguments, for example::

    --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel

What it does (the same contract as the real get-pip.py)
-------------------------------------------------------
1. If pip is not importable in this interpreter, install it offline from the
   pip wheel that ships with the interpreter's ``ensurepip`` module
   (``--no-index``, no network).
2. Run ``python -m pip install --upgrade <arguments>``, where the arguments are
   the ones we were given minus the get-pip-only flags ``--no-setuptools`` and
   ``--no-wheel``.  Like get-pip, ``pip`` is always part of the request and
   ``setuptools`` / ``wheel`` are added unless their ``--no-*`` flag was given
   (or the ``PIP_NO_SETUPTOOLS`` / ``PIP_NO_WHEEL`` environment variables are
   set).  The pinned ``pip==X.Y`` that ansible-test passes comes from the
   package index like any other requirement.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import tempfile

GET_PIP_ONLY_FLAGS = ('--no-setuptools', '--no-wheel')


def log(message):
    """Write a progress message to stderr (ansible-test shows it on failure)."""
    sys.stderr.write('get_pip_standin: %s\n' % message)
    sys.stderr.flush()


def pip_available():
    """Return True if pip can be imported by this interpreter."""
    result = subprocess.run(
        [sys.executable, '-c', 'import pip'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def bundled_pip_wheel():
    """Return the path of the pip wheel bundled with ensurepip, or None."""
    try:
        import ensurepip  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None

    directories = [os.path.join(os.path.dirname(ensurepip.__file__), '_bundled')]
    # Debian/Ubuntu's patched ensurepip keeps its wheels in a system directory.
    wheel_pkg_dir = getattr(ensurepip, '_WHEEL_PKG_DIR', None)
    if wheel_pkg_dir:
        directories.append(wheel_pkg_dir)

    for directory in directories:
        wheels = sorted(glob.glob(os.path.join(directory, 'pip-*.whl')))
        if wheels:
            return wheels[-1]

    return None


def bootstrap_pip():
    """Install pip from the interpreter's bundled wheel, without network access."""
    wheel = bundled_pip_wheel()

    if wheel:
        log('bootstrapping pip from %s' % wheel)
        # A pip wheel can run itself: "python pip.whl/pip install pip.whl".
        subprocess.check_call([
            sys.executable, os.path.join(wheel, 'pip'), 'install',
            '--no-index', '--no-deps', '--disable-pip-version-check', '--quiet', wheel,
        ])
        return

    log('no bundled pip wheel found, falling back to "python -m ensurepip"')
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])


def requirement_name(arg):
    """Return the normalised project name of a requirement argument, or None for options."""
    if arg.startswith('-'):
        return None
    match = re.match(r'^\s*([A-Za-z0-9][A-Za-z0-9._-]*)', arg)
    return re.sub(r'[-_.]+', '-', match.group(1)).lower() if match else None


def install_arguments(argv):
    """Translate get-pip arguments into "pip install" arguments."""
    args = [arg for arg in argv if arg not in GET_PIP_ONLY_FLAGS]
    requested = {requirement_name(arg) for arg in args}

    implicit = ['pip']
    if '--no-setuptools' not in argv and not os.environ.get('PIP_NO_SETUPTOOLS'):
        implicit.append('setuptools')
    if '--no-wheel' not in argv and not os.environ.get('PIP_NO_WHEEL'):
        implicit.append('wheel')

    args.extend(name for name in implicit if name not in requested)
    return ['install', '--upgrade'] + args


def main():
    """Main entry point."""
    if not pip_available():
        bootstrap_pip()

    command = [sys.executable, '-m', 'pip'] + install_arguments(sys.argv[1:])
    log('running: %s' % ' '.join(command))
    # Run from a neutral directory so a "pip" directory in the cwd can't shadow the real one.
    return subprocess.call(command, cwd=tempfile.gettempdir())


if __name__ == '__main__':
    sys.exit(main())
