# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the module in the controller's worker when that is equivalent, else as a module (plugin_utils/in_process_action.py)."""

from __future__ import annotations

from ansible_collections.certdeploy.cloud.plugins.plugin_utils.in_process_action import action_for

ActionModule = action_for(__name__)
