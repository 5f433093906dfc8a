"""``ini.py set FILE SECTION OPTION VALUE`` and ``ini.py get FILE SECTION
OPTION``: what a ``[[post-config|FILE]]`` block of local.conf does to a
file the plugin wrote (tests/functional/devstack).

Like devstack's ``iniset`` / ``iniget`` (``inc/ini-config``): ``set``
creates the file and the section as needed and replaces the option's
value; ``get`` prints the value or nothing.  ``[DEFAULT]`` is an ordinary
section here.
"""

import configparser
import os
import sys


def _parser():
    parser = configparser.RawConfigParser(default_section='\0none',
                                          interpolation=None)
    parser.optionxform = str
    return parser


def main(argv):
    action, path, section, option = argv[:4]
    parser = _parser()
    if os.path.exists(path):
        parser.read(path)
    if action == 'get':
        if parser.has_option(section, option):
            print(parser.get(section, option))
        return 0
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, option, argv[4])
    with open(path, 'w') as f:
        parser.write(f)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
