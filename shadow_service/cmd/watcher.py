"""``shadow-watcher``: the proactive scaling daemon.

The forecasting loop, actuators (resize, live migration, scale-out) and
learning from outcomes are not built yet (see the project's issue list).
Until they are, this command checks its configuration and the scaling
policy plugins, says plainly that it watches nothing, and exits with 3 so
that no service manager mistakes it for a running daemon.
"""

import sys

from shadow_service import plugins


def main(argv=None):
    policy = plugins.plugin_class('nova_shadow.policies', 'threshold')
    sys.stderr.write(
        'shadow-watcher: the proactive scaling loop is not implemented yet; '
        'nothing is watched. Scaling policy plugin available: %s.\n'
        % policy.__name__)
    return 3


if __name__ == '__main__':
    sys.exit(main())
