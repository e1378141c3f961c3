# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An argument spec together with its rules, so that the two never travel separately.

AnsibleModule takes the options (``argument_spec``) and the rules between them (``mutually_exclusive``,
``required_one_of``, ...) as separate arguments, and a nested option (a list of dicts) takes them again
as keys of its own spec. :class:`ArgumentSpec` holds both: specs are combined with :meth:`merged`, adapted
with :meth:`with_options` / :meth:`without`, handed to a module with :meth:`module_kwargs` and nested
with :meth:`as_suboptions`. A combination of specs keeps every rule of its parts.

Pure: no Ansible import.
"""

from __future__ import annotations

import copy

RULES = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


class ArgumentSpec(object):
    """Options (name -> AnsibleModule option spec) and the rules between them. Never changed once built."""

    def __init__(self, options=None, **rules):
        unknown = set(rules) - set(RULES)
        if unknown:
            raise TypeError('unknown argument spec rule(s): %s' % ', '.join(sorted(unknown)))
        self._options = copy.deepcopy(dict(options or {}))
        self._rules = dict((name, [tuple(rule) for rule in rules[name]]) for name in RULES
                           if name in rules and name != 'required_by' and rules[name])
        if rules.get('required_by'):
            self._rules['required_by'] = copy.deepcopy(dict(rules['required_by']))
        missing = self._names_in_rules() - set(self._options)
        if missing:
            raise ValueError('argument spec rules name options it does not have: %s' % ', '.join(sorted(missing)))

    # -- reading ------------------------------------------------------------------------------------------

    @property
    def options(self):
        """A copy of the option specs, by name."""
        return copy.deepcopy(self._options)

    def rule(self, name):
        """A copy of one rule (``mutually_exclusive``, ...): a list (a dict for ``required_by``); empty if absent."""
        return copy.deepcopy(self._rules.get(name, {} if name == 'required_by' else []))

    def names(self):
        return frozenset(self._options)

    def _names_in_rules(self):
        names = set()
        for name, rule in self._rules.items():
            if name == 'required_by':
                for key, value in rule.items():
                    names.add(key)
                    names.update([value] if isinstance(value, str) else value)
            elif name == 'required_if':
                for entry in rule:
                    names.add(entry[0])
                    names.update(entry[2])
            else:
                for group in rule:
                    names.update(group)
        return names

    # -- building -----------------------------------------------------------------------------------------

    def merged(self, *others):
        """This spec and ``others`` together: every option and every rule. An option defined twice is an error."""
        options = self.options
        rules = dict((name, self.rule(name)) for name in RULES)
        for other in others:
            twice = set(options) & other.names()
            if twice:
                raise ValueError('options defined twice: %s' % ', '.join(sorted(twice)))
            options.update(other.options)
            for name in RULES:
                if name == 'required_by':
                    rules[name].update(other.rule(name))
                else:
                    rules[name].extend(other.rule(name))
        return ArgumentSpec(options, **rules)

    def with_options(self, **changes):
        """The same spec with the named options replaced (or added) by the given option specs."""
        options = self.options
        options.update(copy.deepcopy(changes))
        return ArgumentSpec(options, **dict((name, self.rule(name)) for name in RULES))

    def without(self, *names):
        """The same spec without the named options (which no rule may name)."""
        options = dict((name, spec) for name, spec in self._options.items() if name not in names)
        return ArgumentSpec(options, **dict((name, self.rule(name)) for name in RULES))

    # -- handing out --------------------------------------------------------------------------------------

    def module_kwargs(self):
        """The keyword arguments of AnsibleModule (and of the in-process stand-in): argument_spec plus rules."""
        kwargs = dict((name, self.rule(name)) for name in RULES if self._rules.get(name))
        kwargs['argument_spec'] = self.options
        return kwargs

    def as_suboptions(self, **option):
        """The spec of a nested option whose elements take these options and rules, e.g.
        ``as_suboptions(type='list', elements='dict', required=True)``."""
        nested = dict(option)
        nested['options'] = self.options
        nested.update((name, self.rule(name)) for name in RULES if self._rules.get(name))
        return nested

    def __eq__(self, other):
        return isinstance(other, ArgumentSpec) and self.module_kwargs() == other.module_kwargs()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return 'ArgumentSpec(%s)' % ', '.join(sorted(self._options))
