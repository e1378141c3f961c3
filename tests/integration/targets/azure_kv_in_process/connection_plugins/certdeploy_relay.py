# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only connection: a "remote" host that is reached like any non-local connection (module file staged in a
temporary directory, interpreter started by the connection) but runs its commands on this machine, so the
in-process action plugin's fallback for delegated hosts (a jump host in front of a private endpoint) runs end
to end without an SSH server."""

from __future__ import annotations

from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
    name: certdeploy_relay
    short_description: test-only stand-in for a remote host, executing on this machine
    description:
        - Behaves as the local connection but is not named local, as an ssh connection to a jump host would not be.
    author: certdeploy.cloud contributors
    options:
        become_success_timeout:
            type: int
            default: 10
            description: Seconds to wait for become to succeed.
        become_strip_preamble:
            type: bool
            default: true
            description: Strip internal become output preceding command execution.
    extends_documentation_fragment:
        - connection_pipelining
"""


class Connection(LocalConnection):
    """The local connection under another name."""

    transport = 'certdeploy_relay'
