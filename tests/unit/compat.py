# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the unit tests need from ansible-core, the same on every core the collection supports (2.16 and later).

- ``patch_module_args(args)``: AnsibleModule instances created inside see ``args`` (ansible-core 2.19's own helper
  where it exists; before it, the same thing done the way those cores read their arguments).
- ``module_side()``: inside, module_utils behaves as in a module process. Since 2.19 importing controller code
  marks the whole process as a controller (module_utils then sends warnings to the controller's display, not to
  the module's result); the action plugin's tests import controller code into the same test process.
"""

from __future__ import annotations

import contextlib
import json
from unittest import mock

__all__ = ('controller_import', 'module_side', 'patch_module_args')

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
except ImportError:  # 2.16-2.18
    from ansible.module_utils import basic as _basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        """Expose ``args`` to AnsibleModule instances created within this context."""
        payload = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
        with mock.patch.object(_basic, '_ANSIBLE_ARGS', payload):
            yield

try:
    from ansible.module_utils import _internal as _module_internal  # ansible-core 2.19 and later
except ImportError:  # 2.16-2.18 have no process-wide controller flag
    _module_internal = None


@contextlib.contextmanager
def module_side():
    """Run the block as a module process would, whatever controller code this test process imported."""
    if _module_internal is None or not hasattr(_module_internal, 'is_controller'):
        yield
        return
    with mock.patch.object(_module_internal, 'is_controller', False):
        yield


@contextlib.contextmanager
def controller_import():
    """Import controller code inside the block without turning the rest of the test process into a controller."""
    if _module_internal is None or not hasattr(_module_internal, 'is_controller'):
        yield
        return
    saved = _module_internal.is_controller
    try:
        yield
    finally:
        _module_internal.is_controller = saved
